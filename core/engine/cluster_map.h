// ClusterMap: the cluster metadata that the metadata Paxos group replicates (issue 12):
// regions; nodes (id, region, addresses, state); the placement of every strong shard (which
// node holds its replica in each region, its preferred and current leader region, at most
// one replica change in flight); the policy. Every change is a Command that each metadata
// replica applies in log order, deterministically: Apply() validates it against the map and
// either refuses it with a specific error (leaving the map untouched) or applies it and bumps
// version(). A refused command is refused alike on every replica.
//
// Node states and the transitions Apply accepts:
//   joining  -> up | removed
//   up       -> suspect | down | draining
//   suspect  -> up | down | draining
//   down     -> up | draining | removed (removed only when it holds no replica)
//   draining -> up | down | removed (removed only when it holds no replica)
//   removed  (final; the id is never reused)
// Replicas move only to `up` nodes of the same region. A replica change is two commands:
// BeginMove (the target joins the shard's group as a learner and catches up), then
// FinishMove (the target replaces the source) or AbortMove. A shard has at most one change
// in flight; BeginMove, FinishMove, AbortMove and SetLeader carry the shard's epoch and are
// refused (kConflict) when it moved on since they were planned.
//
// Pure: no I/O, no clock, no randomness. Value type; thread-compatible. The engine's metadata
// group replicates one (docs/placement.md).
#ifndef GEOKV_CORE_ENGINE_CLUSTER_MAP_H_
#define GEOKV_CORE_ENGINE_CLUSTER_MAP_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/status.h"
#include "core/engine/policy.h"

namespace geokv::placement {

using NodeId = uint32_t;
using RegionId = uint32_t;
inline constexpr NodeId kNoNode = UINT32_MAX;

// Limits of the model (each enforced by Apply and Decode).
inline constexpr size_t kRegionsMax = 64;             // as the engine's region count
inline constexpr size_t kNodesMax = 10'000;           // ever added, removed ones included
inline constexpr size_t kShardsMax = 65'536;
inline constexpr size_t kAddressBytesMax = 256;
inline constexpr size_t kRegionNameBytesMax = 64;
inline constexpr size_t kReportShardsMax = kShardsMax;
inline constexpr size_t kMapBytesMax = 64 * 1024 * 1024;      // an encoded map
inline constexpr size_t kCommandBytesMax = 16 * 1024 * 1024;  // an encoded command

// Stored and sent; never renumber.
enum class NodeState : uint8_t {
  kJoining = 0,
  kUp = 1,
  kSuspect = 2,
  kDown = 3,
  kDraining = 4,
  kRemoved = 5,
};
inline constexpr NodeState kNodeStateMax = NodeState::kRemoved;
std::string_view NodeStateName(NodeState state);
// Whether Apply accepts a node going from `from` to `to` (replica count aside).
bool TransitionAllowed(NodeState from, NodeState to);

struct Region {
  RegionId id = 0;
  std::string name;
  bool operator==(const Region&) const = default;
};

// What a node carries, derived from the placement (committed replicas only) and the shard
// sizes last reported.
struct NodeLoad {
  uint32_t shards = 0;
  uint64_t bytes = 0;
  uint32_t leaders = 0;
  bool operator==(const NodeLoad&) const = default;
};

struct Node {
  NodeId id = 0;
  RegionId region = 0;
  std::string peer_address;
  std::string client_address;
  NodeState state = NodeState::kJoining;
  NodeLoad load;  // maintained by ClusterMap
  bool operator==(const Node&) const = default;
};

// A replica change in flight in one region of one shard.
struct ReplicaChange {
  RegionId region = 0;
  NodeId from = kNoNode;  // the replica leaving
  NodeId to = kNoNode;    // the learner catching up
  uint32_t replica_id = 0;  // the learner's Paxos replica id (the shard's next_replica_id)
  bool operator==(const ReplicaChange&) const = default;
};

// A replica that left a shard's placement (its move finished) but may still hold
// eventual-key batches that reached nobody else: its node keeps its CRDT replica, and every
// other replica keeps counting it (crdt::Disseminator::MarkDeparted), until it reports that
// it has shipped everything (ReleaseReplica) or its node is removed.
struct DepartedReplica {
  uint32_t replica_id = 0;
  NodeId node = kNoNode;
  bool operator==(const DepartedReplica&) const = default;
};

// A shard's Paxos group names its replicas by replica ids in [0, kReplicaIdsMax); a move
// gives its learner a fresh one (never reused, so a message of a replica that left can never
// reach the one that took its place): a shard takes at most kReplicaIdsMax - regions moves.
inline constexpr uint32_t kReplicaIdsMax = 64;

struct ShardPlacement {
  std::vector<NodeId> replicas;             // indexed by region id
  // The Paxos replica id of each region's replica (empty in InitShards: the region indexes).
  std::vector<uint32_t> replica_ids;
  uint32_t next_replica_id = 0;             // the id of the next move's learner
  std::optional<RegionId> preferred_leader; // the region whose replica should lead
  RegionId leader_region = 0;               // the region whose replica leads (or should)
  std::optional<ReplicaChange> change;
  uint64_t epoch = 1;   // bumped by every change of the replica set or the leader
  uint64_t bytes = 0;   // last reported size
  std::vector<DepartedReplica> departed;  // ascending by replica id
  bool operator==(const ShardPlacement&) const = default;
};

// ---- commands ----
struct AddRegion { std::string name; };
struct AddNode {
  NodeId id = 0;
  RegionId region = 0;
  std::string peer_address;
  std::string client_address;
};
struct SetNodeState { NodeId node = 0; NodeState state = NodeState::kUp; };
struct ShardBytes {
  uint32_t shard = 0;
  uint64_t bytes = 0;
  bool operator==(const ShardBytes&) const = default;
};
// The sizes of (some of) the shards a node holds; sizes of shards it does not hold are
// refused (kInvalidArgument), so a stale report cannot overwrite a fresher one.
struct ReportLoad { NodeId node = 0; std::vector<ShardBytes> shards; };
// Creates the shards (once: kBusy when there are shards already).
struct InitShards { std::vector<ShardPlacement> shards; };
struct BeginMove {
  uint32_t shard = 0;
  uint64_t epoch = 0;
  RegionId region = 0;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
};
struct FinishMove { uint32_t shard = 0; uint64_t epoch = 0; };
struct AbortMove { uint32_t shard = 0; uint64_t epoch = 0; };
struct SetPreferredLeader { uint32_t shard = 0; std::optional<RegionId> region; };
struct SetLeader { uint32_t shard = 0; uint64_t epoch = 0; RegionId region = 0; };
struct SetPolicyRule { std::string prefix; Mode mode = Mode::kStrong; };  // "" sets the default
struct RemovePolicyRule { std::string prefix; };
// A departed replica has shipped everything it held (its node proposes it): it is no longer
// listed. kNotFound when it is not (released already, or its node was removed).
struct ReleaseReplica { uint32_t shard = 0; uint32_t replica_id = 0; };

using Command = std::variant<AddRegion, AddNode, SetNodeState, ReportLoad, InitShards, BeginMove,
                             FinishMove, AbortMove, SetPreferredLeader, SetLeader, SetPolicyRule,
                             RemovePolicyRule, ReleaseReplica>;
// "add-region", "begin-move", ...
std::string_view CommandName(const Command& command);

// Liveness report (sent to the metadata leader; only its conclusions become commands).
struct Heartbeat {
  NodeId node = 0;
  uint64_t incarnation = 0;
  uint64_t seq = 0;
  bool operator==(const Heartbeat&) const = default;
};

class ClusterMap {
 public:
  ClusterMap() = default;

