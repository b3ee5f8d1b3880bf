// Engine: everything one geokv node does, as a single-threaded state machine driven by an
// Env (two clocks, transport, storage, randomness) — the same code under the deterministic
// simulator and in production (geokvd's event loop).
//
// A cluster has one or more nodes per region (node ids 0..nodes-1; EngineOptions::members
// gives each its region). Strong keys are hashed onto `shards` Paxos groups; each group
// has one replica per region, placed on one node of that region by the cluster map (its
// Paxos replica id is the region's index), and an optional preferred leader region. The
// metadata group (the cluster map) has its voters on the first node (lowest id) of every
// region, and every other node as a learner (its leader adds them): every node applies the
// map. Each node runs:
//  * the Paxos replicas the cluster map places on it (every group, with one node per
//    region), plus the metadata group's;
//  * for each of those shards, a CRDT replica of the shard's eventual-mode keys (a
//    crdt::Disseminator under the same replica id), replicated to the shard's replicas in
//    the other regions; and, until it has shipped everything, the CRDT replica of a shard
//    that moved away (departed, docs/placement.md "Eventual keys").
// Each request is routed by the policy (longest prefix -> mode). Strong requests are
// served by the shard's leader: a replica that does not lead forwards them there (or fails
// fast with kUnavailable when it knows no leader); a node that holds no replica of the shard
// proxies them to the node of its region that does, which serves or forwards them like a
// client's. Reads use the leader's lease or a read-index round. Eventual requests are
// served by the node of this region that holds the key's shard (proxied there like strong
// ones) and answered once what they wrote, or read, is durable there.
//
// The round. The engine owns it and its hosts only feed it (Round()): take every input that
// is ready (peer messages, then client calls, then the timers when due), read the clock from
// the Env at each decision that depends on time (a lease check, a deadline), process,
// persist everything every protocol asked for in one Storage write (one fsync: group
// commit), send, apply, reply. Paxos state is always synced, whatever the configured data
// durability; CRDT state is written with the configured durability.
//
// Fail-stop: when the Storage fails (an I/O error, a full disk, a commit timeout, a
// WiredTiger panic) the engine stops: it answers nothing more, sends nothing more, and
// failure() says why. The host must then stop the process (log the cause, exit non-zero)
// so that a supervisor restarts it and recovery runs; the simulator crashes the node.
//
// Data directory identity: a node's directory gets a random 64-bit disk id when it is
// created. A node whose directory was lost and that comes back empty forgot its Paxos
// promises and its CRDT sequence numbers and dots; it must not take part again. So:
//   - every transport message carries the sender's id, whether it is established, the id
//     the sender has recorded for the receiver and, without a record, the id it last saw
//     from the receiver;
//   - a new directory is not established: it takes part in nothing (peers drop its
//     messages, it drops theirs, it serves no client) until every other node has echoed its
//     id. A peer echoes the id it first saw only if it has no record of another: so a node
//     whose earlier life any peer recorded never establishes. Then it is established (and
//     persists that). The peers record its id (persisted) from its first established
//     message, and accept its messages from then on. A directory of an earlier version, or
//     of a one-region cluster, is established at once;
//   - a peer holding a record of another id drops everything the node sends and echoes that
//     record: the node learns that it is not the node its peers know, and refuses every
//     client operation but status with UNAVAILABLE, saying why.
// So every node must be reachable when a cluster is created (each new directory waits for
// every peer), unless the nodes are started as a new cluster (EngineOptions::new_cluster,
// geokvd --new-cluster), which only the creator of a cluster may assert. A node on an empty
// disk never comes back under its old id; it is replaced by a new node (below).
//
// Adding a node (Op::kNodeAdd, admin): the metadata group commits AddNode (the next id, an
// existing region); every node applying it grows its per-node state (GrowNodes) and
// connects to it (Env::ConnectPeer). The new node runs with EngineMember::added for itself:
// its map starts as the genesis one (the members that are not `added`) and follows the
// metadata group as a learner; its new directory waits for the metadata voters only. The
// placement driver then moves replicas onto it; each move's CRDT replica joins by state
// transfers (crdt::DisseminatorOptions::join) before its Paxos learner catches up. A
// replica that moved away is departed until it has shipped what it wrote (ReleaseReplica)
// or its node is removed, then retired everywhere. docs/placement.md, "Adding and
// replacing nodes" and "Eventual keys".
//
// The metadata group replicates the cluster map (placement::ClusterMap): the regions, the
// nodes with their addresses and states, the placement of every shard, and the policy. A new
// cluster starts from the genesis map its options describe (every node must be given the
// same). Health: every node sends a heartbeat to the metadata group's leader each
// node_heartbeat_us; the leader runs a phi-accrual failure detector over their arrivals and
// proposes its verdicts (up, suspect, down) as commands, so every node sees the same states.
// A leader that was itself paused, or has just taken over, has no evidence about anyone:
// it starts every node's detector afresh instead of condemning them. Operators set the
// states `draining`, `up`, `down` and `removed` (Op::kNodeState, admin). A draining node
// hands every leadership it holds to another region's up node. Every 5 s the metadata
// leader runs the placement driver's leadership rules (placement::Plan; SetLeader commands)
// and each shard's replicas prefer the leader region the map gives, while its node is up:
// leaderships leave nodes that are not up and come back to their preferred regions. Nodes
// commit the sizes of the shards they lead (placement::LoadReporter) every 10 s when they
// changed materially.
//
// The policy lives in the metadata group; each node routes by the policy it has applied,
// so a change takes effect in a region when that region applies it (one heartbeat after
// the commit, normally). A change that would re-map keys holding data is refused when
// proposed (checked at every shard's leader, against its rows and eventual keys); data
// that check could not see (still travelling, or on a lagging replica) is protected where
// it is served: an operation on a key whose data has another mode than the policy now gives
// it fails with kWrongMode naming both, so data is never reinterpreted or hidden. Clients
// create data under a new prefix once the node they use lists the new rule. (With several
// nodes per region, the second check sees only the data of the node serving the key;
// docs/placement.md.)
//
// Thread-safety: none. Round must be called from one thread; callbacks run on it, inside
// Round. Ownership: the Engine borrows the Env, which must outlive it.
#ifndef GEOKV_CORE_ENGINE_ENGINE_H_
#define GEOKV_CORE_ENGINE_ENGINE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "base/status.h"
#include "core/engine/limits.h"
#include "core/engine/storage.h"
#include "core/engine/cluster_map.h"
#include "core/engine/crdt_store.h"
#include "core/engine/env.h"
#include "core/engine/failure_detector.h"
#include "core/engine/paxos_log.h"
#include "core/engine/placement_driver.h"
#include "core/engine/policy.h"
#include "core/engine/request.h"
#include "replication/crdt/disseminator.h"
#include "replication/paxos/replica.h"

