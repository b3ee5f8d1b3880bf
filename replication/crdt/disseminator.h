// Disseminator: the delta dissemination state machine of one region (etcd-raft style).
//
// It owns the CRDT state of every eventual-mode key of its region and spreads local
// deltas to every other region. It does no I/O, reads no clock and draws no random
// numbers: time enters through Tick(now_us), remote messages through Step(), local
// operations through the typed methods, and everything to do comes out in a Ready batch.
//
// Protocol.
//  * Local deltas are joined per key into an open batch, sealed every batch_interval_us
//    (or when full) with the next per-origin sequence number and an HLC stamp, appended
//    to the retained delta log, and sent to every other region.
//  * A receiver applies an origin's batches strictly in sequence order, buffering a
//    bounded window of early ones, and acknowledges the highest contiguous batch it has
//    applied and persisted. FIFO per origin plus dot-based joins keeps the set and the
//    multi-value register causally correct over lossy, reordering links.
//  * Unacknowledged batches are resent every resend_interval_us (go-back-N from the
//    peer's acknowledgement). A batch leaves the log once every peer acknowledged it, or
//    when the log exceeds retention_batches.
//  * A peer that needs a batch older than the log start asks the origin for a state
//    transfer: the origin sends digests of its key ranges, the peer pulls only the ranges
//    whose digest differs, joins them, and then treats every batch up to the sequence
//    number the digest was taken at as applied. Joins never drop causal context, so a
//    region returning after the retention horizon cannot resurrect removed elements or
//    deleted values.
//
//  * Size caps (limits.h): one CrdtLimits, fitted to the cluster at construction
//    (CrdtLimits::ForCluster with regions, key_bytes_max and message_bytes_max) and
//    exposed as limits(), gates every local update and every decode. Joins never refuse;
//    decoders accept whatever joins produce, so a state joined from several regions is
//    persisted, reloaded and shipped like any other. Full states travel only in state
//    transfers, whose key ranges are cut so that each fits one message; a state too large
//    for a message even alone (only possible transiently, while removals from a region
//    at its cap are still in flight to us; counted in transfer_states_too_large) leaves
//    its range incomplete, and the transfer is retried after transfer_timeout_us.
//    Refusals are specific Status codes on local operations and counted stats on input;
//    nothing is dropped silently.
//
//  * Clocks. Tick(now_us) carries the monotonic clock (timers); ObserveWallClock(wall_us)
//    carries the wall clock, the physical part of the HLC that stamps LWW writes and
//    batches. Remote stamps are always adopted, however far ahead (counted as skew in
//    hlc_remote_ahead), and a local LWW write is stamped strictly above the key's current
//    stamp, so a put always takes effect locally and, as the greatest stamp, everywhere.
//
//  * LWW tombstones are collected once causally stable. Every region tracks the stamp of
//    the last batch it applied from each origin (and of its own last sealed batch); their
//    minimum W says every operation anywhere stamped at or below W has been applied here.
//    Regions gossip W in every Deltas and Ack; a tombstone stamped at or below the
//    minimum W of all regions has been seen everywhere, and no older write can still be
//    in flight, so it is dropped. A remote LWW value for an absent key stamped at or
//    below the persisted collection horizon is then an old write already superseded, and
//    is ignored. Idle regions seal empty heartbeat batches so W keeps advancing, while they
//    hold tombstones and for 20 heartbeat intervals after the last batch with entries
//    (sealed or applied); then an idle cluster sends and persists nothing. A region
//    that is away holds W back, so nothing it has not seen is collected.
//    Sets and multi-value registers keep no per-element tombstones at all; their per-key
//    context (one counter per region) is kept, because dropping it would let a region
//    reuse a dot.
//
//  * Membership. The replica set grows at run time (AddReplicas: ids 0..n-1, new ids at the
//    end) and a replica that is gone for good is retired (RetireReplica); ids are never
//    reused, a replacement gets a new one. Every replica must be told of a new id before
//    that replica's messages are accepted (until then they are counted as bad and resent).
//    A new id starts with zero stamps everywhere (known_stable_, last_batch_hlc_), so once
//    a replica knows of it, it collects nothing until the new one has joined and gossiped
//    its W. A retired replica is sent nothing, its messages are dropped (counted), no
//    transfer is taken from it, it no longer holds the log, and it is left out of both
//    minimums (LocalStable over origins, the global one over known_stable_), so
//    collection resumes. Its batches that reached nobody are lost with it. Those that
//    reached some replicas only are relayed: every replica that retires it then takes a
//    state transfer from every other non-retired replica (Progress::relay_pending,
//    persisted), and its own W stays zero until they complete, so nothing the retired
//    replica wrote is collected anywhere before every survivor holds it (a survivor that
//    collected a tombstone the retired replica shipped to it alone relied on our W, which
//    was below that tombstone while we held the retired replica's earlier batches only).
//    A batch of the retired replica still in flight to a survivor after the survivors
//    exchanged their states is not relayed: retire a replica once it has been dead for
//    longer than messages travel.
//
//  * Departure (MarkDeparted). A replica that left the placement (its shard's replica moved
//    to another node) may still hold batches that reached nobody. Until it has shipped
//    them (Shipped() on its side) and is retired everywhere, every replica keeps applying
//    and acknowledging its batches, and its batch stamp keeps bounding LocalStable (a
//    write of it in flight is not yet applied here, so nothing it could supersede is
//    collected past it). It serves nothing, so it is sent no deltas, no join, relay or
//    truncation waits for it, and its W is left out of the global minimum. A departed
//    replica is retired once it has shipped everything (or its machine is gone for good).
//
//  * Joining (DisseminatorOptions::join). A replica added to a running cluster with an
//    empty disk must not apply any origin's delta batch, nor accept a local operation
//    (kUnavailable), until it has completed a state transfer from every non-retired other
//    replica, and it adopts the greatest collection horizon those transfers carry. Why:
//    origin B may have collected a tombstone of key k (and truncated its log) while origin
//    A's log still holds an older put to k (one unacknowledged peer keeps it). A newcomer
//    with horizon zero that applied A's batch first would hold k live; nobody holds the
//    tombstone any more to defeat it, so the delete is undone there forever. Every
//    collection before a replica learned of the newcomer is covered: whoever collected
//    carries the horizon in its digest, and every other non-retired replica had applied
//    the delete (that is what allowed the collection), so its transferred state holds the
//    tombstone or a horizon above it. No digest misses a collection either: a replica
//    serves the newcomer only once it knows the new id, and from then on its own W is
//    zero (LocalStable takes the minimum over origins, and the newcomer's last batch
//    stamp is zero until, joined, it seals one; the newcomer's own W stays zero while it
//    joins). So a collection of t anywhere, before or after that digest, relied on this
//    replica's W >= t gossiped before it knew the newcomer, when it had applied the
//    delete already. After joining, every batch at or below a transfer's sequence number
//    is a duplicate, and every later one is stamped above what was collected before the
//    digest; adopting the greatest horizon keeps the stale-write filter as strong as
//    anyone's. Everything else is ordinary traffic. While joining, deltas are dropped
//    unacknowledged (origins resend), transfers are retried on transfer_timeout_us, no
//    heartbeat is sealed, and the origins still to transfer from are persisted in
//    Progress (a restart resumes the join). A replica retired meanwhile is no longer
//    waited for; ids added meanwhile are not waited for either (a newer replica cannot
//    collect past our zero W, and its own writes reach us as deltas).
//
// Ready order: persist (states, log changes, progress), then send messages, then apply
// (notify readers of applied_keys). Local operations count as acknowledged once the Ready
// that follows them has been persisted.
//
// Ownership: owns all its state; the caller owns the transport and storage.
// Thread-safety: none; one event loop drives it.
#ifndef GEOKV_REPLICATION_CRDT_DISSEMINATOR_H_
#define GEOKV_REPLICATION_CRDT_DISSEMINATOR_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "replication/crdt/crdt_value.h"
#include "replication/crdt/hlc.h"

