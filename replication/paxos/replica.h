// paxos::Replica: one replica of a Multi-Paxos group, as a pure state machine.
//
// The replica does no I/O, reads no clock, starts no thread and draws no random number of
// its own (etcd/raft's RawNode pattern). Inputs:
//   Step(bytes, now_us)  a message from a peer (FlatBuffers, verified before it is read),
//   Tick(now_us)         one tick of the local clock; elections and heartbeats count ticks,
//                        leases compare local times,
//   Propose(cmd)         a client command (leader only),
//   ReadIndex(id, now_us) a linearizable read (leader only),
//   TransferLeader(to),
//   Compact(data)        the application's snapshot.
// Every input that may depend on time carries the local clock read at that moment: a lease
// is checked (and granted) against the time of the decision, never against the time of the
// last tick, which may lie seconds back when the process was paused.
// Output: a Ready batch. The runtime must handle it in this order:
//   1. persist  snapshot (Storage::SaveSnapshot), then hard_state and entries; if
//               must_sync, Sync() before step 2 (an acceptor's promise or accept must be
//               durable before anyone hears of it);
//   2. send     messages (none is larger than Config::message_bytes_max). A leader's
//               accepts, heartbeats and catch-ups (MaySendBeforePersist) may leave before
//               step 1, provided step 1 completes before the runtime steps any later input:
//               they claim nothing about the sender's durable state (the leader counts its
//               own acceptance only when a later Accepted arrives), so the followers' writes
//               overlap the leader's own (Raft thesis, 10.2.1);
//   3. apply    if install_snapshot, replace the state machine by `snapshot`; then apply
//               `apply` in order, then serve `reads` from the result;
//   4. Advance().
//
// Snapshots: the application calls Compact(data) with its state as of applied_index(), of
// any size; the log up to there is dropped (Ready::snapshot asks the Storage to do the
// same). A peer whose log ends before the snapshot (a lagging follower, or a candidate whose
// prepare reaches below it) is sent the snapshot in chunks of at most
// snapshot_chunk_bytes_max (and within message_bytes_max), one chunk in flight per peer,
// resent after resend_ticks, the transfer dropped after snapshot_resends_max resends without
// progress. While a transfer runs, the log it will need afterwards is kept. The receiver
// assembles one snapshot at a time (a newer snapshot, or any once the assembly stalled for
// 2*resend_ticks, restarts it; an older one waits), checks its hash and only then hands the
// whole snapshot to the application (Ready::snapshot + install_snapshot). Chunks are not tied
// to leadership: a snapshot covers chosen slots only, so installing one is always safe.
//
// Exactly-once: sessions (client id -> highest applied seq) mark a retried command
// `duplicate`. At most sessions_max are kept; the least recently used client is forgotten
// first, at the same command on every replica, and the sessions (in LRU order) travel inside
// snapshots. A forgotten client loses exactly-once for a retry that comes after sessions_max
// other clients were served.
//
// Commands: Propose accepts payloads up to CommandBytesMax(config) = message_bytes_max -
// kMessageOverheadBytes (message.h); commands are batched up to batch_bytes_max per slot and
// one larger than that gets a slot of its own.
//
// Protocol: ballots (round, node); a leader runs phase 1 once for all slots above its
// commit index, learns every accepted value from a majority, re-proposes the value of the
// highest ballot in each slot and fills holes with no-ops; phase 2 is pipelined (at most
// window_slots slots in flight) and batched (many commands per slot, bounded bytes). The
// commit index travels on accepts and heartbeats; a follower that misses chosen entries is
// sent them (catch-up). Elections: an election timeout first runs PreVote: the replica asks
// with the ballot it would use, raising no one's promise (nor its own), and starts phase 1
// only if a majority says yes; a replica says no while it leads, while it heard from its
// leader within election_ticks, or while a lease it granted forbids it. So a replica cut off
// from the group keeps its ballot and rejoins as a follower instead of deposing a healthy
// leader. (TimeoutNow, leadership transfer, skips PreVote.) Leases: an acceptor that
// acknowledged a leader refuses to help any other node win for lease_us of its own clock, so
// the leader (which counts a shorter, drift-corrected lease from the time it sent the
// heartbeat) serves reads locally; without a lease, a read waits for a quorum heartbeat
// round started after it arrived.
//
// Membership (Raft thesis ch. 4's single-server changes, made safe for Paxos by a stop at
// the change, as in Stoppable Paxos): the group's voters and learners (Membership, ids in
// [0, 64)) are replicated state. ChangeMembers adds a learner, promotes a caught-up learner
// or removes a replica, one at a time, so that a majority of the old voters and a majority
// of the new ones always share a replica. The change is a log entry of its own at slot s,
// which governs the slots above s:
//   - the leader proposes it after everything it has proposed and nothing after it until it
//     is chosen (a stop); then, if it is still a voter, it runs phase 1 again among the new
//     voters with a fresh ballot (commands it queued meanwhile wait for that);
//   - every entry records the epoch (membership version) its proposer believed governs its
//     slot. A candidate recovering a change X at slot s keeps X (and drops everything it
//     recovered above s, which a later phase 1 among X's voters recovers again) unless an
//     entry above s of X's own epoch carries a higher ballot than X: its proposer would have
//     found X had X been chosen, so X lost and becomes a no-op. Entries of an older epoch
//     than the candidate's are stale leftovers and are ignored;
//   - learners take no part in elections or quorums; a replica that is not a voter of the
//     membership it knows never campaigns (a new replica knows nothing until the log or a
//     snapshot reaches it). The leader keeps sending heartbeats (and so catch-up) to the
//     replicas a change removed until they know the change committed, for at most
//     100 election timeouts, so that they stop campaigning.
// Snapshots carry the membership; Ready::members reports each change as it is applied.
//
// Ownership: the Replica keeps a pointer-free copy of what it loaded from the Storage; the
// Storage is only read during Open(). Thread-safety: none; one thread drives a Replica.
#ifndef GEOKV_REPLICATION_PAXOS_REPLICA_H_
#define GEOKV_REPLICATION_PAXOS_REPLICA_H_