namespace geokv {

// A node of a new cluster, as the genesis cluster map lists it.
struct EngineMember {
  uint32_t region = 0;         // the index of its region, below EngineOptions::regions
  std::string region_name;     // the region's name (its first node's counts; empty: "region-<i>")
  std::string peer_address;    // where its peers reach it
  std::string client_address;  // where its clients reach it
  // Added to the running cluster (geokv node add), so not in the genesis map. A node whose
  // own entry says so joins: it starts from the metadata group's map, not the genesis one;
  // its keys come with the replicas moved onto it.
  bool added = false;
  // Gone for good (replaced, or to be removed): not waited for by a joining node, and not
  // connected to (the server's business).
  bool removed = false;
};

struct EngineOptions {
  uint32_t self = 0;     // this node's id, below the node count
  uint32_t regions = 1;  // regions in the cluster
  // Per node id (the same list on every node): its region and addresses for the genesis
  // map. Empty: one node per region, node i in region i ("region-<i>", "node-<i>").
  // Every region must have a node; at most kNodesMax nodes.
  std::vector<EngineMember> members;
  static constexpr uint32_t kNodesMax = 64;  // each node has a metadata replica id (below 64)
  uint32_t shards = 4;   // strong-mode Paxos groups
  // Per shard, the region whose replica should lead it (empty: no preference); the entry
  // at index `shards`, if any, is the metadata group's.
  std::vector<std::optional<uint32_t>> preferred_leader;
  Policy policy;         // the policy until the metadata group says otherwise
  Limits limits;
  storage::Durability durability = storage::Durability::kSync;

  int64_t tick_us = 10'000;
  int heartbeat_ticks = 5;
  int election_ticks = 30;
  int resend_ticks = 30;
  int64_t lease_us = 250'000;
  double clock_drift_max = 0.001;
  int64_t request_timeout_ms = 5'000;
  int64_t crdt_batch_interval_us = 5'000;
  int64_t crdt_resend_interval_us = 600'000;
  uint64_t compact_every_slots = 10'000;  // strong shards snapshot this often
  size_t pending_requests_max = 100'000;
  // Largest answer to a shard-snapshot or crdt-dump request (backups): a chunk of a shard
  // snapshot, or a page of eventual keys (a single state larger than this still goes alone).
  size_t backup_chunk_bytes = 4u << 20;
  int64_t node_heartbeat_us = 1'000'000;     // each node to the metadata leader
  placement::FailureDetectorOptions failure_detector;
  int64_t load_report_us = 10'000'000;       // how often a node measures the shards it leads
  int64_t driver_interval_us = 5'000'000;    // how often the metadata leader plans
  placement::DriverOptions driver;
  placement::ReportOptions load_reporting;   // which sizes it then commits