  // Errors (the map is unchanged): kNotFound for an unknown region, node or shard;
  // kInvalidArgument for a malformed command (bad address, duplicate id, a transition the
  // table above forbids, a target not `up` or in another region, a report of a shard the
  // node does not hold, a move of a shard that used all its replica ids); kBusy for a second change to a shard with one in flight, removing a
  // node that still holds replicas, or shards created twice; kConflict for a stale epoch;
  // kKeyTooLarge for a policy prefix over the key limit.
  Status Check(const Command& command) const;
  Status Apply(const Command& command);

  uint64_t version() const { return version_; }
  const std::vector<Region>& regions() const { return regions_; }
  // The region's name, or "?" for an id the map does not have.
  std::string RegionName(RegionId id) const { return id < regions_.size() ? regions_[id].name : "?"; }
  const std::map<NodeId, Node>& nodes() const { return nodes_; }
  const std::vector<ShardPlacement>& shards() const { return shards_; }
  const Policy& policy() const { return policy_; }
  const Node* FindNode(NodeId id) const;
  // The node that holds `shard`'s replica in `region`.
  NodeId ReplicaOf(uint32_t shard, RegionId region) const { return shards_[shard].replicas[region]; }
  // The node holding Paxos replica `replica_id` of `shard` (a placed replica, or the learner
  // of the change in flight); kNoNode for none.
  NodeId NodeOfReplicaId(uint32_t shard, uint32_t replica_id) const;
  // The Paxos replica id of `node` in `shard` (placed, or the learner of the change in
  // flight); nullopt for none.
  std::optional<uint32_t> ReplicaIdOf(uint32_t shard, NodeId node) const;
  // The node of departed replica `replica_id` of `shard`; kNoNode when it is not listed.
  NodeId NodeOfDeparted(uint32_t shard, uint32_t replica_id) const;
  NodeId LeaderOf(uint32_t shard) const;
  // Nodes of `region` (every state), by id.
  std::vector<NodeId> NodesIn(RegionId region) const;

  // The shard of a key: FNV-1a 64 modulo the shard count, as Engine::ShardOf. Needs shards.
  uint32_t ShardOf(std::string_view key) const;

  // Recomputes every node's load from the placement and compares it with the maintained one;
  // also checks the placement's structural invariants. Tests and the simulator call this.
  Status CheckInvariants() const;

  // FlatBuffers (replication/wire/cluster_map.fbs). Decode verifies the buffer, bounds it
  // (kMapBytesMax) and checks every reference; kCorruption otherwise.
  std::string Encode() const;
  static StatusOr<ClusterMap> Decode(std::string_view bytes);

  bool operator==(const ClusterMap&) const;

 private:
  Status CheckShard(uint32_t shard) const;
  void Recount();
  void AddLoad(uint32_t shard, int sign);

  uint64_t version_ = 0;
  std::vector<Region> regions_;
  std::map<NodeId, Node> nodes_;
  std::vector<ShardPlacement> shards_;
  Policy policy_;
};

// FlatBuffers encodings of commands and heartbeats; Decode* verify (kCorruption on bad input,
// kVersion never: unknown union members fail verification as corruption).
std::string EncodeCommand(const Command& command);
StatusOr<Command> DecodeCommand(std::string_view bytes);
std::string EncodeHeartbeat(const Heartbeat& heartbeat);
StatusOr<Heartbeat> DecodeHeartbeat(std::string_view bytes);

}  // namespace geokv::placement

#endif  // GEOKV_CORE_ENGINE_CLUSTER_MAP_H_