#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "replication/paxos/storage.h"
#include "replication/paxos/types.h"

namespace geokv::paxos {

struct Config {
  uint32_t id = 0;            // this replica, in [0, 64); not a voter of the genesis group
                              // when it joins later (as a learner)
  uint32_t replicas = 3;      // genesis group size (voters 0..replicas-1), at most 64
  uint64_t seed = 1;          // seeds the replica's generator (election jitter)

  int64_t tick_us = 10'000;   // nominal tick period of the local clock (lease margins)
  int heartbeat_ticks = 2;    // leader heartbeat period
  int election_ticks = 30;    // election timeout drawn from [election_ticks, 2*election_ticks)
  int resend_ticks = 20;      // unacknowledged accepts / prepares are resent after this

  uint64_t window_slots = 64;             // slots in flight (proposed, not yet committed)
  size_t batch_bytes_max = 64 * 1024;     // payload bytes per slot
  size_t batch_commands_max = 1024;       // commands per slot
  size_t pending_commands_max = 100'000;  // proposals queued behind a full window
  size_t message_bytes_max = 4 << 20;     // no message sent is larger; larger ones received
                                          // are dropped. Bounds a command: CommandBytesMax()
  size_t catchup_entries_max = 256;       // entries per catch-up or promise message
  size_t snapshot_chunk_bytes_max = 1 << 20;  // snapshot bytes per InstallSnapshot message
                                              // (clamped to fit in message_bytes_max)
  int snapshot_resends_max = 10;          // a chunk unacknowledged this many times in a row
                                          // (resend_ticks apart) ends the transfer
  size_t sessions_max = 1 << 20;          // clients remembered for exactly-once (LRU)
  size_t reads_pending_max = 10'000;

  int64_t lease_us = 0;            // 0 disables leases (every read takes a quorum round)
  double clock_drift_max = 0.001;  // bound on |local rate - 1| of every clock in the group

  std::optional<uint32_t> preferred_leader;  // leader hands over to it when it is healthy