namespace geokv::crdt {

struct DisseminatorOptions {
  ReplicaId self = 0;
  uint32_t regions = 1;  // replica ids are 0..regions-1
  int64_t batch_interval_us = 5000;
  int64_t resend_interval_us = 600000;  // above the worst WAN round trip
  int64_t transfer_timeout_us = 2000000;
  size_t batch_bytes_max = 256 << 10;
  // Largest message this machine sends or accepts (plus 64 KiB of slack on receipt). The
  // per-region state cap is derived from it (CrdtLimits::ForCluster) so that the largest
  // state joins can produce fits one message; the host passes its transport bound.
  size_t message_bytes_max = kStateBytesMax + (1 << 20);
  size_t batches_per_message_max = 64;
  size_t retention_batches = 2048;
  size_t reorder_window_batches = 256;
  size_t transfer_range_keys = 64;
  size_t transfer_ranges_max = 4096;
  size_t key_bytes_max = 4096;
  // Caps on CRDT states; the machine uses limits.ForCluster(regions, key_bytes_max,
  // message_bytes_max) everywhere (see limits()).
  CrdtLimits limits;
  // A remote HLC stamp further ahead of the local wall clock than this counts as skew
  // (stats().hlc_remote_ahead). It is adopted anyway.
  int64_t hlc_skew_report_ms = 1000;
  // TEST ONLY (mutant, the old behaviour): refuse remote stamps more than
  // hlc_skew_report_ms ahead. A later local put can then be a silent no-op; the simulator
  // suite must catch it.
  bool unsafe_refuse_remote_stamps_ahead = false;
  // Benchmark baseline: ship each touched key's full state instead of its delta. (Not for
  // production: a batch then carries whole states, and one above message_bytes_max could
  // not be sent.)
  bool ship_full_state = false;
  // TEST ONLY: breaks causal delivery. Applies batches as they arrive and moves the
  // watermark past any gap, so a lost or late batch is never applied. The simulator
  // suite must catch this.
  bool unsafe_deliver_out_of_order = false;
  // Tombstone collection and the heartbeat batches it needs.
  bool collect_tombstones = true;
  int64_t heartbeat_interval_us = 500000;
  // This replica was added to a running cluster (see Joining above). Takes effect only on
  // a fresh image (no persisted Progress); afterwards the persisted join state rules, so
  // the host may pass it on every open of such a node.
  bool join = false;
  // TEST ONLY (mutant, a join without the safeguard): `join` is ignored, so a new replica
  // applies batches at once and adopts no horizon. It can resurrect a collected delete;
  // the membership tests must catch it.
  bool unsafe_join_without_transfer = false;
};

// A sealed batch of local deltas, as kept in the delta log.
struct DeltaBatch {
  uint64_t seq = 0;
  HlcTimestamp hlc;
  std::vector<std::pair<std::string, std::string>> entries;  // key, encoded delta
};

// Small bookkeeping that must survive a restart.
struct Progress {
  uint64_t next_seq = 1;                // next local batch number
  std::vector<uint64_t> applied;        // per origin: highest contiguous batch applied
  std::vector<uint64_t> acked;          // per peer: highest batch it acknowledged
  int64_t hlc_high_water_ms = 0;
  // Greatest collected LWW tombstone stamp; older remote writes to absent keys are stale.
  HlcTimestamp gc_horizon;
  // Replicas retired for good (RetireReplica), ascending. Persisted so that a restart
  // never waits for, or sends to, a dead replica before the host repeats its calls.
  std::vector<ReplicaId> retired;
  // While joining: the origins whose state transfer is still to complete, ascending.
  // Empty = not joining.
  std::vector<ReplicaId> join_pending;
  // After a retirement: the replicas whose state transfer is still to complete, ascending
  // (see "Membership": the survivors relay what the retired replica shipped to some).
  std::vector<ReplicaId> relay_pending;
};

// What a restarted region recovers from its storage.
struct DurableImage {
  std::map<std::string, std::string> states;  // key -> encoded CrdtValue
  std::vector<DeltaBatch> log;                // retained local batches, ascending
  // Local deltas not yet sealed into a batch. They are persisted with the states they
  // changed; otherwise a crash before sealing would keep the effect in the state but
  // never ship it.
  std::vector<std::pair<std::string, std::string>> open_batch;
  std::optional<Progress> progress;
};

struct OutMessage {
  ReplicaId to = 0;
  std::string bytes;
};

struct Ready {
  // 1. persist
  std::vector<std::pair<std::string, std::string>> states;  // key -> encoded state
  std::vector<std::string> erased_keys;  // collected tombstones: delete from storage
  std::vector<DeltaBatch> log_append;
  uint64_t log_first_seq = 0;  // drop log batches below this
  // When set, replaces the persisted open batch (empty = the batch was sealed).
  std::optional<std::vector<std::pair<std::string, std::string>>> open_batch;
  std::optional<Progress> progress;
  // 2. send
  std::vector<OutMessage> messages;
  // 3. apply: keys changed by remote deltas or transfers
  std::vector<std::string> applied_keys;