  // TEST ONLY: passed to every Paxos group (the simulator proves its checkers catch it).
  bool unsafe_skip_phase1_recovery = false;
  // TEST ONLY: leases are checked against the time of the last tick (a paused leader then
  // serves stale reads); the simulator must catch it.
  bool unsafe_lease_cached_time = false;
  // TEST ONLY: forward ids restart at 1 with every incarnation (a reply queued for the
  // previous incarnation then completes another request); the simulator must catch it.
  bool unsafe_forward_ids_restart = false;
  // TEST ONLY: a failed storage write is ignored instead of stopping the node (the zombie
  // that acknowledges what it never wrote); the simulator must catch it.
  bool unsafe_ignore_storage_errors = false;
  // TEST ONLY: the metadata leader keeps its detectors' history across its own pauses, so
  // after one it condemns nodes that were alive all along; the tests must catch it.
  bool unsafe_detector_ignores_pauses = false;
  // This node is being created with a new cluster: a new data directory takes part at once,
  // without waiting for every peer to confirm it (so a cluster can be created while a node
  // is unreachable). Never for a node of a running cluster restarted on an empty directory
  // (see "Data directory identity").
  bool new_cluster = false;
  // TEST ONLY: data directory ids are neither checked nor enforced: a node whose directory
  // was lost rejoins with forgotten promises and serves from an empty state; the tests must
  // catch it.
  bool unsafe_trust_any_disk = false;
  // TEST ONLY (the old behaviour): of a slot holding several commands, only the first is
  // applied; Paxos records the others' sessions, so a retry is answered as a repeat and
  // never takes effect. The simulator must catch it.
  bool unsafe_apply_first_of_shared_slot = false;
  // TEST ONLY (the old behaviour): a move's FinishMove is proposed as soon as the leader
  // has committed the removal of the replaced replica, before a quorum of the new voters
  // knows it; the leader's death then leaves voters that still count the erased replica
  // (paxos::Replica::MembershipSettled). The simulator must catch it.
  bool unsafe_finish_move_unsettled = false;
  // TEST ONLY (the old behaviour): a placed replica that a move's removal took out of its
  // group before the move was aborted is not brought back: the aborted move's voter is
  // removed as a stray, and the region is left without a replica. The simulator must catch it.
  bool unsafe_no_member_repair = false;
  // TEST ONLY: a departed CRDT replica is released (ReleaseReplica, then erased) as soon as
  // the map lists it departed, before every other replica acknowledged what it wrote: the
  // writes it acknowledged that reached no other replica are lost. The simulator must catch it.
  bool unsafe_release_unshipped = false;
};

struct EngineStats {
  uint64_t requests = 0;
  uint64_t forwarded = 0;
  uint64_t timeouts = 0;
  uint64_t bad_messages = 0;      // envelopes that failed verification
  uint64_t rounds = 0;            // Round() calls
  uint64_t storage_writes = 0;    // one per event-loop round that had something to persist
  uint64_t storage_syncs = 0;
  uint64_t reforwards = 0;        // forwards re-sent to a new leader under the same session
  uint64_t parked = 0;            // strong requests that waited for their group's next leader
  uint64_t policy_checks = 0;     // policy changes checked against every shard's leader
  uint64_t metadata_voters_replaced = 0;  // metadata voters on down nodes replaced (leader)
  uint64_t members_repaired = 0;  // placed replicas a group had lost, added back (shard leaders)
  uint64_t compaction_failures = 0;
  uint64_t strong_applied = 0;
  uint64_t snapshots = 0;
  uint64_t node_heartbeats_sent = 0;
  uint64_t foreign_disk_messages = 0;  // dropped: from a peer whose data directory changed
  uint64_t verdicts_proposed = 0;  // node states the failure detector proposed (as metadata leader)
  uint64_t detector_restarts = 0;  // the metadata leader took over or resumed after a pause
  uint64_t leader_handoffs = 0;    // leaderships handed away (draining, or a move replacing this replica)
  uint64_t load_reports = 0;       // shard sizes sent to the metadata group (when they changed)
  uint64_t leaders_planned = 0;
  uint64_t member_changes = 0;     // Paxos membership changes proposed here (learners, moves)
  uint64_t moves_planned = 0;      // BeginMove commands the placement driver proposed here
  uint64_t replicas_opened = 0;    // replicas a move placed here
  uint64_t replicas_closed = 0;    // replicas a move took away (their data erased)
  uint64_t crdt_replicas_opened = 0;   // CRDT replicas of shards placed here (moves, start)
  uint64_t crdt_replicas_erased = 0;   // CRDT replicas released, aborted or moved away, erased
  uint64_t crdt_releases = 0;          // ReleaseReplica proposed for a departed replica that shipped all
  uint64_t paxos_held_for_join = 0;    // Paxos messages a learner did not send while its CRDT replica joins
  uint64_t duplicate_proxies = 0;      // proxied requests delivered twice, served once    // SetLeader commands the placement driver proposed here
  uint64_t proxied = 0;            // requests for a shard this node holds no replica of, sent to its region's holder
  uint64_t misrouted_messages = 0; // Paxos messages for a group this node holds no replica of (dropped)
  uint64_t envelopes_sent = 0;    // protocol messages (Paxos, CRDT, forwards)
  uint64_t messages_sent = 0;     // transport messages carrying them (bundled per peer per round)
};

class Engine {
 public:
  using Callback = std::function<void(Response)>;

