// Vocabulary of the Multi-Paxos state machine: ballots, commands, log entries, messages,
// the persistent acceptor state, and the Ready batch handed to the application.
//
// All types here are plain values: copyable, owned by whoever holds them, no thread-safety
// of their own.
#ifndef GEOKV_REPLICATION_PAXOS_TYPES_H_
#define GEOKV_REPLICATION_PAXOS_TYPES_H_

#include <bit>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace geokv::paxos {

// A ballot orders leaders: a higher round wins; the node id breaks ties so that no two
// replicas ever use the same ballot. {0, 0} is "no ballot". Rounds are global across
// membership changes (the epoch of an entry is recorded in the entry, not in its ballot).
struct Ballot {
  uint64_t round = 0;
  uint32_t node = 0;
  auto operator<=>(const Ballot&) const = default;
  bool IsZero() const { return round == 0; }
};

// Who takes part in a group: replica ids in [0, 64) as bit masks. Voters accept, promise
// and count towards quorums; learners receive the log (and snapshots) and count for
// nothing. `epoch` counts the membership changes committed since the group was created.
// The membership chosen at slot s governs the slots above s (see replica.h).
struct Membership {
  uint32_t epoch = 0;
  uint64_t voters = 0;
  uint64_t learners = 0;

  static constexpr uint32_t kIdsMax = 64;
  bool IsVoter(uint32_t id) const { return id < kIdsMax && ((voters >> id) & 1) != 0; }
  bool IsLearner(uint32_t id) const { return id < kIdsMax && ((learners >> id) & 1) != 0; }
  bool IsMember(uint32_t id) const { return IsVoter(id) || IsLearner(id); }
  int Quorum() const { return std::popcount(voters) / 2 + 1; }
  // The genesis membership of a group of `n` voters, ids 0..n-1.
  static Membership Initial(uint32_t n) {
    return Membership{0, n >= kIdsMax ? ~uint64_t{0} : (uint64_t{1} << n) - 1, 0};
  }
  bool operator==(const Membership&) const = default;
};

// The single-step membership changes a leader proposes (Replica::ChangeMembers): one
// replica at a time, so that a majority of the old voters and a majority of the new ones
// always share a replica.
enum class MemberChange : uint8_t {
  kAddLearner,  // a new replica starts receiving the log
  kPromote,     // a caught-up learner becomes a voter
  kRemove,      // a voter or learner leaves the group
};

// A client command. (client_id, seq) makes it exactly-once: a retry carries the same pair
// and is marked duplicate when it commits again. The payload is opaque to Paxos.
struct Command {
  uint64_t client_id = 0;
  uint64_t seq = 0;
  std::string payload;
  bool operator==(const Command&) const = default;
};

// One slot of the log: the value accepted for `slot` at `ballot`, a batch of commands, a
// no-op that fills a hole left by an earlier leader, or a membership change (`members`,
// alone in its slot). `chosen` records that this replica knows the value is chosen
// (learned by catch-up or a commit index at this ballot). `epoch` is the membership epoch
// its proposer believed governs the slot; recovery uses it to tell a change that was chosen
// (entries of the next epoch follow it) from one that lost (see replica.h).
struct Entry {
  uint64_t slot = 0;
  Ballot ballot;
  bool noop = false;
  bool chosen = false;
  std::vector<Command> commands;
  uint32_t epoch = 0;
  std::optional<Membership> members;

  // Value equality (what Paxos chooses), ignoring ballot, chosen and epoch.
  bool SameValue(const Entry& o) const {
    return noop == o.noop && commands == o.commands && members == o.members;
  }
  size_t ByteSize() const {
    size_t n = members ? 56 : 32;
    for (const auto& c : commands) n += 24 + c.payload.size();
    return n;
  }
};

// The acceptor's persistent state besides the log.
struct HardState {
  Ballot promised;      // highest ballot promised (phase 1) or accepted
  uint64_t commit = 0;  // every slot <= commit is chosen (may lag; never needs a sync)
  bool operator==(const HardState&) const = default;
};

enum class MessageType : uint8_t {
  kPrepare = 0,
  kPromise,
  kAccept,
  kAccepted,
  kHeartbeat,
  kHeartbeatAck,
  kNack,
  kCatchUp,
  kTimeoutNow,
  kInstallSnapshot,
  kPreVote,
  kPreVoteReply,
  kSnapshotAck,
};
constexpr int kMessageTypeCount = 13;

// The application state as of `index` (every slot up to it applied), plus the exactly-once
// sessions at that point. Replaces the log up to `index`. Any size: it travels between
// replicas in chunks (SnapshotChunk), each within the message bound.
struct Snapshot {
  uint64_t index = 0;
  std::string data;  // opaque to Paxos: the application's own encoding
  // (client id, highest seq applied), least recently used first: the order is part of the
  // replicated state, since it decides which client is forgotten next (Config::sessions_max).
  std::vector<std::pair<uint64_t, uint64_t>> sessions;
  // The membership as of `index`. voters == 0: a snapshot taken before membership changes
  // existed, which means the group's genesis membership.
  Membership members;
  bool operator==(const Snapshot&) const = default;
};

// One piece of an encoded snapshot in flight (InstallSnapshot), or the receiver's answer
// (SnapshotAck: `offset` is the next byte it wants, `bytes` empty). A snapshot is named by
// (index, total_bytes, hash); `hash` also checks the assembled bytes.
struct SnapshotChunk {
  uint64_t index = 0;
  uint64_t offset = 0;
  uint64_t total_bytes = 0;
  uint64_t hash = 0;
  std::string bytes;
};

// A decoded message (see replication/wire/paxos.fbs for the meaning of each field).
struct Message {
  MessageType type = MessageType::kHeartbeat;
  uint32_t from = 0;
  uint32_t to = 0;
  Ballot ballot;
  uint64_t commit = 0;
  uint64_t from_slot = 0;
  uint64_t last_slot = 0;
  bool complete = false;
  uint64_t round = 0;
  Ballot promised;
  Ballot waiver;
  std::vector<Entry> entries;
  std::vector<uint64_t> slots;
  std::optional<Snapshot> snapshot;      // a whole snapshot: storage records, chunk payloads
  std::optional<SnapshotChunk> chunk;    // InstallSnapshot, SnapshotAck
  uint64_t compacted_index = 0;          // Promise: see replication/wire/paxos.fbs
  bool granted = false;                  // PreVoteReply
};

// A message to send: `bytes` is a verified-on-receipt FlatBuffers Message.
struct OutMessage {
  uint32_t to = 0;
  MessageType type = MessageType::kHeartbeat;
  std::string bytes;
};

// One committed command to apply, in log order. A duplicate (its client already had this
// or a later sequence number applied) must not change the application state; it is still
// reported so that the node can answer the retrying client.
struct Apply {
  uint64_t slot = 0;
  Command command;
  bool duplicate = false;
  // A duplicate of the command its session applied last (same sequence number): an earlier
  // copy of this very command took effect. A duplicate that is not a repeat was overtaken
  // by a later command of its session, and may never have taken effect.
  bool repeat = false;
};

// A linearizable read that is now safe: serve it from the state after applying everything
// in the same Ready (and before).
struct ReadState {
  uint64_t request_id = 0;
  uint64_t index = 0;  // commit index the read must observe
};

}  // namespace geokv::paxos

#endif  // GEOKV_REPLICATION_PAXOS_TYPES_H_