  // TEST ONLY: a new leader ignores the values other acceptors report in phase 1. This
  // breaks safety on purpose so that the simulator can prove its checkers catch it.
  bool unsafe_skip_phase1_recovery = false;
  // TEST ONLY: lease checks use the time of the last tick instead of the time passed with
  // the input (the stale-read bug of a paused leader); the simulator must catch it.
  bool unsafe_lease_cached_time = false;
  // TEST ONLY: an election timeout starts phase 1 at once, without asking first whether a
  // majority would promise (PreVote). Safe, but a replica that rejoins after a partition
  // deposes a healthy leader with the ballot it raised while cut off.
  bool unsafe_disable_pre_vote = false;
  // TEST ONLY: a learner's acknowledgements count towards the leader's quorums, as if it
  // voted. Unsafe: a value "chosen" by the leader and a learner can be overwritten by the
  // voters; the simulator must catch it.
  bool unsafe_learners_count = false;
  // TEST ONLY: recovery keeps a membership change even when an entry of its epoch above it
  // has a higher ballot (proof that it lost). The change then ends the epoch early and the
  // chosen entries above it are dropped as stale; the tests must catch it.
  bool unsafe_keep_lost_changes = false;
};

struct ReplicaStats {
  uint64_t malformed = 0;       // failed decoding or verification
  uint64_t misaddressed = 0;    // well-formed but not for us / from an unknown peer
  uint64_t pre_votes = 0;       // PreVote rounds started (election timeouts)
  uint64_t pre_vote_refusals = 0;  // PreVotes answered no (we lead, a live leader, a lease)
  uint64_t elections = 0;       // phase 1 attempts started
  uint64_t leaderships = 0;     // phase 1 won
  uint64_t lease_refusals = 0;  // prepares ignored because of a granted lease
  uint64_t sticky_refusals = 0; // prepares ignored: our leader was heard from recently
  uint64_t lease_reads = 0;
  uint64_t quorum_reads = 0;
  uint64_t catchups = 0;        // catch-up messages sent
  uint64_t snapshots_sent = 0;  // snapshot transfers started (peer behind the log, or a
                                // candidate whose prepare reaches below our snapshot)
  uint64_t snapshot_chunks_sent = 0;     // InstallSnapshot messages, resends included
  uint64_t snapshot_transfers_abandoned = 0;  // snapshot_resends_max reached
  uint64_t snapshots_installed = 0;      // assembled from a peer and handed to the application
  uint64_t sessions_evicted = 0;         // least recently used clients forgotten
  uint64_t step_downs = 0;      // leader lost contact with a majority (check quorum)
  uint64_t slots_proposed = 0;
  uint64_t commands_proposed = 0;
  uint64_t member_changes = 0;  // membership changes applied (committed) by this replica
  // Recovery's rule for membership changes (as candidate): changes found to have lost (made
  // no-ops), and recovered entries dropped (of an older epoch, or above a change kept).
  uint64_t lost_changes = 0;
  uint64_t recovered_dropped = 0;
};

// Everything the runtime must do after an input; see the order in the file comment.
struct Ready {
  std::optional<Snapshot> snapshot;     // persist first (Storage::SaveSnapshot) if set
  bool install_snapshot = false;        // and load it into the state machine before `apply`
  std::optional<HardState> hard_state;  // persist if set
  std::vector<Entry> entries;           // persist (each replaces its slot)
  bool must_sync = false;               // Sync() before sending
  std::vector<OutMessage> messages;     // send after persisting
  std::vector<Apply> apply;             // apply in order after sending
  std::vector<ReadState> reads;         // serve after applying
  // Set when the membership applied changed (a change in `apply`'s range, or an installed
  // snapshot): the membership as of the last slot applied.
  std::optional<Membership> members;
  bool empty() const {
    return !snapshot && !hard_state && entries.empty() && messages.empty() && apply.empty() &&
           reads.empty() && !members;
  }
};

// Whether a message of this type may be sent before the Ready that carries it is persisted
// (see step 2 above): true for a leader's Accept, Heartbeat and CatchUp.
bool MaySendBeforePersist(MessageType type);

class Replica {
 public:
  // Recovers from `storage` (read once, here). Fails on an invalid config or if the
  // storage cannot be read.
  static StatusOr<std::unique_ptr<Replica>> Open(const Config& config, const Storage& storage);

  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // The largest command payload Propose accepts under `config`: a command alone in its slot
  // must fit in one message (message_bytes_max minus kMessageOverheadBytes, message.h).
  // The engine refuses larger values before they reach the replica.
  static size_t CommandBytesMax(const Config& config);