  // Recovers every group and the CRDT state from env.Store().
  static StatusOr<std::unique_ptr<Engine>> Open(const EngineOptions& options, Env& env);

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // A message from a peer node.
  struct PeerMessage {
    uint32_t from = 0;
    std::string bytes;
  };
  // A client operation and where its answer goes.
  struct Call {
    Request request;
    Callback done;
  };
  // Everything that is ready at the start of a round. Hosts bound how much they take per
  // round (kRoundInputsMax each); the rest waits for the next round.
  struct RoundInputs {
    std::vector<PeerMessage> messages;
    std::vector<Call> calls;
  };
  static constexpr size_t kRoundInputsMax = 4096;

  // Runs one round: steps every message (bad ones are dropped and counted), starts every
  // call, runs the timers when NextTimerUs() has passed, then persists once, sends, applies
  // and answers. Each `done` runs exactly once, inside this or a later Round (never when the
  // engine has failed: the host stops). kUnavailable and kBusy mean the operation was
  // refused before it could take effect; kTimeout on a write means its outcome is unknown.
  void Round(RoundInputs inputs);
  // When the engine needs a round even without input (its next timer), on env.NowUs()'s
  // clock. Every tick while requests are pending or local deltas wait to be sealed;
  // otherwise at the next tick that is a multiple of heartbeat_ticks (when a leader's
  // heartbeats are due): the ticks in between then run together, so an idle node wakes
  // for its timers 1/heartbeat_ticks as often.
  int64_t NextTimerUs() const;
  // OK while the engine works; the Storage failure that stopped it otherwise.
  const Status& failure() const { return failed_; }

  // Introspection.
  const Policy& policy() const { return map_.policy(); }
  // The cluster map as this node has applied it.
  const placement::ClusterMap& cluster_map() const { return map_; }
  const EngineStats& stats() const { return stats_; }
  uint32_t ShardOf(std::string_view key) const;
  // Whether this node holds a replica of `group` (a shard, or the metadata group).
  bool Hosts(uint32_t group) const { return groups_[group].replica != nullptr; }
  // False where this node holds no replica of `group`.
  bool IsLeader(uint32_t group) const;
  // True once a peer has shown that it knows this node by another data directory (this
  // one was lost or replaced): the node then serves no client operation but status.
  bool data_directory_lost() const { return lost_disk_known_ != 0; }
  // False while this node's new data directory waits for its peers' confirmation.
  bool data_directory_confirmed() const { return disk_established_; }
  // The node that leads `group` as this node's replica knows it; -1 when it does not know,
  // or holds no replica of the group.
  int32_t LeaderOf(uint32_t group) const;
  // The Paxos groups (shards and the metadata group) whose leader, as this node knows it,
  // is node `node`.
  uint32_t GroupsLedBy(uint32_t node) const;
  uint32_t groups() const { return static_cast<uint32_t>(groups_.size()); }
  // The CRDT replica serving the eventual keys of `shard` here (placed here, not a move's
  // learner); nullptr where there is none.
  const crdt::Disseminator* EventualReplica(uint32_t shard) const;
  // The state of eventual key `key` where this node serves its shard (nullptr: absent, or
  // not served here). Tests and checkers.
  const crdt::CrdtValue* EventualValue(std::string_view key) const;
  // Every CRDT replica held here, by (shard, replica id): serving, joining or departed.
  std::vector<std::pair<std::pair<uint32_t, uint32_t>, const crdt::Disseminator*>> CrdtReplicas() const;
  // The dissemination counters of every CRDT replica held here, summed.
  crdt::DisseminatorStats CrdtStats() const;
  // This node's replica of `group`; only where Hosts(group).
  const paxos::Replica& replica(uint32_t group) const { return *groups_[group].replica; }
  uint32_t self() const { return options_.self; }
  uint32_t nodes() const { return nodes_; }
  // The region of node `node` (below nodes()).
  uint32_t RegionOf(uint32_t node) const { return node_regions_[node]; }
  // Human-readable lines for `geokv status`.
  std::vector<std::string> StatusLines() const;
  // The bytes (keys and values) of a strong shard as applied here.
  uint64_t shard_bytes(uint32_t shard) const { return shard_bytes_[shard]; }
  // Recounts every shard's bytes from the Storage and compares (tests and checkers):
  // kInternal naming the first shard whose count drifted.
  Status CheckShardBytes() const;
  // Reads an applied strong value directly (tests and checkers; not linearizable).
  StatusOr<std::string> ReadStrongForTest(std::string_view key) const;

