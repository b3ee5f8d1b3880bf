// Throughput of the pure Multi-Paxos state machine on one core: three replicas in one
// thread, messages handed over in memory (encode, verify, decode included), the log kept
// by the production PaxosLog over in-memory storage (sim::PaxosStore). The baseline is the same group with batching off (one command per slot);
// compare commands/s across the rows of one run.
#include <benchmark/benchmark.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "core/sim/paxos_store.h"
#include "replication/paxos/replica.h"

namespace {

using namespace geokv::paxos;  // NOLINT: bench brevity

struct Bus {
  std::vector<geokv::sim::PaxosStore> st;
  std::vector<std::unique_ptr<Replica>> r;
  std::deque<OutMessage> q;
  uint64_t applied = 0;

  explicit Bus(Config c, int n) : st(n), r(n) {
    for (int i = 0; i < n; ++i) {
      c.id = static_cast<uint32_t>(i);
      c.replicas = static_cast<uint32_t>(n);
      c.seed = 1 + static_cast<uint64_t>(i);
      r[i] = std::move(Replica::Open(c, st[i].log()).value());
    }
  }
  void Pump(int i) {
    while (r[i]->HasReady()) {
      Ready rd = r[i]->Ready();
      (void)st[i].Persist(rd);  // synced when rd.must_sync
      for (auto& m : rd.messages) q.push_back(std::move(m));
      if (i == 0) applied += rd.apply.size();
      r[i]->Advance();
    }
  }
  void Drain() {
    for (size_t i = 0; i < r.size(); ++i) Pump(static_cast<int>(i));
    while (!q.empty()) {
      OutMessage m = std::move(q.front());
      q.pop_front();
      (void)r[m.to]->Step(m.bytes, 0);
      Pump(static_cast<int>(m.to));
    }
  }
};

void BM_PaxosCommit(benchmark::State& state) {
  Config c;
  c.batch_commands_max = static_cast<size_t>(state.range(0));
  c.window_slots = 16;
  c.pending_commands_max = 1 << 20;
  c.election_ticks = 10;
  c.heartbeat_ticks = 2;
  Bus bus(c, 3);
  int64_t now = 0;
  while (!bus.r[0]->IsLeader()) {
    bus.r[0]->Tick(now += c.tick_us);
    bus.Drain();
  }
  // Keep a per-run memory bound: the log of the in-memory store grows with every command.
  const std::string payload(16, 'v');
  uint64_t client_seq = 0;
  constexpr int kPerIteration = 4096;
  for (auto _ : state) {
    for (int i = 0; i < kPerIteration; ++i) {
      (void)bus.r[0]->Propose(Command{1, ++client_seq, payload});
      // A round of deliveries every 256 proposals: offered load above what one round
      // trip commits, so proposals queue behind the window and get batched.
      if (i % 256 == 255) bus.Drain();
    }
    bus.Drain();
  }
  state.SetItemsProcessed(static_cast<int64_t>(bus.applied));
  state.counters["cmds_per_slot"] = benchmark::Counter(
      static_cast<double>(bus.r[0]->stats().commands_proposed) /
      static_cast<double>(std::max<uint64_t>(1, bus.r[0]->stats().slots_proposed)));
}
// Arg: commands per slot at most (1 = no batching: the baseline).
BENCHMARK(BM_PaxosCommit)->Arg(1)->Arg(64)->Arg(1024)->Iterations(20)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
