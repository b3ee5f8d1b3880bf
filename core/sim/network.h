// The deterministic simulator's network and event loop, shared by every protocol harness
// (Paxos, CRDT dissemination, later the whole engine).
//
// One thread, virtual time in microseconds, one seeded generator: a run is fixed by its
// seed, and TraceHash() proves it (the same seed gives the same hash). Messages between
// nodes take half the region-to-region round-trip time plus jitter; loss, duplication,
// directed partitions and down nodes are applied when a message is sent or delivered.
// Reordering follows from jitter: two messages on one link may overtake each other.
//
// Ownership: the Network owns its event queue, handlers and generator. Handlers and
// scheduled functions are called from Step()/RunUntil() only, never re-entrantly from
// Send()/At(); they may call Send() and At() themselves.
// Thread-safety: none; a Network belongs to one thread (the simulation is single-threaded
// by design so that a seed replays exactly).
#ifndef GEOKV_CORE_SIM_NETWORK_H_
#define GEOKV_CORE_SIM_NETWORK_H_

#include <cstdint>
#include <functional>
#include <queue>
#include <random>
#include <string>
#include <vector>

namespace geokv::sim {

using Time = int64_t;  // virtual microseconds since the start of the run

// Per-message fault probabilities, applied on every Send.
struct Faults {
  double loss = 0;       // probability that a message is dropped
  double duplicate = 0;  // probability that a message is delivered twice
  Time jitter_us = 0;    // extra delay drawn uniformly from [0, jitter_us] per copy
};

// Network counters, for benchmarks (messages and bytes per command) and test diagnostics.
struct NetworkStats {
  uint64_t sent = 0;          // Send() calls
  uint64_t sent_bytes = 0;    // bytes passed to Send()
  uint64_t delivered = 0;     // handler invocations
  uint64_t dropped = 0;       // lost, blocked, or receiver down
  uint64_t duplicated = 0;    // extra copies scheduled
  uint64_t redelivered = 0;   // held for a down node, delivered to its next incarnation
};

class Network {
 public:
  using Handler = std::function<void(int from, std::string bytes)>;

  // rtt_ms[i][j]: round-trip time between nodes i and j (regions[i]: node i's region); the
  // one-way delay is rtt/2. The matrix must be square and match `regions`.
  Network(uint64_t seed, std::vector<std::string> regions,
          std::vector<std::vector<double>> rtt_ms);

  // The first `regions` (1..5) of VA, CA, OR, EU, JP with the round trips of the one
  // table, replication/transport/rtt_table.h (AWS, 2017), with `per_region` nodes each:
  // node i is in region i % regions; nodes of one region are kIntraRegionRttMs apart.
  static Network Aws(uint64_t seed, int regions, int per_region = 1);
  static constexpr double kIntraRegionRttMs = 1.0;

  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;
  // Movable only while nothing is scheduled: queued deliveries refer to this object.
  Network(Network&&) = default;
  Network& operator=(Network&&) = default;

  // Installs the receive handler of `node` (replacing any earlier one).
  void Attach(int node, Handler deliver);

  // Queues `bytes` from `from` to `to`, subject to partitions, loss, duplication and
  // latency plus jitter. A message to oneself is delivered after zero network delay.
  // `after_us` delays the departure (the sender was still busy processing when it sent).
  void Send(int from, int to, std::string bytes, Time after_us = 0);

  // Runs `fn` at virtual time `when` (clamped to Now()). Events at equal times run in the
  // order they were scheduled, which keeps ties deterministic.
  void At(Time when, std::function<void()> fn);

  Time Now() const { return now_; }

  // Runs the next event; false when the queue is empty.
  bool Step();
  // Runs every event scheduled at or before `t`, then sets Now() to `t`.
  void RunUntil(Time t);

  void SetFaults(Faults f) { faults_ = f; }
  const Faults& faults() const { return faults_; }