  bool empty() const {
    return states.empty() && erased_keys.empty() && log_append.empty() && !open_batch && !progress &&
           messages.empty() && applied_keys.empty();
  }
};

struct DisseminatorStats {
  uint64_t batches_sealed = 0;
  uint64_t batches_applied = 0;
  uint64_t batches_duplicate = 0;
  uint64_t batches_buffered = 0;
  uint64_t batches_dropped_window = 0;
  uint64_t batches_resent = 0;
  uint64_t messages_bad = 0;       // failed verification or decoding; dropped
  uint64_t entries_wrong_type = 0; // remote delta of another type than the key holds
  uint64_t transfers_started = 0;
  uint64_t transfers_completed = 0;
  uint64_t transfer_ranges_pulled = 0;
  uint64_t transfer_ranges_served = 0;
  uint64_t hlc_remote_ahead = 0;     // remote stamps > hlc_skew_report_ms ahead (adopted)
  int64_t hlc_max_remote_ahead_ms = 0;  // largest such lead seen
  uint64_t hlc_refused = 0;          // only with unsafe_refuse_remote_stamps_ahead
  uint64_t entries_over_limit = 0;   // remote entries over limits(): their message is dropped
  uint64_t states_over_held_cap = 0; // joins that left a key above the Held*() bounds (kept)
  uint64_t transfer_states_too_large = 0;  // states a transfer could not carry (retried)
  uint64_t states_unreadable = 0;    // persisted states that failed to decode (see open_status)
  uint64_t entries_unreadable_key = 0;  // remote entries for such a key, not joined
  uint64_t bytes_sent = 0;
  uint64_t log_truncated_unacked = 0;  // batches dropped by retention before every ack
  uint64_t tombstones_collected = 0;
  uint64_t stale_writes_ignored = 0;   // remote LWW writes below the collection horizon
  uint64_t messages_from_retired = 0;  // dropped: their sender was retired
  uint64_t batches_dropped_joining = 0;  // remote batches dropped unacknowledged while joining
};

class Disseminator {
 public:
  Disseminator(DisseminatorOptions options, DurableImage image);

