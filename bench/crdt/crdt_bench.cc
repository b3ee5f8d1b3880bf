// CRDT benchmarks.
//  * BM_Join / BM_LocalUpdate: ns per join and per local update for every type, with the
//    encoded bytes of the state and of one delta as counters.
//  * BM_BytesPerUpdate: bytes the disseminators send per update divided by
//    payload x (regions - 1), shipping deltas and (baseline, same run) full states.
//  * BM_ConvergenceLag: simulated time from a write in one region until it is visible in
//    the farthest region, divided by the one-way delay (p50, p90), batching interval given.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "core/sim/crdt_cluster.h"
#include "core/sim/network.h"
#include "replication/crdt/crdt_value.h"
#include "replication/crdt/hlc.h"

namespace geokv::crdt {
namespace {

constexpr int kRegions = 5;

// A state touched by every region, `size` elements/siblings where meaningful, and a
// second replica's diverged copy to join against.
template <typename T>
struct Fixture;

template <>
struct Fixture<OrSet> {
  static OrSet Make(int size, ReplicaId r) {
    OrSet s;
    for (int i = 0; i < size; ++i) (void)s.Add(static_cast<ReplicaId>(i % kRegions), "element-" + std::to_string(i));
    (void)s.Add(r, "mine-" + std::to_string(r));
    return s;
  }
  static OrSet Update(OrSet& s, int i) { return *s.Add(0, "u" + std::to_string(i % 64)); }
};

template <>
struct Fixture<MvRegister> {
  static MvRegister Make(int size, ReplicaId r) {
    MvRegister m;
    for (int i = 0; i < std::min<int>(size, kSiblingsMax - 1); ++i) {
      (void)m.Write(static_cast<ReplicaId>(i % kRegions), "sibling-" + std::to_string(i), CausalContext());
    }
    (void)m.Write(r, "mine", CausalContext());
    return m;
  }
  static MvRegister Update(MvRegister& m, int i) {
    return *m.Write(0, "value-" + std::to_string(i % 64), m.ReadContext());
  }
};

template <>
struct Fixture<PnCounter> {
  static PnCounter Make(int, ReplicaId r) {
    PnCounter c;
    for (int i = 0; i < kRegions; ++i) (void)c.Add(static_cast<ReplicaId>(i), 1000 + i);
    (void)c.Add(r, 5);
    return c;
  }
  static PnCounter Update(PnCounter& c, int i) { return *c.Add(0, (i % 2) ? 3 : -2); }
};

template <>
struct Fixture<LwwRegister> {
  static LwwRegister Make(int, ReplicaId r) {
    LwwRegister l;
    (void)l.Put(std::string(100, 'v'), HlcTimestamp{1000 + r, 0, r});
    return l;
  }
  static LwwRegister Update(LwwRegister& l, int i) {
    return *l.Put(std::string(100, 'w'), HlcTimestamp{2000 + i, 0, 0});
  }
};

template <typename T>
void BM_Join(benchmark::State& state) {
  const int size = static_cast<int>(state.range(0));
  T a = Fixture<T>::Make(size, 1);
  T b = Fixture<T>::Make(size, 2);
  for (auto _ : state) {
    T x = a;
    x.Join(b);
    benchmark::DoNotOptimize(x);
  }
  // The copy is part of each iteration; BM_Copy below measures it alone.
  state.counters["state_bytes"] = static_cast<double>(a.Encode().size());
}

template <typename T>
void BM_Copy(benchmark::State& state) {
  T a = Fixture<T>::Make(static_cast<int>(state.range(0)), 1);
  for (auto _ : state) {
    T x = a;
    benchmark::DoNotOptimize(x);
  }
}

template <typename T>
void BM_LocalUpdate(benchmark::State& state) {
  T s = Fixture<T>::Make(static_cast<int>(state.range(0)), 1);
  int i = 0;
  size_t delta_bytes = 0;
  for (auto _ : state) {
    T d = Fixture<T>::Update(s, i++);
    benchmark::DoNotOptimize(d);
    if (i == 1) delta_bytes = d.Encode().size();
  }
  state.counters["state_bytes"] = static_cast<double>(s.Encode().size());
  state.counters["delta_bytes"] = static_cast<double>(delta_bytes);
}

// Receiver side: joining one remote delta into a large state (in place, no copy).
template <typename T>
void BM_JoinDelta(benchmark::State& state) {
  T s = Fixture<T>::Make(static_cast<int>(state.range(0)), 1);
  T origin = Fixture<T>::Make(static_cast<int>(state.range(0)), 2);
  std::vector<T> deltas;
  for (int i = 0; i < 256; ++i) deltas.push_back(Fixture<T>::Update(origin, i));
  size_t i = 0;
  for (auto _ : state) {
    s.Join(deltas[i++ % deltas.size()]);
    benchmark::DoNotOptimize(s);
  }
}

#define GEOKV_TYPE_BENCH(T)                                      \
  BENCHMARK_TEMPLATE(BM_Join, T)->Arg(10)->Arg(1000);            \
  BENCHMARK_TEMPLATE(BM_JoinDelta, T)->Arg(10)->Arg(1000);       \
  BENCHMARK_TEMPLATE(BM_Copy, T)->Arg(10)->Arg(1000);            \
  BENCHMARK_TEMPLATE(BM_LocalUpdate, T)->Arg(10)->Arg(1000)

GEOKV_TYPE_BENCH(OrSet);
GEOKV_TYPE_BENCH(MvRegister);
GEOKV_TYPE_BENCH(PnCounter);
GEOKV_TYPE_BENCH(LwwRegister);

// --- dissemination cost -------------------------------------------------------------

struct ShipResult {
  double ratio = 0;
  uint64_t updates = 0;
  uint64_t payload_bytes = 0;
  uint64_t sent_bytes = 0;
};

// 2000 updates spread over 5 regions: set adds of 32-byte elements (the sets grow to a
// few hundred members), counter adds (8-byte payload) and 100-byte LWW puts.
ShipResult Ship(bool full_state) {
  sim::Network net = sim::Network::Aws(1, kRegions);
  sim::CrdtClusterOptions o;
  o.node.ship_full_state = full_state;
  sim::CrdtCluster c(&net, o);
  std::mt19937_64 rng(99);
  ShipResult r;
  for (int i = 0; i < 2000; ++i) {
    net.At(1000 + i * 2000, [&, i]() {
      const int n = static_cast<int>(rng() % kRegions);
      switch (i % 3) {
        case 0: {
          std::string e(32, 'a' + static_cast<char>(i % 26));
          e += std::to_string(i);
          (void)c.SetAdd(n, "set" + std::to_string(i % 4), e);
          r.payload_bytes += e.size();
          break;
        }
        case 1:
          (void)c.AddCounter(n, "ctr" + std::to_string(i % 4), 1);
          r.payload_bytes += 8;
          break;
        default:
          (void)c.PutLww(n, "reg" + std::to_string(i % 4), std::string(100, 'x'));
          r.payload_bytes += 100;
          break;
      }
      ++r.updates;
    });
  }
  net.RunUntil(1000 + 2000 * 2000 + 5000000);
  r.sent_bytes = c.bytes_sent();
  r.ratio = static_cast<double>(r.sent_bytes) / (static_cast<double>(r.payload_bytes) * (kRegions - 1));
  return r;
}

void BM_BytesPerUpdate(benchmark::State& state) {
  ShipResult delta, full;
  for (auto _ : state) {
    delta = Ship(false);
    full = Ship(true);
  }
  state.counters["delta_ratio"] = delta.ratio;
  state.counters["full_state_ratio"] = full.ratio;
  state.counters["delta_bytes_per_update"] = static_cast<double>(delta.sent_bytes) / delta.updates;
  state.counters["full_bytes_per_update"] = static_cast<double>(full.sent_bytes) / full.updates;
  state.counters["full_over_delta"] = full.ratio / delta.ratio;
}
BENCHMARK(BM_BytesPerUpdate)->Iterations(1)->Unit(benchmark::kMillisecond);

// --- convergence lag ----------------------------------------------------------------

void BM_ConvergenceLag(benchmark::State& state) {
  const sim::Time batch_us = state.range(0);
  std::vector<double> ratios, lags_ms;
  for (auto _ : state) {
    sim::Network net = sim::Network::Aws(3, kRegions);
    sim::CrdtClusterOptions o;
    o.node.batch_interval_us = batch_us;
    o.tick_us = std::max<sim::Time>(1000, batch_us);
    sim::CrdtCluster c(&net, o);
    std::mt19937_64 rng(5);
    struct Probe {
      int writer = -1, target = -1;
      sim::Time start = 0;
      std::string value;
      bool done = true;
    } probe;
    c.on_step = [&](int node) {
      if (probe.done || node != probe.target) return;
      const CrdtValue* v = c.node(node).Get("lag");
      if (v && v->As<LwwRegister>()->Get() == probe.value) {
        probe.done = true;
        const double lag = static_cast<double>(net.Now() - probe.start);
        lags_ms.push_back(lag / 1000.0);
        ratios.push_back(lag / static_cast<double>(net.one_way_us(probe.writer, probe.target)));
      }
    };
    for (int i = 0; i < 400; ++i) {
      // Writes at random phases relative to the batching clock.
      net.At(100000 + i * 500000 + static_cast<sim::Time>(rng() % 10000), [&, i]() {
        probe.writer = static_cast<int>(rng() % kRegions);
        sim::Time far = -1;
        for (int t = 0; t < kRegions; ++t) {
          if (t != probe.writer && net.one_way_us(probe.writer, t) > far) {
            far = net.one_way_us(probe.writer, t);
            probe.target = t;
          }
        }
        probe.value = "w" + std::to_string(i);
        probe.start = net.Now();
        probe.done = false;
        (void)c.PutLww(probe.writer, "lag", probe.value);
      });
    }
    net.RunUntil(100000 + 400 * 500000 + 1000000);
  }
  auto pct = [](std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
  };
  state.counters["samples"] = static_cast<double>(ratios.size());
  state.counters["lag_over_oneway_p50"] = pct(ratios, 0.5);
  state.counters["lag_over_oneway_p90"] = pct(ratios, 0.9);
  state.counters["lag_ms_p50"] = pct(lags_ms, 0.5);
  state.counters["batch_interval_ms"] = static_cast<double>(batch_us) / 1000.0;
}
BENCHMARK(BM_ConvergenceLag)->Arg(1000)->Arg(5000)->Arg(20000)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace geokv::crdt

BENCHMARK_MAIN();