  // A message from a peer, received when the local clock read `now_us`. kCorruption for a
  // buffer that fails the size bound or the verifier (counted in stats().malformed);
  // kInvalidArgument for one not meant for us.
  Status Step(std::string_view bytes, int64_t now_us);
  // Advances the local clock by one tick; `now_us` is the local clock reading.
  void Tick(int64_t now_us);
  // kUnavailable when not the leader (leader_hint() says who might be), kBusy when the
  // queue is full, kValueTooLarge for a payload above CommandBytesMax(). A command larger
  // than batch_bytes_max is not batched: it gets a slot of its own.
  Status Propose(Command cmd);
  // Asks for a linearizable read at local time `now_us` (read just now: the lease is checked
  // against it); it appears in a later Ready::reads with `request_id`. kUnavailable when not
  // the leader or the leader has not yet committed its recovery.
  Status ReadIndex(uint64_t request_id, int64_t now_us);
  // Hands leadership to `to` once it is up to date (leader only). Proposals wait meanwhile
  // (for at most an election timeout): hand over only to a peer that PeerHealthy says
  // answers.
  Status TransferLeader(uint32_t to);
  // Leader only: whether voter `id` answered within the last few heartbeats (the rule the
  // preferred-leader handover uses). False off the leader, and for ids out of range.
  bool PeerHealthy(uint32_t id) const;
  // Replaces Config::preferred_leader (nullopt: none), e.g. when the preferred replica's node
  // is being drained. Only where leadership tends to go changes; never safety.
  Status SetPreferredLeader(std::optional<uint32_t> preferred);
  std::optional<uint32_t> preferred_leader() const { return preferred_leader_; }
  // Proposes one membership change (leader only; see the file comment). kUnavailable when
  // not the leader, during a leadership transfer or before the leader's recovery committed;
  // kBusy while another change is not yet committed, or for promoting a learner that is not
  // caught up (its commit index more than window_slots behind, or not heard from lately);
  // kInvalidArgument for an id out of range, a change that does not fit the membership
  // (adding a member, promoting a non-learner, removing a non-member or the last voter) or
  // removing the leader itself (transfer leadership first). The change is done once
  // members() shows it.
  Status ChangeMembers(MemberChange change, uint32_t id);
  // Leader only (false elsewhere): whether a quorum of the current voters is known to have
  // committed the slot that chose the current membership. Until then a replica that the
  // change removed may still be needed: a voter that accepted the change but never learned
  // it was chosen still counts the old membership, and with the leader gone it can only
  // re-choose the change with a quorum of the old voters. So a replica a change removed
  // may be destroyed only once this holds (the engine's moves wait for it).
  bool MembershipSettled() const;
  // Leader only: a membership change it proposed is not chosen yet.
  bool ChangeInFlight() const { return change_slot_ != 0; }
  // Takes a snapshot: `data` is the application state after applying everything up to
  // applied_index() (call it after Advance()). Drops the log up to there (or, while a peer
  // is being sent an older snapshot, up to that one's index, so that the peer can continue
  // from the log once it has it). Any size is accepted up to what FlatBuffers can encode
  // (kSnapshotBytesMax, message.h: 2 GiB; beyond it kValueTooLarge and nothing changes);
  // peers receive it in chunks.
  Status Compact(std::string data);

  bool HasReady() const;
  // Takes the pending work. Call Advance() once it has been carried out.
  paxos::Ready Ready();
  void Advance();

  // Introspection (tests, simulator checkers, the node's status page).
  uint32_t id() const { return cfg_.id; }
  bool IsLeader() const { return role_ == Role::kLeader; }
  // A leader handing its leadership over: it takes no proposal or read meanwhile.
  bool Transferring() const { return transfer_to_ >= 0; }
  int32_t leader_hint() const { return leader_; }
  Ballot promised() const { return hs_.promised; }
  uint64_t commit_index() const { return hs_.commit; }
  uint64_t applied_index() const { return applied_; }
  uint64_t snapshot_index() const { return snapshot_.index; }
  // The membership governing the slots above the commit index.
  const Membership& members() const { return members_; }
  // The membership as of the last slot handed to the application (Ready::apply).
  const Membership& applied_members() const { return applied_members_; }
  const Entry* LogEntry(uint64_t slot) const;
  bool HasLease() const;
  // Ticks since the leader was last heard from (or since this replica's last election
  // started); an election starts when it reaches a timeout drawn from
  // [election_ticks, 2*election_ticks).
  int election_elapsed_ticks() const { return election_elapsed_; }
  const ReplicaStats& stats() const { return stats_; }

 private:
  enum class Role { kFollower, kPreCandidate, kCandidate, kLeader };
  static constexpr int32_t kRefuseAll = -2;  // grant holder after a restart

