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

// The last key of each type is as long as keys may be (limits at their edge).
constexpr size_t kKeyBytesMax = 4096;
std::string Key(char type, int i, int keys_per_type) {
  std::string k = std::string(1, type) + std::to_string(i);
  if (keys_per_type >= 2 && i == keys_per_type - 1) k.resize(kKeyBytesMax, '.');
  return k;
}

// A value of exactly `bytes` bytes that starts with `tag`.
std::string Sized(const std::string& tag, size_t bytes) {
  std::string v = tag;
  v.resize(bytes, '~');
  return v;
}

struct OpContext {
  CrdtCluster& c;
  std::mt19937_64& rng;
  const CrdtScenarioOptions& options;
  CrdtScenarioResult& result;
};

void Expect(OpContext& x, const Status& s, std::initializer_list<Code> allowed, const char* what) {
  if (s.ok()) return;
  for (Code a : allowed) {
    if (s.code() == a) return;
  }
  x.result.errors.push_back(std::string("unexpected refusal of ") + what + ": " + s.message());
}

// Operations at the documented limits (must succeed unless a per-region cap is reached)
// and one past them (must be refused with the specific error).
void LargeOp(OpContext& x, int n, const std::string& key_suffix) {
  const size_t value_max = crdt::kValueBytesMax;
  const int j = static_cast<int>(Uniform(x.rng, 0, 2));
  Status s;
  switch (Uniform(x.rng, 0, 5)) {
    case 0:
      s = x.c.PutLww(n, "l" + key_suffix, Sized("L" + std::to_string(j), value_max));
      Expect(x, s, {}, "an lww put at the value limit");
      if (s.ok()) ++x.result.large_ops;
      break;
    case 1:
    case 2: {
      // Three large element names per set, so removes find them again.
      s = x.c.SetAdd(n, "s" + key_suffix, Sized("E" + std::to_string(j), value_max - j));
      Expect(x, s, {Code::kInvalidArgument, Code::kValueTooLarge}, "a set add at the value limit");
      if (s.ok()) ++x.result.large_ops;
      if (!s.ok()) ++x.result.caps_refused;
      break;
    }
    case 3:
      s = x.c.WriteMv(n, "m" + key_suffix, Sized("M" + std::to_string(j), value_max), /*blind=*/false);
      Expect(x, s, {Code::kConflict}, "an mvreg write at the value limit");
      if (s.ok()) ++x.result.large_ops;
      break;
    case 4:
      s = Uniform(x.rng, 0, 1) ? x.c.PutLww(n, "l" + key_suffix, std::string(value_max + 1, 'x'))
                               : x.c.SetAdd(n, "s" + key_suffix, std::string(value_max + 1, 'x'));
      if (s.code() != Code::kValueTooLarge) {
        x.result.errors.push_back("a value one past the limit was not refused with kValueTooLarge: " + s.message());
      }
      ++x.result.over_limit_refused;
      break;
    default:
      s = x.c.AddCounter(n, std::string(kKeyBytesMax + 1, 'c'), 1);
      if (s.code() != Code::kKeyTooLarge) {
        x.result.errors.push_back("a key one past the limit was not refused with kKeyTooLarge: " + s.message());
      }
      ++x.result.over_limit_refused;
      break;
  }
}