  // --- local operations (each joins the state and queues the delta) ---
  Status PutLww(std::string_view key, std::string_view value);
  Status DeleteLww(std::string_view key);
  Status WriteMv(std::string_view key, std::string_view value, const CausalContext& read);
  Status DeleteMv(std::string_view key, const CausalContext& read);
  Status AddCounter(std::string_view key, int64_t delta);
  Status SetAdd(std::string_view key, std::string_view element);
  Status SetRemove(std::string_view key, std::string_view element);

  // Current state of a key, or nullptr.
  const CrdtValue* Get(std::string_view key) const;
  const std::map<std::string, CrdtValue, std::less<>>& states() const { return states_; }

  // --- membership (see Membership and Joining above) ---
  // Grows the replica set to ids 0..replicas-1. kInvalidArgument when `replicas` is below
  // the current count or above kReplicasMax; the same count is a no-op. limits() is refit
  // to the new count: a writer already above its smaller per-replica share gets the
  // specific refusal on its next local update of that key (nothing held is dropped).
  Status AddReplicas(uint32_t replicas);
  // Retires replica `id` for good (persisted in Progress). Repeating it is a no-op;
  // retiring self or an unknown id is ignored.
  void RetireReplica(ReplicaId id);
  // Marks replica `id` departed: it left the placement but may still hold batches nobody
  // else has (see "Departure" above). It is no longer sent deltas, waited for by a join,
  // a relay or the log's truncation, nor counted in the global stability minimum; its own
  // batches are still applied and acknowledged, and its stamp still bounds LocalStable.
  // Not persisted: the host repeats it after every open. Ignored for self, a retired or
  // an unknown id.
  void MarkDeparted(ReplicaId id);
  bool departed(ReplicaId id) const { return id < departed_.size() && departed_[id]; }
  // A join no longer waits for replica `id`'s transfer (its machine is down). Safe: the
  // transfer of any one replica carries every collection (see Joining); what `id` alone
  // holds reaches us as its batches when it is back. Persisted with the join.
  void JoinWithout(ReplicaId id) {
    if (joining()) JoinDone(id);
  }
  // True when every local delta is sealed and every peer that is neither retired nor
  // departed has acknowledged every sealed batch: a departed replica is then no longer
  // the only holder of anything it wrote (the host may have it retired everywhere).
  bool Shipped() const;
  // Replicas in the cluster, retired ones included (ids 0..replicas()-1).
  uint32_t replicas() const { return regions_; }
  bool retired(ReplicaId id) const { return id < retired_.size() && retired_[id]; }
  // True until the state transfers of a join have completed; local operations then fail
  // with kUnavailable.
  bool joining() const { return !progress_.join_pending.empty(); }

