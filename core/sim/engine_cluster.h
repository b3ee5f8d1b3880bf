// A simulated geokv cluster of whole Engines — the production engine code, driven by the
// shared simulator Network with MemoryStorage under each node — with randomized clients
// on strong keys (put, get, cas, add) and eventual keys (counter, set, lww), operators at
// work mid-run (a node drained, a policy change, the node back up), and a nemesis harsher
// than production: partitions (incl. asymmetric ones), crashes that keep a random prefix of unsynced writes, restarts
// that receive messages queued for the previous incarnation (as ZeroMQ delivers them),
// process pauses of up to 10 s during which inputs queue, storage errors (the node
// fail-stops and is restarted), a lost data directory (a node back on an empty disk),
// connection resets as a replica departs (with replica moves: departure_cuts),
// processing and fsync time with a heavy tail, loss,
// duplication, jitter, and clocks per node: monotonic clocks with drift, wall clocks
// seconds apart. Each node runs the production round (Engine::Round).
//
// One call runs one seed end to end and checks: after healing and quiescence every region
// holds the same state for every eventual key and the same value for every strong key; no
// acknowledged counter increment or set add is lost and no acknowledged set removal comes
// back; operations that do not fit a key's mode fail with kWrongMode; every region holds the
// same cluster map, with every node up in it. The strong history
// goes to Porcupine (tests/porcupine) through WriteHistories.
//
// Ownership: the cluster owns its network, engines and storages. Thread-safety: none.
#ifndef GEOKV_CORE_SIM_ENGINE_CLUSTER_H_
#define GEOKV_CORE_SIM_ENGINE_CLUSTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/sim/network.h"
#include "core/sim/paxos_cluster.h"

namespace geokv::sim {

struct EngineSimOptions {
  uint64_t seed = 1;
  int regions = 3;
  // Nodes per region: node i is in region i % regions, and each shard's replica in a
  // region is on one of its nodes (the map spreads them); nodes of a region are 1 ms apart.
  int nodes_per_region = 1;
  // Grows and replaces: early in the run an operator adds one node per region to the
  // running cluster (geokv node add; each starts on an empty disk and joins), and later
  // one of them dies for good: the operator marks it down, adds a replacement in its region
  // on an empty disk, and removes it once its replicas have moved away. Clients of each
  // region's first node turn to its added node while it serves.
  bool grow = false;
  int shards = 3;
  int clients = 9;             // client c talks to node c % nodes (in region c % regions)
  int strong_keys = 3;
  int eventual_keys = 2;       // per eventual type
  int ops_per_client = 24;
  bool faults = true;
  bool crashes = true;
  Time fault_phase_us = 8'000'000;
  Time deadline_us = 90'000'000;
  // Shorter than most pauses: a client of a paused node gives up and sends its next request,
  // which queues too; the last one is answered after the node resumes (the stale-read case
  // of a paused leader: invoked late in the pause, after newer writes completed elsewhere).
  Time client_timeout_us = 2'000'000;
  bool pauses = true;              // SIGSTOP-like pauses of up to 10 s, inputs queued meanwhile
  bool storage_errors = true;      // injected write failures (ENOSPC): the node fail-stops
  // Once per seed (with three regions or more), a node loses its data directory: it crashes
  // and comes back on an empty one. It must acknowledge nothing from then on; its clients
  // turn to the next region; the others converge without it, and it knows it was lost.
  bool disk_loss = false;
  // With replica moves (several nodes per region, or grow) and faults: the moment a node
  // learns that a move took a replica from it (the map lists it departed), its links to the
  // nodes holding that shard's other replicas drop everything, what is in flight included,
  // for kDepartureCutUs (a connection reset just then). What it wrote last reaches no one
  // until it sends it again.
  bool departure_cuts = true;
  Time wall_clock_offset_max_us = 5'000'000;  // wall clocks disagree by up to this, per node
  double clock_drift_max = 0.0005;
  uint64_t compact_every_slots = 8;  // small, so snapshots and their transfer run
  // Bulk writers: strong puts of large values (bulk_value_bytes, and every tenth one at the
  // value limit of 1 MiB; one past the limit must fail with kValueTooLarge) over bulk_keys
  // keys, from region 0, so shards hold many MiB and every snapshot is large. Every region
  // must end with the same value of each bulk key, intact.
  int bulk_writes = 0;
  int bulk_keys = 0;
  size_t bulk_value_bytes = 0;
  bool unsafe_skip_phase1_recovery = false;  // TEST ONLY: must be caught by Porcupine
  bool unsafe_lease_cached_time = false;     // TEST ONLY: a paused leader serves stale reads
  bool unsafe_forward_ids_restart = false;   // TEST ONLY: old replies complete new requests
  bool unsafe_ignore_storage_errors = false; // TEST ONLY: acknowledges what was not written
  bool unsafe_trust_any_disk = false;        // TEST ONLY: a lost directory rejoins and serves
  bool unsafe_apply_first_of_shared_slot = false;  // TEST ONLY: retries of lost commands are repeats
  bool unsafe_finish_move_unsettled = false;  // TEST ONLY: the map erases a voter still needed
  bool unsafe_no_member_repair = false;  // TEST ONLY: an aborted move leaves a region without a replica
  bool unsafe_release_unshipped = false;  // TEST ONLY: a departed CRDT replica is erased before it shipped
};

struct EngineSimResult {
  uint64_t seed = 0;
  bool ok = true;
  std::string failure;
  std::vector<HistoryOp> history;  // strong operations, for Porcupine
  uint64_t trace_hash = 0;
  Time end_us = 0;
  uint64_t strong_ok = 0, strong_unknown = 0, strong_refused = 0, eventual_ok = 0, wrong_mode_checked = 0;
  uint64_t crashes = 0, snapshots = 0, pauses = 0, fail_stops = 0, disks_lost = 0;
  uint64_t foreign_disk_messages = 0;  // peer messages dropped from a lost directory (Engine stats)
  uint64_t bulk_ok = 0, bulk_bytes = 0;
  uint64_t reforwards = 0;       // forwards re-sent to a new leader (Engine stats, all nodes)
  uint64_t leader_handoffs = 0;  // leaderships a draining node handed away (likewise)
  uint64_t verdicts = 0;         // node states the failure detectors proposed (likewise)
  uint64_t leaders_planned = 0;  // SetLeader commands the placement drivers proposed (likewise)
  uint64_t member_changes = 0;   // Paxos membership changes proposed (learners, moves; likewise)
  uint64_t replicas_moved = 0;   // replicas closed on a node a move took them from (likewise)
  uint64_t nodes_added = 0;      // nodes added to the running cluster and started (grow)
  uint64_t nodes_removed = 0;    // nodes removed from the map after dying (grow)
  uint64_t metadata_voters_replaced = 0;  // dead metadata voters no longer voting (grow, even seeds)
  uint64_t departure_cuts = 0;   // links cut as a replica departed (departure_cuts)
  int shards_used = 0;  // strong shards that acknowledged a write (keys must spread)
};

EngineSimResult RunEngineSim(const EngineSimOptions& options);

}  // namespace geokv::sim

#endif  // GEOKV_CORE_SIM_ENGINE_CLUSTER_H_
