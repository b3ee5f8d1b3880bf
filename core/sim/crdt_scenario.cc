#include "core/sim/crdt_scenario.h"

#include <algorithm>
#include <random>
#include <string>

#include "core/sim/crdt_cluster.h"

namespace geokv::sim {

namespace {

// Uniform helpers over the run's one generator.
int64_t Uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}
double Unit(std::mt19937_64& rng) { return std::uniform_real_distribution<double>(0, 1)(rng); }

std::string Key(char type, int i) { return std::string(1, type) + std::to_string(i); }

void RandomOp(CrdtCluster& c, std::mt19937_64& rng, int keys_per_type) {
  std::vector<int> up;
  for (int i = 0; i < c.size(); ++i) {
    if (c.up(i)) up.push_back(i);
  }
  if (up.empty()) return;
  const int n = up[Uniform(rng, 0, static_cast<int64_t>(up.size()) - 1)];
  const int k = static_cast<int>(Uniform(rng, 0, keys_per_type - 1));
  const int arg = static_cast<int>(Uniform(rng, 0, 9));
  Status s;
  switch (Uniform(rng, 0, 3)) {
    case 0:
      s = Uniform(rng, 0, 2) == 0 ? c.SetRemove(n, Key('s', k), "e" + std::to_string(arg % 6))
                                  : c.SetAdd(n, Key('s', k), "e" + std::to_string(arg % 6));
      break;
    case 1:
      s = c.AddCounter(n, Key('c', k), arg - 4);
      break;
    case 2:
      s = Uniform(rng, 0, 4) == 0 ? c.DeleteLww(n, Key('l', k))
                                  : c.PutLww(n, Key('l', k), "v" + std::to_string(arg));
      break;
    default: {
      int64_t r = Uniform(rng, 0, 5);
      if (r == 0) {
        s = c.DeleteMv(n, Key('m', k));
      } else {
        s = c.WriteMv(n, Key('m', k), "m" + std::to_string(arg), /*blind=*/r == 1);
      }
      break;
    }
  }
  // kConflict (sibling bound) is an expected refusal; nothing else may fail.
  (void)s;
}

void SampleMetadata(CrdtCluster& c, size_t* max_entries) {
  for (int i = 0; i < c.size(); ++i) {
    if (!c.up(i)) continue;
    for (const auto& [k, v] : c.node(i).states()) *max_entries = std::max(*max_entries, v.MetadataEntries());
  }
}

}  // namespace