  struct PeerPromise {
    bool promised = false;
    bool complete = false;
    uint64_t next_from = 0;
    uint64_t needs_index = 0;  // counts only once our commit reaches its compacted index
  };
  // Sending a snapshot to one peer: stop-and-wait, one chunk in flight.
  struct OutTransfer {
    std::shared_ptr<const std::string> bytes;  // the encoded snapshot, pinned while it travels
    uint64_t index = 0;
    uint64_t hash = 0;
    uint64_t offset = 0;  // acknowledged by the peer
    uint64_t sent_tick = 0;
    int resends = 0;      // since the last progress
  };
  // Receiving one snapshot (at most one at a time).
  struct Assembly {
    uint32_t from = 0;
    uint64_t index = 0;
    uint64_t total_bytes = 0;
    uint64_t hash = 0;
    std::string bytes;
    uint64_t last_tick = 0;  // of the last chunk appended
  };
  struct Peer {
    uint64_t commit = 0;
    uint64_t acked_round = 0;
    uint64_t last_catchup_tick = 0;
    uint64_t last_heard_tick = 0;
  };
  struct Inflight {
    uint64_t acks_mask = 0;  // who accepted; Counts() says whose acceptance is a vote
    uint64_t sent_tick = 0;
  };
  struct PendingRead {
    uint64_t id;
    uint64_t index;
    uint64_t round;
  };

  explicit Replica(const Config& config);

  void HandlePrepare(const Message& m);
  void HandlePromise(const Message& m);
  void HandleAccept(const Message& m);
  void HandleAccepted(const Message& m);
  void HandleHeartbeat(const Message& m);
  void HandleHeartbeatAck(const Message& m);
  void HandleNack(const Message& m);
  void HandleCatchUp(const Message& m);
  void HandleTimeoutNow(const Message& m);
  void HandleInstallSnapshot(const Message& m);
  void HandleSnapshotAck(const Message& m);
  void HandlePreVote(const Message& m);
  void HandlePreVoteReply(const Message& m);
  void InstallSnapshot(const Snapshot& s);
  // The commit index reached a membership change: it governs from here on.
  void ApplyMembers(const Membership& m);
  // Recovery's rule for membership changes among the recovered entries (file comment).
  void RecoverMembership();
  // Acknowledgements that count towards a quorum of the current membership.
  bool Counts(uint32_t id) const;

  // Election timeout: PreVote first (unless unsafe_disable_pre_vote), then phase 1.
  void Campaign();
  void StartPreVote();
  // Snapshot transfer (any role may send: a leader to a lagging follower, an acceptor to a
  // candidate that needs compacted slots).
  void StartTransfer(uint32_t peer);
  void SendChunk(uint32_t peer);
  void ResendChunks();
  void SendSnapshotAck(uint32_t to, const SnapshotChunk& c, uint64_t next_offset);
  size_t ChunkBytes() const;
  // Drops log entries covered by snapshot_ that no transfer in progress still needs.
  void TrimLog();
  // Exactly-once sessions, least recently used first.
  // True: a duplicate; *repeat (if given) says whether it repeats the session's last command.
  bool ApplySession(uint64_t client_id, uint64_t seq, bool* repeat = nullptr);
  void LoadSessions(const std::vector<std::pair<uint64_t, uint64_t>>& sessions);
  std::vector<std::pair<uint64_t, uint64_t>> SessionList() const;

  // Common acceptor path of Accept / Heartbeat / CatchUp: false (and a Nack) when the
  // ballot is stale; otherwise follows its sender.
  bool AcceptLeader(const Message& m);
  void BecomeFollower(Ballot leader_ballot, int32_t leader);
  void StartElection(Ballot waiver);
  void SendPrepare(uint32_t to, uint64_t from_slot);
  void MaybeFinishPhase1();
  void BecomeLeader();
  void FillWindow();
  void SendAccepts(uint32_t to, const std::vector<uint64_t>& slots);
  void SendHeartbeats();
  void Resend();
  void AdvanceLeaderCommit();
  void AdvanceFollowerCommit(uint64_t leader_commit, Ballot leader_ballot);
  void ConfirmRounds();
  void MaybeCatchUp(uint32_t peer, uint64_t peer_commit, uint64_t echoed_commit);
  void MaybeSendTimeoutNow();
  void GrantLease(uint32_t holder, Ballot b);
  bool LeaseBlocks(uint32_t candidate, Ballot waiver) const;
  void Promise(Ballot b);
  void Persist(const Entry& e, bool sync);
  void Send(Message m);
  void ResetElectionTimer();
  // Moves the local clock forward to a reading taken with an input (never backward).
  void Observe(int64_t now_us);
  int64_t LeaderLeaseUs() const;