 private:
  struct Group {
    std::unique_ptr<PaxosLog> log;
    std::unique_ptr<paxos::Replica> replica;
    uint64_t applied = 0;       // highest slot applied to the state machine (persisted)
    uint64_t compacted_at = 0;  // applied slot of the last snapshot
  };
  struct Pending {
    Callback done;
    int64_t deadline_us = 0;
    uint64_t request_id = 0;    // echoed in the response
    bool write = false;         // forwards: the request changes state
    bool proxy = false;         // sent to this region's holder of the shard, not to its leader
    bool resendable = true;     // forwards: may be sent again after silence (StartForward)
    uint32_t skip = 0;          // proxies: regions passed over after silence or a refusal
    // Forwards: what was sent, where, when and how often, so that a forward to a leader
    // that lost leadership, or died, is re-sent to the new leader under the same Paxos
    // session (applied once whichever copy commits).
    Request forwarded;
    uint32_t group = 0;
    uint32_t sent_to = 0;
    int64_t sent_us = 0;
    int attempts = 0;
    std::string refusal;        // forwards: the last target's refusal, while waiting for a leader
  };
  static constexpr int kForwardAttemptsMax = 16;
  static constexpr int kParkElections = 4;  // election timeouts a request waits for a leader
  struct PendingRead {
    Request request;
    Callback done;
    int64_t deadline_us = 0;
  };

  Engine(const EngineOptions& options, Env& env);
  Status Recover();

  // The inputs of a round.
  void Submit(Request request, Callback done);
  void Step(uint32_t from, std::string_view bytes);
  void Tick();
  // Hands the wall clock to every CRDT replica's hybrid logical clock (LWW stamps), at each
  // tick; an operation hands it to the replica serving it (SubmitEventual), a message to the
  // replica it is for (StepCrdt).
  void ObserveClocks();

  // Where a request comes from: a client of this node (or this node itself), a node of
  // this region that holds no replica of its shard (proxied: served like a client's, but
  // its disk was checked by the sender and its Paxos session is the sender's), or a replica
  // of its group (forwarded to the leader: never forwarded again).
  enum class Via { kClient, kProxy, kForward };
  void Dispatch(Request request, Callback done, Via via);
  void SubmitStrong(uint32_t group, Request request, Callback done, Via via);
  // Serves an eventual operation on `d`, the replica of the key's shard placed here.
  void SubmitEventual(crdt::Disseminator& d, Mode mode, const Request& request, Callback done);
  // Sends a request for `shard` to the node of this region holding it (or, past a silent
  // one, another region's), served there like a client's; a proxied request that reached
  // a node holding no replica is refused (the proxy moves on).
  void ProxyToHolder(uint32_t shard, Request request, Callback done, Via via, const std::string& what);
  Status CheckRequest(const Request& request) const;
  // The policy after a policy-set or -remove (or the change a policy-check carries).
  StatusOr<Policy> PolicyAfter(const Request& request) const;
  // Refuses a policy change that would change the mode of a strong row or an eventual key
  // of shard `group` held here.
  Status CheckShardForPolicyChange(uint32_t group, const Request& request) const;
  // The metadata leader's check of a policy change against every shard's rows, by a
  // policy-check read at each shard's leader; proposes the change once all passed.
  void CheckShardsForPolicyChange(Request request, Callback done, Via via);
  // The mode of the data this node holds for `key` (nullopt: none), for a key the policy
  // routes to `routed`.
  std::optional<Mode> ModeOfData(std::string_view key, Mode routed) const;
  int64_t DeadlineUs(const Request& request) const;