void RandomOp(OpContext& x) {
  CrdtCluster& c = x.c;
  std::mt19937_64& rng = x.rng;
  const int keys_per_type = x.options.keys_per_type;
  std::vector<int> up;
  for (int i = 0; i < c.size(); ++i) {
    if (c.up(i)) up.push_back(i);
  }
  if (up.empty()) return;
  const int n = up[Uniform(rng, 0, static_cast<int64_t>(up.size()) - 1)];
  const int k = static_cast<int>(Uniform(rng, 0, keys_per_type - 1));
  const int arg = static_cast<int>(Uniform(rng, 0, 9));
  if (Uniform(rng, 0, 999) < x.options.large_ops_per_mille) {
    LargeOp(x, n, Key('x', k, keys_per_type).substr(1));
    return;
  }
  Status s;
  switch (Uniform(rng, 0, 3)) {
    case 0:
      if (Uniform(rng, 0, 2) == 0) {
        // Sometimes a large element goes, so sets do not stay at their byte cap.
        const std::string e = Uniform(rng, 0, 3) == 0 ? Sized("E" + std::to_string(arg % 3), crdt::kValueBytesMax - arg % 3)
                                                      : "e" + std::to_string(arg % 6);
        s = c.SetRemove(n, Key('s', k, keys_per_type), e);
        Expect(x, s, {}, "a set remove");
      } else {
        s = c.SetAdd(n, Key('s', k, keys_per_type), "e" + std::to_string(arg % 6));
        Expect(x, s, {Code::kInvalidArgument, Code::kValueTooLarge}, "a set add");
        if (!s.ok()) ++x.result.caps_refused;
      }
      break;
    case 1:
      s = c.AddCounter(n, Key('c', k, keys_per_type), arg - 4);
      Expect(x, s, {}, "a counter add");
      break;
    case 2:
      s = Uniform(rng, 0, 4) == 0 ? c.DeleteLww(n, Key('l', k, keys_per_type))
                                  : c.PutLww(n, Key('l', k, keys_per_type), "v" + std::to_string(arg));
      Expect(x, s, {}, "an lww write");
      break;
    default: {
      int64_t r = Uniform(rng, 0, 5);
      if (r == 0) {
        s = c.DeleteMv(n, Key('m', k, keys_per_type));
      } else {
        s = c.WriteMv(n, Key('m', k, keys_per_type), "m" + std::to_string(arg), /*blind=*/r == 1);
      }
      // kConflict: the sibling bound refuses a stale (here: blind) write.
      Expect(x, s, {Code::kConflict}, "an mvreg write");
      break;
    }
  }
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
  co.node.unsafe_refuse_remote_stamps_ahead = options.unsafe_refuse_remote_stamps_ahead;
  co.node.limits.unsafe_decode_per_region_caps = options.unsafe_decode_per_region_caps;
  co.node.limits.set_elements_max = options.set_elements_max;
  co.node.key_bytes_max = kKeyBytesMax;
  co.node.transfer_range_keys = 2;  // several ranges even for few keys: digests matter
  co.clock_skew_us.resize(options.regions, 0);
  co.wall_offset_us.resize(options.regions, 0);
  co.wall_drift_ppm.resize(options.regions, 0);
  if (options.faults) {
    // Monotonic clocks: skewed, and sometimes one far ahead (timers only).
    for (auto& s : co.clock_skew_us) s = Uniform(rng, -200000, 200000);
    if (Unit(rng) < 0.25) co.clock_skew_us[Uniform(rng, 0, options.regions - 1)] = 5000000;
    // Wall clocks: seconds apart and drifting; sometimes one region an hour ahead.
    for (auto& o : co.wall_offset_us) o = Uniform(rng, -5000000, 5000000);
    for (auto& d : co.wall_drift_ppm) d = static_cast<double>(Uniform(rng, -500, 500));
    if (Unit(rng) < 0.25) co.wall_offset_us[Uniform(rng, 0, options.regions - 1)] = 3600LL * 1000000;
  }
  CrdtCluster cluster(&net, co);
  OpContext ctx{cluster, rng, options, result};

  if (options.faults) {
    net.SetFaults(Faults{Unit(rng) * 0.15, Unit(rng) * 0.1, Uniform(rng, 0, 40000)});
  }

  // Workload.
  const Time op_gap_us = 1000000 / std::max(1, options.ops_per_second);
  for (Time t = Uniform(rng, 0, op_gap_us); t < options.active_us; t += Uniform(rng, 1, 2 * op_gap_us)) {
    net.At(t, [&ctx]() { RandomOp(ctx); });
  }

  // Chaos: every ~250 ms something breaks for a while.
  if (options.faults) {
    for (Time t = Uniform(rng, 0, 250000); t < options.active_us; t += Uniform(rng, 100000, 400000)) {
      const int a = static_cast<int>(Uniform(rng, 0, options.regions - 1));
      const int b = static_cast<int>(Uniform(rng, 0, options.regions - 1));
      // Long absences (past the retained log) happen too.
      const Time dur = Unit(rng) < 0.2 ? Uniform(rng, 800000, 2000000) : Uniform(rng, 20000, 500000);
      switch (Uniform(rng, 0, 3)) {
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
        case 2:  // a wall clock jumps by seconds, either way
          if (Unit(rng) < 0.3) {
            const int64_t jump = Uniform(rng, -10000000, 10000000);
            net.At(t, [&cluster, a, jump]() { cluster.SetWallOffset(a, cluster.wall_offset(a) + jump); });
            break;
          }
          [[fallthrough]];
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
    // Only recent heartbeat batches (one every 500 ms) may still await acknowledgement.
    // (Counted, not dated: HLC stamps may sit an hour ahead of real time.)
    if (cluster.node(i).log_size() > 4) {
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
  for (const std::string& e : cluster.errors()) errors.push_back(e);
  result.trace_hash = net.TraceHash();
  result.acked_ops = cluster.history().acked();
  result.transfers = cluster.transfers_completed();
  result.hlc_remote_ahead = cluster.hlc_remote_ahead();
  result.tombstones_collected = cluster.tombstones_collected();
  return result;
}

}  // namespace geokv::sim