CrdtScenarioResult RunCrdtScenario(uint64_t seed, const CrdtScenarioOptions& options) {
  CrdtScenarioResult result;
  Network net = Network::Aws(seed, options.regions);
  std::mt19937_64& rng = net.Rng();

  CrdtClusterOptions co;
  co.node.retention_batches = options.retention_batches;
  co.node.unsafe_deliver_out_of_order = options.unsafe_deliver_out_of_order;
  co.node.transfer_range_keys = 2;  // several ranges even for few keys: digests matter
  co.clock_skew_us.resize(options.regions, 0);
  if (options.faults) {
    for (auto& s : co.clock_skew_us) s = Uniform(rng, -200000, 200000);
    // Sometimes one region's clock runs far ahead: other clocks must not follow it.
    if (Unit(rng) < 0.25) co.clock_skew_us[Uniform(rng, 0, options.regions - 1)] = 5000000;
  }
  CrdtCluster cluster(&net, co);

  if (options.faults) {
    net.SetFaults(Faults{Unit(rng) * 0.15, Unit(rng) * 0.1, Uniform(rng, 0, 40000)});
  }

  // Workload.
  const Time op_gap_us = 1000000 / std::max(1, options.ops_per_second);
  for (Time t = Uniform(rng, 0, op_gap_us); t < options.active_us; t += Uniform(rng, 1, 2 * op_gap_us)) {
    net.At(t, [&cluster, &rng, &options]() { RandomOp(cluster, rng, options.keys_per_type); });
  }

  // Chaos: every ~250 ms something breaks for a while.
  if (options.faults) {
    for (Time t = Uniform(rng, 0, 250000); t < options.active_us; t += Uniform(rng, 100000, 400000)) {
      const int a = static_cast<int>(Uniform(rng, 0, options.regions - 1));
      const int b = static_cast<int>(Uniform(rng, 0, options.regions - 1));
      // Long absences (past the retained log) happen too.
      const Time dur = Unit(rng) < 0.2 ? Uniform(rng, 800000, 2000000) : Uniform(rng, 20000, 500000);
      switch (Uniform(rng, 0, 2)) {
        case 0:  // cut a link both ways
          if (a == b) break;
          net.At(t, [&net, a, b]() { net.Block(a, b, true); net.Block(b, a, true); });
          net.At(t + dur, [&net, a, b]() { net.Block(a, b, false); net.Block(b, a, false); });
          break;
        case 1:  // isolate a region
          net.At(t, [&net, a, &options]() {
            for (int o = 0; o < options.regions; ++o) {
              if (o != a) { net.Block(a, o, true); net.Block(o, a, true); }
            }
          });
          net.At(t + dur, [&net, a, &options]() {
            for (int o = 0; o < options.regions; ++o) {
              if (o != a) { net.Block(a, o, false); net.Block(o, a, false); }
            }
          });
          break;
        default:  // crash and restart
          net.At(t, [&cluster, &result, a]() {
            if (cluster.up(a)) ++result.crashes;
            cluster.Crash(a);
          });
          net.At(t + dur, [&cluster, a]() { cluster.Restart(a); });
          break;
      }
    }
  }

  // Metadata samples.
  for (Time t = 0; t < options.active_us + options.quiet_us; t += 250000) {
    net.At(t, [&cluster, &result]() { SampleMetadata(cluster, &result.max_metadata_entries); });
  }

  net.RunUntil(options.active_us);
  // Heal everything and let it settle.
  net.HealAll();
  net.SetFaults(Faults{});
  for (int i = 0; i < options.regions; ++i) cluster.Restart(i);
  net.RunUntil(options.active_us + options.quiet_us);

  // --- checks ---
  auto& errors = result.errors;
  const auto& ref = cluster.node(0).states();
  for (int i = 1; i < options.regions; ++i) {
    const auto& st = cluster.node(i).states();
    if (st.size() != ref.size()) {
      errors.push_back("region " + net.region(i) + " holds " + std::to_string(st.size()) +
                       " keys, region " + net.region(0) + " holds " + std::to_string(ref.size()));
    }
    for (const auto& [k, v] : ref) {
      auto it = st.find(k);
      if (it == st.end() || it->second.Encode() != v.Encode()) {
        std::string detail;
        if (auto* l = v.As<crdt::LwwRegister>()) {
          detail = " (" + net.region(0) + ": " + (l->deleted() ? "tombstone" : "value") + " @" +
                   std::to_string(l->stamp().physical_ms) + ", stable here " +
                   std::to_string(cluster.node(0).LocalStable().physical_ms) + ", there " +
                   std::to_string(cluster.node(i).LocalStable().physical_ms) + ")";
        }
        errors.push_back("key " + k + " differs between " + net.region(0) + " and " + net.region(i) + detail);
      }
    }
  }
  for (int i = 0; i < options.regions; ++i) {
    // Only recent heartbeat batches may still await acknowledgement.
    if (auto oldest = cluster.node(i).oldest_logged();
        oldest && oldest->physical_ms < cluster.node(i).clock().last().physical_ms - 1000) {
      errors.push_back("region " + net.region(i) + " still has " +
                       std::to_string(cluster.node(i).log_size()) + " unacknowledged batches");
    }
    for (const auto& [k, v] : cluster.node(i).states()) {
      const crdt::DotKernel* kernel = nullptr;
      if (auto* s = v.As<crdt::OrSet>()) kernel = &s->kernel();
      if (auto* m = v.As<crdt::MvRegister>()) kernel = &m->kernel();
      if (kernel && (kernel->context().cloud_size() != 0 ||
                     kernel->context().vector_size() > static_cast<size_t>(options.regions))) {
        errors.push_back("key " + k + ": causal context not compact after quiescence");
      }
      result.final_max_metadata_entries = std::max(result.final_max_metadata_entries, v.MetadataEntries());
    }
  }
  for (std::string& e : cluster.history().Check(ref)) errors.push_back(std::move(e));
  result.trace_hash = net.TraceHash();
  result.acked_ops = cluster.history().acked();
  result.transfers = cluster.transfers_completed();
  result.hlc_rejected = cluster.hlc_rejected();
  result.tombstones_collected = cluster.tombstones_collected();
  return result;
}

}  // namespace geokv::sim