  // The event-loop round: persist, send, apply, answer; repeated while there is work.
  void Process();
  Response ApplyCommand(uint32_t group, const paxos::Apply& apply);
  Response AnswerDuplicate(const paxos::Apply& apply);
  Response ServeRead(uint32_t group, const Request& request);
  // A chunk of `group`'s snapshot (Op::kShardSnapshot), at its leader after a read index:
  // a new token encodes the shard once and keeps it in shard_snapshots_.
  Response ServeShardSnapshot(uint32_t group, const Request& request);
  std::optional<std::string> ReadStrong(uint32_t group, std::string_view key) const;
  // Writes (or, value nullopt, deletes) a strong key whose value was `old`.
  void WriteStrong(uint32_t group, std::string_view key, std::optional<std::string> value,
                   const std::optional<std::string>& old);
  // A shard's bytes (keys and values), counted from the Storage.
  StatusOr<uint64_t> CountShardBytes(uint32_t group) const;
  // The state of `group` as Paxos ships it to a lagging replica: for a shard, a varint
  // row count then each row's key and value (crdt::Encoder bytes, keys ascending); for the
  // metadata group, the policy then the cluster map. It names neither its group nor a
  // format version. A storage error is returned, never a truncated snapshot.
  StatusOr<std::string> SnapshotOf(uint32_t group) const;
  Status InstallSnapshot(uint32_t group, std::string_view data, uint64_t index);
  // Queues an envelope for `to`; FlushOutbox sends each peer's queue as one message (a
  // Bundle when there are several).
  void SendEnvelope(uint32_t to, uint8_t channel, uint32_t group, std::string_view payload);
  void FlushOutbox();
  // Queues a Paxos message of `group` for the node holding replica `replica` of it.
  void SendPaxos(uint32_t group, uint32_t replica, std::string_view payload);
  void StepEnvelope(uint32_t from, std::string_view bytes, bool in_bundle);
  // Sends `request` to node `to`: the group's leader (a forward), or, proxy, the node of
  // this region holding the group's replica; its answer completes `done`.
  // `resendable`: a copy may be sent again after silence (a read, or a strong write under
  // its Paxos session); an eventual write is not (applied twice it counts twice).
  void StartForward(bool proxy, uint32_t group, uint32_t to, Request request, Callback done, bool resendable = true);
  // Where a request for `group`, which this node holds no replica of, goes: the first
  // region's holder the map says serves, in region order from this node's region plus
  // `skip`; -1 for none.
  int32_t ProxyTarget(uint32_t group, uint32_t skip) const;
  // Where a forward should go now: the leader this node knows, or for a proxied request
  // its region's holder; -1 for nowhere.
  int32_t ForwardTarget(const Pending& pending) const;
  // Re-sends a forward to ForwardTarget; false when it cannot (or, unless same_target_ok,
  // when that is the node it went to last).
  bool Reforward(Pending& pending, bool same_target_ok);
  // Re-sends forwards whose target is no longer the leader or has not answered in time.
  void ReforwardStale();
  // A forwarded write's answer: a refusal (kUnavailable, kBusy) says nothing of another
  // copy of it that may have been proposed, so its outcome becomes unknown (kTimeout).
  static Response UnknownIfRefused(Response r);
  // Parks a strong request refused only because its group is between leaders.
  void Park(uint32_t group, Request request, Callback done, Via via, Status why);
  // Submits again the parked requests whose group has a leader; refuses those past their bound.
  void RetryParked(int64_t now);
  // Whether a request for `group` submitted here now would find a leader (here or known).
  bool LeaderReady(uint32_t group) const;
  // The cluster map of a new cluster (regions, nodes, one replica per region of every shard,
  // the policy of the options).
  StatusOr<placement::ClusterMap> GenesisMap(const Policy& policy) const;
  // Applies a metadata command (a policy or node-state change) to the map.
  Status ApplyMetadata(const Request& command);
  // Health: sends this node's heartbeat when due; as metadata leader, runs the failure
  // detector and proposes its verdicts.
  void TickHealth(int64_t now);
  void ReceiveHeartbeat(uint32_t from, std::string_view payload);
  // Preferred leaders only where the map says their node is up; a draining node hands its
  // leaderships away.
  void TickLeadership(int64_t now);
  // As metadata leader, every driver_interval_us: the placement driver's leadership moves
  // (SetLeader) through the metadata group.
  void TickDriver(int64_t now);
  // As a shard's leader, carries out the replica change the map has in flight, one Paxos
  // membership change at a time: the target joins as a learner, catches up, is promoted,
  // the replica it replaces leaves (the leader hands over first if it is that one), then
  // FinishMove; AbortMove if the target stops serving before its promotion. Members the
  // map does not place leave the group.
  void TickMoves(int64_t now);
  static constexpr int64_t kMoveRetryUs = 1'000'000;
  // Opens this node's replica of `group` as replica `id` (at recovery, or when a move
  // places one here).
  Status OpenReplica(uint32_t group, uint32_t id);
  // When a round applied a map change, before the write that persists it: erases (in that
  // write) every replica the map no longer places here. ReconcileReplicas, at the end of
  // the round, then closes them and opens the replicas the map newly places here.
  void EraseDeparted();
  void ReconcileReplicas();
  // Nodes added to the running cluster: grows this node's per-node state (node count,
  // regions, metadata learner ids, data directory records, CRDT replicas) to the map's
  // node count.
  void GrowNodes();
  // After the map changed (and at open): GrowNodes, connects to every node the map lists
  // (Env::ConnectPeer, once per node), and retires the CRDT replicas of removed nodes.
  void FollowMapNodes();
  // The AddNode of a kNodeAdd request (its region named in the value); kInvalidArgument
  // when malformed or naming no region of the map.
  StatusOr<placement::AddNode> ParseNodeAdd(const Request& request) const;
  // The replica id of `group`'s replica in `region`, and the node holding it.
  uint32_t ReplicaInRegion(uint32_t group, uint32_t region) const;
  uint32_t HolderIn(uint32_t group, uint32_t region) const;
  // The metadata group's voter in `region` as this node's replica knows the membership: the
  // genesis one (replica id = region) while it votes, else the region's first other voter.
  uint32_t MetadataVoterIn(uint32_t region) const;
  // Metadata leader: a region whose voter's node is down or removed gets an up learner of
  // that region promoted, then the old voter leaves (one change at a time).
  void ReplaceMetadataVoters();
  // Refuses removing a node that still votes in the metadata group (kConflict).
  Status CheckNodeRemoval(const Request& request) const;
  // Commits the sizes of the shards this node leads when they changed materially
  // (placement::LoadReporter), every load_report_us.
  void TickLoad(int64_t now);
  // The data directory's identity (see the file comment). Loads or creates this node's
  // disk id and the ones it knows for its peers.
  Status LoadDiskIds(bool fresh);
  // Checks a transport message's identities (an Envelope's fields); false: drop its payload.
  bool CheckDisks(uint32_t from, uint64_t disk, bool established, uint64_t peer_disk, uint64_t peer_disk_seen);
  // Every kHelloIntervalUs while identities are being checked: a Hello to each peer
  // concerned, so that echoes do not wait for other traffic.
  void SendHellos(int64_t now);
  static constexpr int64_t kHelloIntervalUs = 100'000;
  // OK, or why this node may not serve clients (a lost directory, or a new one not every
  // peer has confirmed yet).
  Status DiskGate() const;
  std::string MakeEnvelope(uint8_t channel, uint32_t group, std::string_view payload, uint32_t to,
                           bool outermost) const;
  uint32_t metadata_group() const { return options_.shards; }
  // The node holding replica `replica` of `group` (a shard's replica ids are region
  // indexes; the metadata group's, meta_nodes_ indexes); placement::kNoNode for none.
  uint32_t NodeOfReplica(uint32_t group, uint32_t replica) const;
  // The replica id of node `node` in `group`, or -1 when it holds none.
  int32_t ReplicaIdOf(uint32_t group, uint32_t node) const;
  uint64_t NextForwardId();
  void Fail(Status status);