  // Constant after construction.
  const Config cfg_;

  // Membership: governing the slots above the commit index, and as applied.
  Membership members_;
  Membership applied_members_;
  bool members_applied_dirty_ = false;  // Ready::members pending
  uint64_t change_slot_ = 0;            // leader: slot of its uncommitted change (0: none)
  uint64_t departed_ = 0;               // removed by the last change, not yet told so
  uint64_t departed_slot_ = 0;          // that change's slot
  uint64_t members_slot_ = 0;           // the commit index when members_ took effect here
  uint64_t departed_until_tick_ = 0;    // stop telling them then

  std::mt19937_64 rng_;
  ReplicaStats stats_;

  // Acceptor state (mirrors the Storage plus what the pending Ready will persist).
  HardState hs_;
  std::map<uint64_t, Entry> log_;

  // Output accumulated for the next Ready.
  bool hs_dirty_ = false;
  bool must_sync_ = false;
  std::set<uint64_t> dirty_slots_;
  std::vector<OutMessage> out_;
  std::vector<ReadState> reads_ready_;
  bool ready_outstanding_ = false;
  uint64_t applied_ = 0;
  // client id -> (client id, highest applied seq) in session_lru_, least recently used first.
  std::list<std::pair<uint64_t, uint64_t>> session_lru_;
  std::unordered_map<uint64_t, std::list<std::pair<uint64_t, uint64_t>>::iterator> sessions_;
  // Latest snapshot (index 0: none). The log holds every slot above snapshot_.index, and
  // below it only what a transfer in progress pins (see TrimLog).
  Snapshot snapshot_;
  std::shared_ptr<const std::string> snapshot_bytes_;  // snapshot_ encoded, made on demand
  uint64_t snapshot_hash_ = 0;
  std::vector<std::optional<OutTransfer>> transfers_;  // per peer
  std::optional<Assembly> assembly_;
  bool snapshot_dirty_ = false;
  bool install_pending_ = false;

  // Time.
  int64_t now_us_ = 0;
  uint64_t ticks_ = 0;
  bool ticked_ = false;
  int election_elapsed_ = 0;
  int election_timeout_ = 0;
  int heartbeat_elapsed_ = 0;
  int prepare_elapsed_ = 0;

  // Role.
  Role role_ = Role::kFollower;
  Ballot ballot_;         // own ballot as candidate or leader
  Ballot leader_ballot_;  // ballot of the leader followed (or being elected)
  int32_t leader_ = -1;
  uint64_t max_round_seen_ = 0;

  // Lease granted as an acceptor.
  int64_t grant_until_us_ = 0;
  int32_t grant_holder_ = -1;
  Ballot grant_ballot_;

  // Pre-candidate.
  Ballot pre_vote_ballot_;  // the ballot phase 1 would use; nobody promises it
  uint64_t pre_vote_mask_ = 0;
  int pre_vote_granted_ = 0;

  // Candidate.
  std::vector<PeerPromise> promises_;
  std::map<uint64_t, Entry> recovered_;
  uint64_t recover_from_ = 1;
  Ballot waiver_;

  // Leader.
  std::vector<Peer> peers_;
  std::map<uint64_t, Inflight> inflight_;
  uint64_t next_slot_ = 1;
  std::deque<Command> pending_;
  uint64_t reads_ok_after_ = 0;
  uint64_t hb_round_ = 0;
  uint64_t confirmed_round_ = 0;
  std::deque<std::pair<uint64_t, int64_t>> round_times_;  // round -> local send time
  int64_t lease_until_us_ = 0;
  // Set once this leadership sent TimeoutNow: acceptors may then promise the target while
  // still granting us a lease, so this ballot never uses a lease again (even if the
  // transfer times out).
  bool lease_forfeited_ = false;
  std::deque<PendingRead> pending_reads_;
  int32_t transfer_to_ = -1;
  uint64_t transfer_deadline_tick_ = 0;
  uint64_t preferred_check_tick_ = 0;
  std::optional<uint32_t> preferred_leader_;  // from Config, replaced by SetPreferredLeader
  uint64_t quorum_check_tick_ = 0;
};

}  // namespace geokv::paxos

#endif  // GEOKV_REPLICATION_PAXOS_REPLICA_H_