  // --- inputs ---
  void Step(ReplicaId from, std::string_view bytes);
  // `now_us`: the monotonic clock (batching, resends, transfer timeouts, heartbeats).
  void Tick(int64_t now_us);
  // The wall clock, microseconds since the Unix epoch (Env::WallUs()). Call it before
  // every input (Step, Tick, local operations): HLC stamps take their physical part from
  // the latest reading. It may jump either way and may disagree with other regions by
  // seconds; stamps stay strictly increasing regardless. Until it is first called the
  // machine falls back to the monotonic clock from Tick.
  void ObserveWallClock(int64_t wall_us);

  // --- outputs ---
  bool HasReady() const;
  // Local deltas wait to be sealed into a batch (Tick seals them after batch_interval_us).
  bool HasOpenBatch() const { return !open_batch_.empty(); }
  Ready GetReady();
  void Advance();

  // kCorruption naming the first persisted state that could not be decoded (storage
  // corruption, or limits lowered below what the node holds); Ok otherwise. Such keys are
  // kept out of memory, local operations on them fail with this status, and their stored
  // bytes are left untouched. The host should stop (fail-stop) when this is not Ok.
  const Status& open_status() const { return open_status_; }
  // The limits in force (options.limits fitted to the current replica count).
  const CrdtLimits& limits() const { return limits_; }
  const DisseminatorStats& stats() const {
    stats_.hlc_remote_ahead = clock_.remote_ahead();
    stats_.hlc_max_remote_ahead_ms = clock_.max_remote_ahead_ms();
    stats_.hlc_refused = clock_.refused_remote();
    return stats_;
  }
  const Progress& progress() const { return progress_; }
  size_t log_size() const { return log_.size(); }
  // Stamp of the oldest unacknowledged batch (nullopt when the log is empty).
  std::optional<HlcTimestamp> oldest_logged() const {
    if (log_.empty()) return std::nullopt;
    return log_.front().hlc;
  }
  // This region's stability stamp W (see the protocol notes above).
  HlcTimestamp LocalStable() const;
  const HybridClock& clock() const { return clock_; }

 private:
  struct Transfer {
    bool active = false;
    uint64_t id = 0;
    uint64_t seq = 0;
    HlcTimestamp hlc;
    int64_t started_us = 0;
    bool have_digest = false;
    HlcTimestamp gc_horizon;  // the origin's, from its digest
    std::set<uint32_t> pending;
  };
  struct Range {
    std::string lo, hi;
    bool has_hi = false;
  };