  const EngineOptions options_;
  Env& env_;
  uint32_t nodes_ = 0;                  // nodes in the cluster
  std::vector<uint32_t> node_regions_;  // per node: its region
  // The metadata group's replica ids: region r's first node is voter r; the other nodes
  // are learners with ids from `regions` up, in node id order. A voter whose node goes down
  // is replaced by a learner of its region (ReplaceMetadataVoters): then region r's voter
  // is that one (MetadataVoterIn).
  std::vector<uint32_t> meta_nodes_;
  std::set<uint32_t> connected_;  // nodes FollowMapNodes has passed to Env::ConnectPeer

  placement::ClusterMap map_;  // the metadata group's state (the policy included)
  placement::FailureDetector detector_;  // run while this node leads the metadata group
  bool detecting_ = false;          // detector_ holds evidence gathered as leader
  int64_t last_detect_us_ = 0;      // when the detector last ran
  int64_t next_node_heartbeat_us_ = 0;
  uint64_t node_heartbeat_seq_ = 0;
  std::map<placement::NodeId, uint64_t> incarnations_;  // the last seen per node (leader)
  std::set<placement::NodeId> heard_;  // nodes heard from since the detector started
  // Verdicts proposed and not yet applied: (node) -> (state, when proposed).
  std::map<placement::NodeId, std::pair<placement::NodeState, int64_t>> verdicts_;
  std::vector<int64_t> handoff_after_us_;  // per group: when a draining node may try again
  std::vector<uint64_t> shard_bytes_;      // per strong shard: keys and values, as applied here
  placement::LoadReporter load_reporter_;
  int64_t next_load_report_us_ = 0;
  int64_t next_plan_us_ = 0;
  std::vector<Group> groups_;  // shards, then the metadata group
  paxos::Config replica_config_;  // every replica's, but its id, seed and preferred leader
  bool map_changed_ = false;      // this round applied a cluster map change
  std::vector<uint32_t> closing_; // replicas EraseDeparted erased, closed at the round's end
  std::vector<int64_t> move_proposed_us_;  // per shard: its leader's last FinishMove/AbortMove
  storage::WriteBatch round_batch_;   // the current round's persistence (all protocols)
  struct Outgoing {
    uint8_t channel;
    uint32_t group;
    std::string payload;
  };
  std::map<uint32_t, std::vector<Outgoing>> outbox_;  // per peer, sent by FlushOutbox
  bool round_sync_ = false;
  // A CRDT replica of one shard held here: placed here, a move's learner here, or departed
  // from here and not yet released (docs/placement.md, "Eventual keys").
  struct CrdtReplica {
    std::unique_ptr<CrdtStore> store;
    std::unique_ptr<crdt::Disseminator> d;
    int64_t release_proposed_us = 0;  // departed: when ReleaseReplica was last proposed
  };
  using CrdtId = std::pair<uint32_t, uint32_t>;  // (shard, replica id)
  std::map<CrdtId, CrdtReplica> crdts_;
  std::vector<CrdtId> crdts_closing_;  // erased by EraseDepartedCrdts, closed at the round's end
  // The CRDT replicas the map wants here: each shard's replica placed here or learning here,
  // and the departed ones of this node it still lists.
  std::set<CrdtId> WantedCrdtReplicas() const;
  Status OpenCrdtReplica(uint32_t shard, uint32_t id);
  // The replica set of a CRDT replica, as the map has it: ids grow with moves, a departed
  // replica is MarkDeparted, any other id that is neither placed nor learning is retired.
  void FollowCrdtMembership(uint32_t shard, uint32_t id, crdt::Disseminator& d);
  void FollowCrdtReplicas();   // after a map change: close, open, follow membership
  void EraseDepartedCrdts();   // in the write that persists the map change
  // Departed replicas here that have shipped everything: ReleaseReplica (once a second).
  void TickCrdtReleases(int64_t now);
  // The replica serving `shard` here (placed, joined or not); nullptr where there is none.
  CrdtReplica* ServingCrdt(uint32_t shard);
  // Its id, by the map; nullopt where the map places no replica of `shard` here.
  std::optional<CrdtId> ServingCrdtId(uint32_t shard) const;
  // True while the CRDT replica of this node's Paxos replica of `shard` still joins.
  bool CrdtJoining(uint32_t shard) const;
  // The node holding CRDT replica `id` of `shard` (placed, learning or departed).
  uint32_t CrdtNodeOf(uint32_t shard, uint32_t id) const;
  void SendCrdt(uint32_t shard, uint32_t from_id, const crdt::OutMessage& m);
  void StepCrdt(uint32_t from, uint32_t shard, std::string_view payload);
  // A page of the eventual keys of a shard served here (Op::kCrdtDump), answered once durable.
  void ServeCrdtDump(crdt::Disseminator& d, const Request& request, Callback done);
  // CRDT messages between two replicas of one shard on this node (a shard that moved back
  // before its departed replica was released), stepped after the round's sends.
  std::vector<std::pair<uint32_t, std::string>> local_crdt_;  // (shard, payload)
  // Proxied requests received, by (sender, forward id), until they expire: a copy the
  // network delivered twice is served once (an eventual write has no Paxos session).
  std::map<std::pair<uint32_t, uint64_t>, int64_t> proxied_seen_;
  // Eventual operations (writes and reads) answered once what they wrote or saw is durable.
  std::vector<std::pair<Callback, Response>> after_persist_;