  // Directed partition: while blocked, messages from `from` to `to` are dropped (both at
  // send and at delivery, so a partition also cuts messages already in flight).
  void Block(int from, int to, bool blocked);
  // Removes every partition (does not change faults or node states).
  void HealAll();
  // A down node receives nothing: messages to it in flight are dropped at delivery, and
  // messages sent to it while down are dropped. Bringing it up again starts a new epoch, so
  // messages sent during an earlier life are not delivered to the new one — unless
  // SetRedelivery(true): then, as ZeroMQ does, messages addressed to a node that is down
  // (in flight, or sent meanwhile) wait in its peers' queues (bounded) and are delivered to
  // the next incarnation after it comes up, and messages a node sent before it crashed may
  // still arrive after it restarted.
  void SetUp(int node, bool up);
  void SetRedelivery(bool on) { redelivery_ = on; }
  static constexpr size_t kHeldPerNodeMax = 4096;
  bool IsUp(int node) const { return up_[node]; }
  bool IsBlocked(int from, int to) const { return blocked_[from][to]; }

  // The one seeded generator of the run; every random choice of the simulation (faults,
  // clients, protocol configs) draws from it so that the seed fixes everything.
  std::mt19937_64& Rng() { return rng_; }

  // Hash over every delivery (time, from, to, bytes) so far.
  uint64_t TraceHash() const { return trace_hash_; }
  const NetworkStats& stats() const { return stats_; }
  void ResetStats() { stats_ = NetworkStats{}; }

  int size() const { return static_cast<int>(regions_.size()); }
  const std::string& region(int node) const { return regions_[node]; }
  Time one_way_us(int from, int to) const;
  double rtt_ms(int a, int b) const { return rtt_ms_[a][b]; }
  // Events still queued (limits in tests: a run must drain).
  size_t pending() const { return queue_.size(); }

 private:
  struct Event {
    Time when;
    uint64_t seq;  // scheduling order, breaks ties deterministically
    std::function<void()> fn;
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return a.when != b.when ? a.when > b.when : a.seq > b.seq;
    }
  };

  void Deliver(int from, int to, uint64_t epoch, const std::string& bytes);

  // Constant after construction.
  std::vector<std::string> regions_;
  std::vector<std::vector<double>> rtt_ms_;

  std::mt19937_64 rng_;
  Time now_ = 0;
  uint64_t next_seq_ = 0;
  std::priority_queue<Event, std::vector<Event>, Later> queue_;
  std::vector<Handler> handlers_;
  std::vector<std::vector<bool>> blocked_;
  std::vector<bool> up_;
  std::vector<uint64_t> epoch_;  // bumped when a node comes back up
  bool redelivery_ = false;
  struct Held {
    int from;
    std::string bytes;
  };
  std::vector<std::vector<Held>> held_;  // per destination: waiting for it to come up
  Faults faults_;
  uint64_t trace_hash_ = 0xcbf29ce484222325ull;
  NetworkStats stats_;
};

// The seed of a single replay: GEOKV_SEED from the environment, or `fallback`.
int SeedFromEnvOr(int fallback);
// True when GEOKV_SEED is set (a test then runs only that seed).
bool SeedFromEnvSet();
// Seeds per simulation test: GEOKV_SIM_SEEDS from the environment, or `fallback`.
int SeedCountFromEnvOr(int fallback);
// The seeds this test process runs: GEOKV_SEED alone when set (and only in shard 0), else
// GEOKV_SIM_SEEDS (or `fallback`) seeds from GEOKV_SIM_FIRST_SEED (default 1) on, split
// across GEOKV_SIM_SHARDS processes by GEOKV_SIM_SHARD (soaks run chunks this way). Empty
// for the other shards of a single-seed replay.
std::vector<uint64_t> SuiteSeeds(int fallback);
// GEOKV_SIM_SHARD (0 when unset).
int SuiteShard();

}  // namespace geokv::sim

#endif  // GEOKV_CORE_SIM_NETWORK_H_
