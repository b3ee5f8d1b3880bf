// A simulated Multi-Paxos group with a key-value state machine and randomized clients,
// driven by the shared simulator Network. One call runs one seed end to end: faults
// (jitter, loss, duplication, reordering, partitions incl. asymmetric ones, crashes that
// lose unsynced writes, process pauses, per-replica clock offsets and drift), invariant
// checks after every event, and a client history that tests hand to Porcupine.
//
// A pause is a SIGSTOP: the replica's inputs (peer messages, client requests, its ticks)
// are held while it is stopped and handed to it when it resumes (peer messages first or
// client requests first, as the seed decides; each in arrival order), each with the local
// clock read at the resume time; its overdue tick comes only after them.
//
// Each replica persists through sim::PaxosStore: the production PaxosLog over
// storage::MemoryStorage, written as the engine writes it (one batch per Ready, synced when
// the Ready says must_sync); a crash loses every write not synced.
//
// Ownership: a PaxosCluster owns its network, replicas, storages and clients.
// Thread-safety: none; one thread runs a cluster (several clusters may run on several
// threads, they share nothing).
#ifndef GEOKV_CORE_SIM_PAXOS_CLUSTER_H_
#define GEOKV_CORE_SIM_PAXOS_CLUSTER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/sim/network.h"
#include "core/sim/paxos_store.h"
#include "replication/paxos/replica.h"

namespace geokv::sim {

struct PaxosSimOptions {
  uint64_t seed = 1;
  int replicas = 3;            // one per AWS region (VA, CA, OR, EU, JP)
  // Voters of the genesis group: the first ones (0: all). The others start outside the
  // group; with member_changes the nemesis adds them as learners, promotes and removes
  // replicas (keeping at least three voters), one change at a time, under every fault.
  int genesis_voters = 0;
  bool member_changes = false;
  int clients = 6;             // client c lives in region c % replicas
  int keys = 3;
  int ops_per_client = 20;
  bool faults = true;          // network faults and nemesis during the fault phase
  bool crashes = true;         // nemesis may crash and restart replicas
  bool pauses = true;          // nemesis may pause a replica (the leader half of the time)
  Time pause_us_max = 10'000'000;
  bool check_invariants = true;
  bool clients_know_leader = false;  // send to the current leader (benchmarks)
  Time fault_phase_us = 8'000'000;   // faults stop (and all heal) after this
  Time deadline_us = 120'000'000;    // hard bound on virtual time of a run
  Time client_timeout_us = 1'500'000;
  int client_attempts_max = 40;
  Time think_us_max = 200'000;       // pause between a client's operations
  double clock_drift_max = 0.0005;   // clocks run at 1 +- this
  Time clock_offset_us_max = 1'000'000'000;  // each local clock starts at [0, this)
  int compact_every_slots = 0;       // replicas snapshot their state this often (0: never)
  bool writes_only = false;
  Time calm_jitter_us = 0;           // jitter when `faults` is off (benchmarks)          // only put/add/cas (benchmarks of the write path)
  std::optional<Time> crash_leader_at_us;  // failover measurement
  // Steady-state window: replica-to-replica traffic and distinct commands committed
  // between these times are reported in the result (benchmarks).
  std::optional<Time> measure_from_us;
  std::optional<Time> measure_to_us;
  paxos::Config config;              // template; id, replicas and seed are set per replica
};

// One client operation as Porcupine sees it.
struct HistoryOp {
  int client = 0;
  int region = 0;
  std::string op;  // put, get, cas, add
  std::string key;
  int64_t value = 0;  // put value, cas new value, add delta
  int64_t arg = 0;    // cas expected value
  Time call_us = 0;
  Time return_us = 0;
  bool ok = false;    // cas: swapped; others: true
  int64_t out = 0;    // get: value read; add: value after
  // No answer. The simulator knows more than the client: an unanswered write that never
  // took effect (never chosen, or chosen only after a newer command of its client, which
  // makes it a duplicate) is left out of the history, and one that did has return_us set
  // to when a replica first applied it (it took effect by then); the output stays unknown.
  bool unknown = false;
  uint64_t seq = 0;  // the client's sequence number (writes)
};

struct PaxosSimResult {
  uint64_t seed = 0;
  bool ok = true;                // invariants, persist-before-send, durability, liveness
  std::string failure;           // first failure, human-readable
  std::vector<HistoryOp> history;
  uint64_t trace_hash = 0;
  Time end_us = 0;
  uint64_t commands_applied = 0;  // distinct commands applied (max over replicas)
  uint64_t elections = 0;
  uint64_t malformed = 0;
  uint64_t snapshots_sent = 0;
  uint64_t snapshots_installed = 0;
  uint64_t pauses = 0;              // nemesis pauses
  uint64_t held_inputs = 0;         // inputs delivered to a paused replica, handed over later
  uint64_t member_changes = 0;      // membership changes committed (the final epoch)
  uint64_t lost_changes = 0;        // recovery found a change lost (stats, all replicas)
  uint64_t recovered_dropped = 0;   // recovery dropped stale entries (stats, all replicas)
  NetworkStats net;
  std::optional<Time> failover_us;    // crash of the leader -> first new commit
  std::optional<Time> new_leader_us;  // crash of the leader -> a new leader won phase 1
  uint64_t window_messages = 0;       // replica-to-replica, within the measure window
  uint64_t window_bytes = 0;
  uint64_t window_heartbeat_messages = 0;  // Heartbeat + HeartbeatAck among window_messages
  uint64_t window_commands = 0;
  int leader_at_end = -1;
  Time election_timeout_us = 0;
};

// Runs one seed to completion.
PaxosSimResult RunPaxosSim(const PaxosSimOptions& options);

// Writes histories as {"histories":[{"seed":n,"ops":[...]}]} for tests/porcupine.
void WriteHistories(const std::string& path, const std::vector<PaxosSimResult>& runs);

// Runs the Porcupine checker binary on `path`; returns the seeds it rejected (illegal or
// unknown), or nullopt if the checker could not be run or its output not parsed. The seeds
// rejected only for want of a verdict within the checker's time limit (unknown) also go to
// *undecided when given.
std::optional<std::vector<uint64_t>> PorcupineRejects(const std::string& checker, const std::string& path,
                                                      std::vector<uint64_t>* undecided = nullptr);

}  // namespace geokv::sim

#endif  // GEOKV_CORE_SIM_PAXOS_CLUSTER_H_