  // Applied writes of the current round, readable before they reach the Storage.
  std::map<std::string, std::optional<std::string>, std::less<>> overlay_;
  storage::WriteBatch apply_batch_;

  uint64_t client_id_ = 0;  // this incarnation's Paxos client id (random, so never reused)
  size_t command_bytes_max_ = 0;  // the largest command one Paxos slot carries
  uint64_t next_seq_ = 1;
  uint64_t next_id_ = 1;       // read ids (local only; forward ids come from NextForwardId)
  uint64_t incarnation_ = 0;   // random per Open: ids of an earlier life never match ours
  uint64_t forward_count_ = 0;
  int64_t next_tick_us_ = 0;   // when the next tick is due
  uint64_t ticks_ = 0;         // ticks run (every group's replica has run as many)
  std::map<std::pair<uint64_t, uint64_t>, Pending> proposals_;  // by (client id, seq)
  std::map<uint64_t, PendingRead> reads_;     // by read id
  std::map<uint64_t, Pending> forwards_;      // by forward id
  // Strong requests of clients (and proxies) that met their group between leaders (an
  // election, a hand-over): nothing of them took effect; they wait for the next leader.
  struct Parked {
    uint32_t group = 0;
    Request request;
    Callback done;
    Via via = Via::kClient;
    int64_t until_us = 0;  // then refused, as definitely as when it arrived
    std::string why;
  };
  std::vector<Parked> parked_;
  int64_t park_until_us_ = 0;  // set while parked requests are retried: they keep their bound
  bool policy_checked_ = false;  // set while a policy change whose shards were checked is proposed
  // Shard snapshots being read by backups, by token (at most kShardSnapshotsMax: a new one
  // drops the one idle longest; each is dropped kShardSnapshotIdleUs after its last chunk).
  struct ShardSnapshot {
    uint32_t group = 0;
    std::string bytes;
    int64_t expires_us = 0;
  };
  std::map<std::string, ShardSnapshot> shard_snapshots_;
  static constexpr size_t kShardSnapshotsMax = 4;
  static constexpr int64_t kShardSnapshotIdleUs = 60'000'000;
  // Data directory identity.
  uint64_t disk_id_ = 0;
  bool disk_established_ = true;         // false: new, not every peer has echoed it yet
  int64_t next_hello_us_ = 0;
  std::vector<bool> echoed_;             // per node: it echoed our id (while not established)
  std::vector<uint64_t> peer_disks_;     // per node: its recorded disk id (0: none yet)
  std::vector<uint64_t> seen_disks_;     // per node without a record: the id it last sent
  std::vector<uint64_t> foreign_disks_;  // per node: an id other than its record, last seen
  uint64_t lost_disk_known_ = 0;         // != 0: a peer knows this disk id for us, not ours
  uint32_t lost_disk_peer_ = 0;
  Status failed_;  // set when the Storage failed: the engine refuses all further work
  bool processing_ = false;
  EngineStats stats_;
};

}  // namespace geokv

#endif  // GEOKV_CORE_ENGINE_ENGINE_H_