  Status CheckKey(std::string_view key) const;
  // A client-supplied read context: replica ids of this cluster, bounded cloud.
  Status CheckReadContext(const CausalContext& read) const;
  // Returns the key's value, creating an empty one of `type`; kWrongMode on mismatch.
  StatusOr<CrdtValue*> Mutable(std::string_view key, CrdtType type);
  void QueueDelta(std::string_view key, const CrdtValue& delta);
  void SealBatch(bool heartbeat = false);
  void CollectTombstones();
  void NoteStable(ReplicaId from, int64_t physical_ms, uint32_t logical, uint32_t node);
  void SendDeltas(ReplicaId peer, bool from_ack);
  void TruncateLog();
  void ApplyBatch(ReplicaId origin, const DeltaBatch& batch);
  void DrainReorder(ReplicaId origin);
  void JoinRemote(std::string_view key, const CrdtValue& v);
  void Send(ReplicaId to, std::string bytes);
  void SendAck(ReplicaId origin);
  void StartTransfer(ReplicaId origin);
  uint64_t RangeDigest(const Range& r) const;
  void MarkProgress() { progress_dirty_ = true; }
  // Removes `origin` from the origins a join waits for; completes the join after the last.
  void JoinDone(ReplicaId origin);

  void OnDeltas(ReplicaId from, const void* msg);
  void OnAck(ReplicaId from, const void* msg);
  void OnTransferRequest(ReplicaId from, const void* msg);
  void OnTransferDigest(ReplicaId from, const void* msg);
  void OnTransferPull(ReplicaId from, const void* msg);
  void OnTransferData(ReplicaId from, const void* msg);

  int64_t WallMs() const { return has_wall_ ? wall_ms_ : now_us_ / 1000; }
  void NoteJoinedSize(const CrdtValue& v);
  // Bytes one message may spend on states (message_bytes_max minus framing).
  size_t StateBudgetBytes() const;

  // Constant after construction (options_.regions is the count at construction only).
  const DisseminatorOptions options_;
  Status open_status_;
  // Change only with membership (AddReplicas, RetireReplica).
  uint32_t regions_;
  CrdtLimits limits_;
  std::vector<bool> retired_;  // per replica; mirrors progress_.retired
  std::vector<bool> departed_;  // per replica (MarkDeparted); not persisted
  // A replica we ship to and wait for: not self, retired or departed.
  bool Peer(ReplicaId p) const { return p != options_.self && !retired_[p] && !departed_[p]; }

  std::map<std::string, std::string, std::less<>> unreadable_;  // key -> persisted bytes

  HybridClock clock_;
  int64_t now_us_ = 0;
  int64_t wall_ms_ = 0;
  bool has_wall_ = false;
  std::map<std::string, CrdtValue, std::less<>> states_;
  std::set<std::string, std::less<>> dirty_;
  std::map<std::string, CrdtValue, std::less<>> open_batch_;
  size_t open_batch_bytes_ = 0;
  bool open_batch_dirty_ = false;
  int64_t open_since_us_ = 0;
  std::deque<DeltaBatch> log_;
  Progress progress_;
  bool progress_dirty_ = false;
  std::vector<uint64_t> sent_upto_;         // per peer: highest batch sent since last resend
  std::vector<int64_t> last_send_us_;       // per peer: time of the last go-back-N send
  std::vector<std::map<uint64_t, DeltaBatch>> reorder_;  // per origin: early batches
  std::vector<Transfer> transfers_;         // per origin: our transfer from it
  uint64_t next_transfer_id_ = 1;
  std::vector<bool> ack_due_;               // per origin
  std::vector<HlcTimestamp> last_batch_hlc_;  // per origin (self: last sealed)
  std::vector<HlcTimestamp> known_stable_;    // per region: its W as last gossiped
  std::set<std::string, std::less<>> tombstones_;  // LWW keys currently deleted
  std::vector<std::string> erased_;
  int64_t last_seal_us_ = 0;
  int64_t last_activity_us_ = 0;  // last batch with entries, sealed here or applied from a peer
  static constexpr int64_t kHeartbeatsAfterActivity = 20;
  Ready pending_;
  bool ready_outstanding_ = false;
  mutable DisseminatorStats stats_;  // the clock's counters are copied in by stats()
};

}  // namespace geokv::crdt

#endif  // GEOKV_REPLICATION_CRDT_DISSEMINATOR_H_
