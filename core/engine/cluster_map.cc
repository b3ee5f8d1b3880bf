#include "core/engine/cluster_map.h"

#include <algorithm>

#include "replication/crdt/codec.h"
#include "replication/wire/aligned.h"
#include "replication/wire/cluster_map_generated.h"

namespace geokv::placement {

namespace fb = geokv::wire::cluster;

namespace {

constexpr size_t kPolicyPrefixBytesMax = 4096;

template <class... Ts>
struct Overloaded : Ts... { using Ts::operator()...; };
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

Status Busy(std::string m) { return Status(Code::kBusy, std::move(m)); }
Status Conflict(std::string m) { return Status(Code::kConflict, std::move(m)); }
std::string Str(uint64_t v) { return std::to_string(v); }

Status CheckAddress(std::string_view address, const char* what) {
  if (address.empty() || address.size() > kAddressBytesMax) {
    return InvalidArgument(std::string(what) + " must be 1.." + Str(kAddressBytesMax) + " bytes");
  }
  return Status::Ok();
}

// ---- FlatBuffers helpers ----

std::string Finish(flatbuffers::FlatBufferBuilder& b) {
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}
flatbuffers::Offset<flatbuffers::Vector<uint8_t>> Bytes(flatbuffers::FlatBufferBuilder& b, std::string_view s) {
  return b.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
std::string ToString(const flatbuffers::Vector<uint8_t>* v) {
  return v == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(v->data()), v->size());
}
std::string ToString(const flatbuffers::String* s) { return s == nullptr ? std::string() : s->str(); }

// `bytes` must be aligned (wire::AlignedBytes).
template <typename T>
const T* Verified(std::string_view bytes, size_t bytes_max, const char* what, Status* error) {
  if (bytes.size() > bytes_max) {
    *error = Corruption(std::string(what) + " is larger than " + Str(bytes_max) + " bytes");
    return nullptr;
  }
  flatbuffers::Verifier::Options options;
  options.max_tables = 16 * 1024 * 1024;
  flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), options);
  if (!verifier.VerifyBuffer<T>(nullptr)) {
    *error = Corruption(std::string(what) + " failed verification");
    return nullptr;
  }
  return flatbuffers::GetRoot<T>(bytes.data());
}

flatbuffers::Offset<fb::Node> BuildNode(flatbuffers::FlatBufferBuilder& b, NodeId id, RegionId region,
                                        std::string_view peer, std::string_view client, NodeState state) {
  auto p = b.CreateString(peer.data(), peer.size());
  auto c = b.CreateString(client.data(), client.size());
  return fb::CreateNode(b, id, region, p, c, static_cast<fb::NodeState>(state));
}

flatbuffers::Offset<fb::Shard> BuildShard(flatbuffers::FlatBufferBuilder& b, const ShardPlacement& s) {
  auto replicas = b.CreateVector(s.replicas);
  auto ids = b.CreateVector(s.replica_ids);
  flatbuffers::Offset<fb::Change> change;
  if (s.change) change = fb::CreateChange(b, s.change->region, s.change->from, s.change->to, s.change->replica_id);
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Departed>>> departed;
  if (!s.departed.empty()) {
    std::vector<flatbuffers::Offset<fb::Departed>> v;
    for (const DepartedReplica& d : s.departed) v.push_back(fb::CreateDeparted(b, d.replica_id, d.node));
    departed = b.CreateVector(v);
  }
  fb::ShardBuilder sb(b);
  sb.add_replicas(replicas);
  sb.add_replica_ids(ids);
  sb.add_next_replica_id(s.next_replica_id);
  sb.add_has_preferred(s.preferred_leader.has_value());
  sb.add_preferred_region(s.preferred_leader.value_or(0));
  sb.add_leader_region(s.leader_region);
  if (s.change) sb.add_change(change);
  sb.add_epoch(s.epoch);
  sb.add_bytes(s.bytes);
  if (!s.departed.empty()) sb.add_departed(departed);
  return sb.Finish();
}

StatusOr<ShardPlacement> ReadShard(const fb::Shard* s) {
  if (s == nullptr || s->replicas() == nullptr) return Corruption("shard without replicas");
  ShardPlacement p;
  p.replicas.assign(s->replicas()->begin(), s->replicas()->end());
  if (s->has_preferred()) p.preferred_leader = s->preferred_region();
  p.leader_region = s->leader_region();
  if (s->change() != nullptr) {
    p.change = ReplicaChange{s->change()->region(), s->change()->from(), s->change()->to(), s->change()->replica_id()};
  }
  p.epoch = s->epoch();
  p.bytes = s->bytes();
  // A map of an earlier version: every replica id is its region's index.
  const auto regions = static_cast<uint32_t>(p.replicas.size());
  if (s->replica_ids() != nullptr) {
    p.replica_ids.assign(s->replica_ids()->begin(), s->replica_ids()->end());
  } else {
    for (uint32_t r = 0; r < regions; ++r) p.replica_ids.push_back(r);
  }
  p.next_replica_id = s->replica_ids() != nullptr ? s->next_replica_id() : regions;
  if (s->departed() != nullptr) {
    if (s->departed()->size() > kReplicaIdsMax) return Corruption("shard with too many departed replicas");
    for (const fb::Departed* d : *s->departed()) {
      if (d == nullptr) return Corruption("shard with a null departed replica");
      p.departed.push_back(DepartedReplica{d->replica_id(), d->node()});
    }
  }
  return p;
}

bool ValidState(fb::NodeState s) { return static_cast<uint8_t>(s) <= static_cast<uint8_t>(kNodeStateMax); }
bool ValidMode(uint8_t m) { return m <= static_cast<uint8_t>(Mode::kSet); }

}  // namespace

std::string_view NodeStateName(NodeState state) {
  switch (state) {
    case NodeState::kJoining: return "joining";
    case NodeState::kUp: return "up";
    case NodeState::kSuspect: return "suspect";
    case NodeState::kDown: return "down";
    case NodeState::kDraining: return "draining";
    case NodeState::kRemoved: return "removed";
  }
  return "?";
}

bool TransitionAllowed(NodeState from, NodeState to) {
  using S = NodeState;
  switch (from) {
    case S::kJoining: return to == S::kUp || to == S::kDown || to == S::kRemoved;  // down: died while joining
    case S::kUp: return to == S::kSuspect || to == S::kDown || to == S::kDraining;
    case S::kSuspect: return to == S::kUp || to == S::kDown || to == S::kDraining;
    case S::kDown: return to == S::kUp || to == S::kDraining || to == S::kRemoved;
    case S::kDraining: return to == S::kUp || to == S::kDown || to == S::kRemoved;
    case S::kRemoved: return false;
  }
  return false;
}

std::string_view CommandName(const Command& command) {
  static constexpr std::string_view kNames[] = {
      "add-region", "add-node", "set-node-state", "report-load", "init-shards", "begin-move",
      "finish-move", "abort-move", "set-preferred-leader", "set-leader", "set-policy-rule",
      "remove-policy-rule", "release-replica"};
  return kNames[command.index()];
}

// ---- queries ----

const Node* ClusterMap::FindNode(NodeId id) const {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second;
}

NodeId ClusterMap::NodeOfReplicaId(uint32_t shard, uint32_t replica_id) const {
  const ShardPlacement& s = shards_[shard];
  for (size_t r = 0; r < s.replica_ids.size(); ++r) {
    if (s.replica_ids[r] == replica_id) return s.replicas[r];
  }
  return s.change && s.change->replica_id == replica_id ? s.change->to : kNoNode;
}

NodeId ClusterMap::NodeOfDeparted(uint32_t shard, uint32_t replica_id) const {
  for (const DepartedReplica& d : shards_[shard].departed) {
    if (d.replica_id == replica_id) return d.node;
  }
  return kNoNode;
}

std::optional<uint32_t> ClusterMap::ReplicaIdOf(uint32_t shard, NodeId node) const {
  const ShardPlacement& s = shards_[shard];
  for (size_t r = 0; r < s.replicas.size(); ++r) {
    if (s.replicas[r] == node) return s.replica_ids[r];
  }
  if (s.change && s.change->to == node) return s.change->replica_id;
  return std::nullopt;
}

NodeId ClusterMap::LeaderOf(uint32_t shard) const {
  const ShardPlacement& s = shards_[shard];
  return s.replicas[s.leader_region];
}

std::vector<NodeId> ClusterMap::NodesIn(RegionId region) const {
  std::vector<NodeId> out;
  for (const auto& [id, node] : nodes_) {
    if (node.region == region) out.push_back(id);
  }
  return out;
}

uint32_t ClusterMap::ShardOf(std::string_view key) const {
  assert(!shards_.empty());
  return static_cast<uint32_t>(crdt::Fnv1a64(key) % shards_.size());
}

// ---- validation ----

Status ClusterMap::CheckShard(uint32_t shard) const {
  if (shard >= shards_.size()) return NotFound("no shard " + Str(shard));
  return Status::Ok();
}

Status ClusterMap::Check(const Command& command) const {
  return std::visit(Overloaded{
      [&](const AddRegion& c) -> Status {
        if (c.name.empty() || c.name.size() > kRegionNameBytesMax) {
          return InvalidArgument("region name must be 1.." + Str(kRegionNameBytesMax) + " bytes");
        }
        if (regions_.size() >= kRegionsMax) return InvalidArgument("at most " + Str(kRegionsMax) + " regions");
        for (const Region& r : regions_) {
          if (r.name == c.name) return InvalidArgument("region \"" + c.name + "\" exists");
        }
        if (!shards_.empty()) return Busy("regions are fixed once shards exist");
        return Status::Ok();
      },
      [&](const AddNode& c) -> Status {
        if (c.id == kNoNode) return InvalidArgument("node id " + Str(kNoNode) + " is reserved");
        if (nodes_.count(c.id) != 0) return InvalidArgument("node " + Str(c.id) + " exists (ids are never reused)");
        if (nodes_.size() >= kNodesMax) return InvalidArgument("at most " + Str(kNodesMax) + " nodes");
        if (c.region >= regions_.size()) return NotFound("no region " + Str(c.region));
        GEOKV_RETURN_IF_ERROR(CheckAddress(c.peer_address, "peer address"));
        return CheckAddress(c.client_address, "client address");
      },
      [&](const SetNodeState& c) -> Status {
        const Node* node = FindNode(c.node);
        if (node == nullptr) return NotFound("no node " + Str(c.node));
        if (static_cast<uint8_t>(c.state) > static_cast<uint8_t>(kNodeStateMax)) return InvalidArgument("unknown node state");
        if (node->state == c.state) return Status::Ok();
        if (!TransitionAllowed(node->state, c.state)) {
          return InvalidArgument("node " + Str(c.node) + " cannot go from " + std::string(NodeStateName(node->state)) +
                                 " to " + std::string(NodeStateName(c.state)));
        }
        if (c.state == NodeState::kRemoved) {
          if (node->load.shards != 0) return Busy("node " + Str(c.node) + " still holds " + Str(node->load.shards) + " replicas");
          for (const ShardPlacement& s : shards_) {
            if (s.change && (s.change->to == c.node || s.change->from == c.node)) {
              return Busy("node " + Str(c.node) + " takes part in a replica change in flight");
            }
          }
        }
        return Status::Ok();
      },
      [&](const ReportLoad& c) -> Status {
        if (FindNode(c.node) == nullptr) return NotFound("no node " + Str(c.node));
        if (c.shards.size() > kReportShardsMax) return InvalidArgument("load report too long");
        for (const ShardBytes& sb : c.shards) {
          GEOKV_RETURN_IF_ERROR(CheckShard(sb.shard));
          const auto& replicas = shards_[sb.shard].replicas;
          if (std::find(replicas.begin(), replicas.end(), c.node) == replicas.end()) {
            return InvalidArgument("node " + Str(c.node) + " reports shard " + Str(sb.shard) + " it does not hold");
          }
        }
        return Status::Ok();
      },
      [&](const InitShards& c) -> Status {
        if (!shards_.empty()) return Busy("the shards exist already");
        if (regions_.empty()) return InvalidArgument("no regions");
        if (c.shards.empty() || c.shards.size() > kShardsMax) return InvalidArgument("shard count must be 1.." + Str(kShardsMax));
        for (size_t i = 0; i < c.shards.size(); ++i) {
          const ShardPlacement& s = c.shards[i];
          const std::string where = "shard " + Str(i) + ": ";
          if (s.replicas.size() != regions_.size()) return InvalidArgument(where + "needs one replica per region");
          if (!s.replica_ids.empty() && !(s.replica_ids.size() == regions_.size() && s.next_replica_id >= regions_.size())) {
            return InvalidArgument(where + "replica ids must be absent, or one per region below the next id");
          }
          if (s.change) return InvalidArgument(where + "starts with a change in flight");
          if (s.leader_region >= regions_.size()) return NotFound(where + "no region " + Str(s.leader_region));
          if (s.preferred_leader && *s.preferred_leader >= regions_.size()) return NotFound(where + "no preferred region");
          for (RegionId r = 0; r < s.replicas.size(); ++r) {
            const Node* node = FindNode(s.replicas[r]);
            if (node == nullptr) return NotFound(where + "no node " + Str(s.replicas[r]));
            if (node->region != r) return InvalidArgument(where + "node " + Str(node->id) + " is not in region " + Str(r));
            if (node->state != NodeState::kUp) return InvalidArgument(where + "node " + Str(node->id) + " is not up");
          }
        }
        return Status::Ok();
      },
      [&](const BeginMove& c) -> Status {
        GEOKV_RETURN_IF_ERROR(CheckShard(c.shard));
        const ShardPlacement& s = shards_[c.shard];
        if (s.change) return Busy("shard " + Str(c.shard) + " has a replica change in flight");
        if (s.epoch != c.epoch) return Conflict("shard " + Str(c.shard) + " is at epoch " + Str(s.epoch) + ", not " + Str(c.epoch));
        if (c.region >= regions_.size()) return NotFound("no region " + Str(c.region));
        if (s.replicas[c.region] != c.from) return InvalidArgument("node " + Str(c.from) + " is not the shard's replica in that region");
        const Node* to = FindNode(c.to);
        if (to == nullptr) return NotFound("no node " + Str(c.to));
        if (c.to == c.from) return InvalidArgument("a move needs two distinct nodes");
        if (to->region != c.region) return InvalidArgument("node " + Str(c.to) + " is in another region");
        if (to->state != NodeState::kUp) return InvalidArgument("node " + Str(c.to) + " is not up");
        if (s.next_replica_id >= kReplicaIdsMax) {
          return InvalidArgument("shard " + Str(c.shard) + " has used all " + Str(kReplicaIdsMax) + " replica ids");
        }
        return Status::Ok();
      },
      [&](const FinishMove& c) -> Status {
        GEOKV_RETURN_IF_ERROR(CheckShard(c.shard));
        const ShardPlacement& s = shards_[c.shard];
        if (!s.change) return NotFound("shard " + Str(c.shard) + " has no change in flight");
        if (s.epoch != c.epoch) return Conflict("shard " + Str(c.shard) + " is at epoch " + Str(s.epoch) + ", not " + Str(c.epoch));
        // Whatever the target's state since: the shard's group switched to it before its
        // leader proposed this (a target that fails afterwards is evacuated like any node).
        return Status::Ok();
      },
      [&](const ReleaseReplica& c) -> Status {
        GEOKV_RETURN_IF_ERROR(CheckShard(c.shard));
        if (NodeOfDeparted(c.shard, c.replica_id) == kNoNode) {
          return NotFound("shard " + Str(c.shard) + " lists no departed replica " + Str(c.replica_id));
        }
        return Status::Ok();
      },
      [&](const AbortMove& c) -> Status {
        GEOKV_RETURN_IF_ERROR(CheckShard(c.shard));
        const ShardPlacement& s = shards_[c.shard];
        if (!s.change) return NotFound("shard " + Str(c.shard) + " has no change in flight");
        if (s.epoch != c.epoch) return Conflict("shard " + Str(c.shard) + " is at epoch " + Str(s.epoch) + ", not " + Str(c.epoch));
        return Status::Ok();
      },
      [&](const SetPreferredLeader& c) -> Status {
        GEOKV_RETURN_IF_ERROR(CheckShard(c.shard));
        if (c.region && *c.region >= regions_.size()) return NotFound("no region " + Str(*c.region));
        return Status::Ok();
      },
      [&](const SetLeader& c) -> Status {
        GEOKV_RETURN_IF_ERROR(CheckShard(c.shard));
        const ShardPlacement& s = shards_[c.shard];
        if (s.change) return Busy("shard " + Str(c.shard) + " has a replica change in flight");
        if (s.epoch != c.epoch) return Conflict("shard " + Str(c.shard) + " is at epoch " + Str(s.epoch) + ", not " + Str(c.epoch));
        if (c.region >= regions_.size()) return NotFound("no region " + Str(c.region));
        const Node* node = FindNode(s.replicas[c.region]);
        if (node->state != NodeState::kUp) return InvalidArgument("the replica in region " + Str(c.region) + " is not up");
        return Status::Ok();
      },
      [&](const SetPolicyRule& c) -> Status {
        Policy copy = policy_;
        return copy.Set(c.prefix, c.mode, kPolicyPrefixBytesMax);
      },
      [&](const RemovePolicyRule& c) -> Status {
        if (policy_.rules().count(c.prefix) == 0) return NotFound("no policy rule for that prefix");
        return Status::Ok();
      },
  }, command);
}

// ---- application ----

void ClusterMap::AddLoad(uint32_t shard, int sign) {
  const ShardPlacement& s = shards_[shard];
  for (RegionId r = 0; r < s.replicas.size(); ++r) {
    NodeLoad& load = nodes_.at(s.replicas[r]).load;
    load.shards += sign;
    load.bytes += static_cast<uint64_t>(sign) * s.bytes;  // wraps back exactly on -1
    if (r == s.leader_region) load.leaders += sign;
  }
}

void ClusterMap::Recount() {
  for (auto& [id, node] : nodes_) node.load = NodeLoad{};
  for (uint32_t s = 0; s < shards_.size(); ++s) AddLoad(s, +1);
}

Status ClusterMap::Apply(const Command& command) {
  GEOKV_RETURN_IF_ERROR(Check(command));
  bool changed = true;
  std::visit(Overloaded{
      [&](const AddRegion& c) { regions_.push_back(Region{static_cast<RegionId>(regions_.size()), c.name}); },
      [&](const AddNode& c) {
        nodes_.emplace(c.id, Node{c.id, c.region, c.peer_address, c.client_address, NodeState::kJoining, {}});
      },
      [&](const SetNodeState& c) {
        Node& node = nodes_.at(c.node);
        changed = node.state != c.state;
        node.state = c.state;
        if (c.state == NodeState::kRemoved) {
          // Gone for good: what its departed replicas had not shipped is lost with it.
          for (ShardPlacement& s : shards_) {
            std::erase_if(s.departed, [&](const DepartedReplica& d) { return d.node == c.node; });
          }
        }
      },
      [&](const ReportLoad& c) {
        for (const ShardBytes& sb : c.shards) {
          AddLoad(sb.shard, -1);
          shards_[sb.shard].bytes = sb.bytes;
          AddLoad(sb.shard, +1);
        }
      },
      [&](const InitShards& c) {
        shards_ = c.shards;
        for (ShardPlacement& s : shards_) {
          s.epoch = 1;
          if (s.replica_ids.empty()) {
            for (uint32_t r = 0; r < s.replicas.size(); ++r) s.replica_ids.push_back(r);
            s.next_replica_id = static_cast<uint32_t>(s.replicas.size());
          }
        }
        Recount();
      },
      [&](const BeginMove& c) {
        ShardPlacement& s = shards_[c.shard];
        s.change = ReplicaChange{c.region, c.from, c.to, s.next_replica_id++};
        ++s.epoch;
      },
      [&](const FinishMove& c) {
        AddLoad(c.shard, -1);
        ShardPlacement& s = shards_[c.shard];
        const DepartedReplica leaving{s.replica_ids[s.change->region], s.change->from};
        s.departed.insert(std::upper_bound(s.departed.begin(), s.departed.end(), leaving,
                                           [](const DepartedReplica& a, const DepartedReplica& b) {
                                             return a.replica_id < b.replica_id;
                                           }),
                          leaving);
        s.replicas[s.change->region] = s.change->to;
        s.replica_ids[s.change->region] = s.change->replica_id;
        s.change.reset();
        ++s.epoch;
        AddLoad(c.shard, +1);
      },
      [&](const AbortMove& c) {
        ShardPlacement& s = shards_[c.shard];
        s.change.reset();
        ++s.epoch;
      },
      [&](const ReleaseReplica& c) {
        std::erase_if(shards_[c.shard].departed, [&](const DepartedReplica& d) { return d.replica_id == c.replica_id; });
      },
      [&](const SetPreferredLeader& c) { shards_[c.shard].preferred_leader = c.region; },
      [&](const SetLeader& c) {
        AddLoad(c.shard, -1);
        ShardPlacement& s = shards_[c.shard];
        changed = s.leader_region != c.region;
        s.leader_region = c.region;
        if (changed) ++s.epoch;
        AddLoad(c.shard, +1);
      },
      [&](const SetPolicyRule& c) {
        Status s = policy_.Set(c.prefix, c.mode, kPolicyPrefixBytesMax);
        assert(s.ok());
        (void)s;
      },
      [&](const RemovePolicyRule& c) {
        Status s = policy_.Remove(c.prefix);
        assert(s.ok());
        (void)s;
      },
  }, command);
  if (changed) ++version_;
  return Status::Ok();
}

Status ClusterMap::CheckInvariants() const {
  std::map<NodeId, NodeLoad> loads;
  for (const auto& [id, node] : nodes_) {
    if (node.region >= regions_.size()) return Internal("node " + Str(id) + " in an unknown region");
    loads[id];
  }
  for (uint32_t i = 0; i < shards_.size(); ++i) {
    const ShardPlacement& s = shards_[i];
    auto where = [i] { return "shard " + Str(i) + ": "; };
    if (s.replicas.size() != regions_.size()) return Internal(where() + "replica count");
    if (s.leader_region >= regions_.size()) return Internal(where() + "leader region");
    if (s.preferred_leader && *s.preferred_leader >= regions_.size()) return Internal(where() + "preferred region");
    for (RegionId r = 0; r < s.replicas.size(); ++r) {
      const Node* node = FindNode(s.replicas[r]);
      if (node == nullptr || node->region != r) return Internal(where() + "replica in region " + Str(r));
      if (node->state == NodeState::kRemoved) return Internal(where() + "replica on a removed node");
      NodeLoad& l = loads[node->id];
      ++l.shards;
      l.bytes += s.bytes;
      if (r == s.leader_region) ++l.leaders;
    }
    if (s.replica_ids.size() != regions_.size() || s.next_replica_id > kReplicaIdsMax) return Internal(where() + "replica ids");
    for (size_t r = 0; r < s.replica_ids.size(); ++r) {
      if (s.replica_ids[r] >= s.next_replica_id ||
          std::count(s.replica_ids.begin(), s.replica_ids.end(), s.replica_ids[r]) != 1) {
        return Internal(where() + "replica id of region " + Str(r));
      }
    }
    for (size_t k = 0; k < s.departed.size(); ++k) {
      const DepartedReplica& d = s.departed[k];
      const Node* node = FindNode(d.node);
      const bool placed = std::find(s.replica_ids.begin(), s.replica_ids.end(), d.replica_id) != s.replica_ids.end() ||
                          (s.change && s.change->replica_id == d.replica_id);
      if (d.replica_id >= s.next_replica_id || placed || (k > 0 && s.departed[k - 1].replica_id >= d.replica_id) ||
          node == nullptr || node->state == NodeState::kRemoved) {
        return Internal(where() + "departed replica " + Str(d.replica_id));
      }
    }
    if (s.change) {
      if (s.change->region >= regions_.size() || s.replicas[s.change->region] != s.change->from) {
        return Internal(where() + "change does not start from the replica");
      }
      if (s.change->replica_id + 1 != s.next_replica_id) return Internal(where() + "change replica id");
      const Node* to = FindNode(s.change->to);
      if (to == nullptr || to->region != s.change->region || to->state == NodeState::kRemoved) {
        return Internal(where() + "change target");
      }
    }
  }
  for (const auto& [id, node] : nodes_) {
    if (!(node.load == loads[id])) return Internal("node " + Str(id) + ": maintained load differs from the placement");
  }
  return Status::Ok();
}

bool ClusterMap::operator==(const ClusterMap& o) const {
  return version_ == o.version_ && regions_ == o.regions_ && nodes_ == o.nodes_ && shards_ == o.shards_ &&
         policy_ == o.policy_;
}

// ---- encodings ----

std::string ClusterMap::Encode() const {
  flatbuffers::FlatBufferBuilder b(1024 + 64 * nodes_.size() + 48 * shards_.size() * (1 + regions_.size()));
  std::vector<flatbuffers::Offset<fb::Region>> regions;
  for (const Region& r : regions_) regions.push_back(fb::CreateRegion(b, r.id, b.CreateString(r.name)));
  std::vector<flatbuffers::Offset<fb::Node>> nodes;
  for (const auto& [id, n] : nodes_) nodes.push_back(BuildNode(b, id, n.region, n.peer_address, n.client_address, n.state));
  std::vector<flatbuffers::Offset<fb::Shard>> shards;
  for (const ShardPlacement& s : shards_) shards.push_back(BuildShard(b, s));
  std::vector<flatbuffers::Offset<fb::Rule>> rules;
  for (const auto& [prefix, mode] : policy_.rules()) rules.push_back(fb::CreateRule(b, Bytes(b, prefix), static_cast<uint8_t>(mode)));
  auto map = fb::CreateMap(b, version_, b.CreateVector(regions), b.CreateVector(nodes), b.CreateVector(shards),
                           static_cast<uint8_t>(policy_.default_mode()), b.CreateVector(rules));
  b.Finish(map);
  return Finish(b);
}

StatusOr<ClusterMap> ClusterMap::Decode(std::string_view bytes) {
  Status error;
  const wire::AlignedBytes aligned(bytes);
  const auto* m = Verified<fb::Map>(aligned.view(), kMapBytesMax, "cluster map", &error);
  if (m == nullptr) return error;
  ClusterMap map;
  if (m->regions() != nullptr) {
    if (m->regions()->size() > kRegionsMax) return Corruption("cluster map: too many regions");
    for (const fb::Region* r : *m->regions()) {
      if (r->id() != map.regions_.size()) return Corruption("cluster map: region ids out of order");
      std::string name = ToString(r->name());
      if (name.empty() || name.size() > kRegionNameBytesMax) return Corruption("cluster map: bad region name");
      map.regions_.push_back(Region{r->id(), std::move(name)});
    }
  }
  if (m->nodes() != nullptr) {
    if (m->nodes()->size() > kNodesMax) return Corruption("cluster map: too many nodes");
    for (const fb::Node* n : *m->nodes()) {
      if (!ValidState(n->state())) return Corruption("cluster map: unknown node state");
      if (n->id() == kNoNode || n->region() >= map.regions_.size()) return Corruption("cluster map: bad node");
      Node node{n->id(), n->region(), ToString(n->peer_address()), ToString(n->client_address()),
                static_cast<NodeState>(n->state()), {}};
      if (!CheckAddress(node.peer_address, "").ok() || !CheckAddress(node.client_address, "").ok()) {
        return Corruption("cluster map: bad node address");
      }
      if (!map.nodes_.emplace(node.id, node).second) return Corruption("cluster map: duplicate node id");
    }
  }
  if (m->shards() != nullptr) {
    if (m->shards()->size() > kShardsMax) return Corruption("cluster map: too many shards");
    for (const fb::Shard* s : *m->shards()) {
      auto p = ReadShard(s);
      if (!p.ok()) return p.status();
      map.shards_.push_back(std::move(p).value());
    }
  }
  if (!ValidMode(m->default_mode())) return Corruption("cluster map: bad default mode");
  map.policy_ = Policy(static_cast<Mode>(m->default_mode()));
  if (m->rules() != nullptr) {
    if (m->rules()->size() > Policy::kRulesMax) return Corruption("cluster map: too many rules");
    for (const fb::Rule* r : *m->rules()) {
      std::string prefix = ToString(r->prefix());
      if (prefix.empty() || !ValidMode(r->mode())) return Corruption("cluster map: bad policy rule");
      if (!map.policy_.Set(prefix, static_cast<Mode>(r->mode()), kPolicyPrefixBytesMax).ok()) {
        return Corruption("cluster map: bad policy rule");
      }
    }
  }
  map.version_ = m->version();
  // Every reference must hold before loads are counted (Recount follows them).
  for (const ShardPlacement& s : map.shards_) {
    if (s.replicas.size() != map.regions_.size() || s.replica_ids.size() != map.regions_.size()) {
      return Corruption("cluster map: shard replica count");
    }
    if (s.leader_region >= map.regions_.size()) return Corruption("cluster map: bad leader region");
    for (RegionId r = 0; r < s.replicas.size(); ++r) {
      const Node* node = map.FindNode(s.replicas[r]);
      if (node == nullptr || node->region != r) return Corruption("cluster map: bad replica");
    }
  }
  map.Recount();
  Status invariants = map.CheckInvariants();
  if (!invariants.ok()) return Corruption("cluster map: " + invariants.message());
  return map;
}

std::string EncodeCommand(const Command& command) {
  flatbuffers::FlatBufferBuilder b(256);
  fb::CommandBody type = fb::CommandBody::NONE;
  flatbuffers::Offset<void> body = std::visit(Overloaded{
      [&](const AddRegion& c) {
        type = fb::CommandBody::AddRegion;
        return fb::CreateAddRegion(b, b.CreateString(c.name)).Union();
      },
      [&](const AddNode& c) {
        type = fb::CommandBody::AddNode;
        return fb::CreateAddNode(b, BuildNode(b, c.id, c.region, c.peer_address, c.client_address, NodeState::kJoining)).Union();
      },
      [&](const SetNodeState& c) {
        type = fb::CommandBody::SetNodeState;
        return fb::CreateSetNodeState(b, c.node, static_cast<fb::NodeState>(c.state)).Union();
      },
      [&](const ReportLoad& c) {
        type = fb::CommandBody::ReportLoad;
        std::vector<fb::ShardBytes> v;
        v.reserve(c.shards.size());
        for (const ShardBytes& sb : c.shards) v.emplace_back(sb.shard, sb.bytes);
        return fb::CreateReportLoad(b, c.node, b.CreateVectorOfStructs(v)).Union();
      },
      [&](const InitShards& c) {
        type = fb::CommandBody::InitShards;
        std::vector<flatbuffers::Offset<fb::Shard>> v;
        for (const ShardPlacement& s : c.shards) v.push_back(BuildShard(b, s));
        return fb::CreateInitShards(b, b.CreateVector(v)).Union();
      },
      [&](const BeginMove& c) {
        type = fb::CommandBody::BeginMove;
        return fb::CreateBeginMove(b, c.shard, c.epoch, c.region, c.from, c.to).Union();
      },
      [&](const FinishMove& c) {
        type = fb::CommandBody::FinishMove;
        return fb::CreateFinishMove(b, c.shard, c.epoch).Union();
      },
      [&](const AbortMove& c) {
        type = fb::CommandBody::AbortMove;
        return fb::CreateAbortMove(b, c.shard, c.epoch).Union();
      },
      [&](const SetPreferredLeader& c) {
        type = fb::CommandBody::SetPreferredLeader;
        return fb::CreateSetPreferredLeader(b, c.shard, c.region.has_value(), c.region.value_or(0)).Union();
      },
      [&](const SetLeader& c) {
        type = fb::CommandBody::SetLeader;
        return fb::CreateSetLeader(b, c.shard, c.epoch, c.region).Union();
      },
      [&](const SetPolicyRule& c) {
        type = fb::CommandBody::SetPolicyRule;
        return fb::CreateSetPolicyRule(b, Bytes(b, c.prefix), static_cast<uint8_t>(c.mode)).Union();
      },
      [&](const RemovePolicyRule& c) {
        type = fb::CommandBody::RemovePolicyRule;
        return fb::CreateRemovePolicyRule(b, Bytes(b, c.prefix)).Union();
      },
      [&](const ReleaseReplica& c) {
        type = fb::CommandBody::ReleaseReplica;
        return fb::CreateReleaseReplica(b, c.shard, c.replica_id).Union();
      },
  }, command);
  b.Finish(fb::CreateCommand(b, type, body));
  return Finish(b);
}

StatusOr<Command> DecodeCommand(std::string_view bytes) {
  Status error;
  const wire::AlignedBytes aligned(bytes);
  const auto* m = Verified<fb::Command>(aligned.view(), kCommandBytesMax, "cluster command", &error);
  if (m == nullptr) return error;
  // The Verifier accepts a union whose type is set but whose table is absent.
  if (m->body() == nullptr) return Corruption("cluster command without a body");
  switch (m->body_type()) {
    case fb::CommandBody::AddRegion: {
      const auto* c = m->body_as_AddRegion();
      return Command(AddRegion{ToString(c->name())});
    }
    case fb::CommandBody::AddNode: {
      const auto* n = m->body_as_AddNode()->node();
      if (n == nullptr) return Corruption("add-node without a node");
      return Command(AddNode{n->id(), n->region(), ToString(n->peer_address()), ToString(n->client_address())});
    }
    case fb::CommandBody::SetNodeState: {
      const auto* c = m->body_as_SetNodeState();
      if (!ValidState(c->state())) return Corruption("set-node-state: unknown state");
      return Command(SetNodeState{c->node(), static_cast<NodeState>(c->state())});
    }
    case fb::CommandBody::ReportLoad: {
      const auto* c = m->body_as_ReportLoad();
      ReportLoad r{c->node(), {}};
      if (c->shards() != nullptr) {
        if (c->shards()->size() > kReportShardsMax) return Corruption("report-load: too many shards");
        for (const fb::ShardBytes* sb : *c->shards()) r.shards.push_back(ShardBytes{sb->shard(), sb->bytes()});
      }
      return Command(std::move(r));
    }
    case fb::CommandBody::InitShards: {
      const auto* c = m->body_as_InitShards();
      InitShards init;
      if (c->shards() != nullptr) {
        if (c->shards()->size() > kShardsMax) return Corruption("init-shards: too many shards");
        for (const fb::Shard* s : *c->shards()) {
          auto p = ReadShard(s);
          if (!p.ok()) return p.status();
          if (p->replicas.size() > kRegionsMax) return Corruption("init-shards: too many replicas");
          init.shards.push_back(std::move(p).value());
        }
      }
      return Command(std::move(init));
    }
    case fb::CommandBody::BeginMove: {
      const auto* c = m->body_as_BeginMove();
      return Command(BeginMove{c->shard(), c->epoch(), c->region(), c->from(), c->to()});
    }
    case fb::CommandBody::FinishMove: {
      const auto* c = m->body_as_FinishMove();
      return Command(FinishMove{c->shard(), c->epoch()});
    }
    case fb::CommandBody::AbortMove: {
      const auto* c = m->body_as_AbortMove();
      return Command(AbortMove{c->shard(), c->epoch()});
    }
    case fb::CommandBody::SetPreferredLeader: {
      const auto* c = m->body_as_SetPreferredLeader();
      SetPreferredLeader s{c->shard(), std::nullopt};
      if (c->has_region()) s.region = c->region();
      return Command(s);
    }
    case fb::CommandBody::SetLeader: {
      const auto* c = m->body_as_SetLeader();
      return Command(SetLeader{c->shard(), c->epoch(), c->region()});
    }
    case fb::CommandBody::SetPolicyRule: {
      const auto* c = m->body_as_SetPolicyRule();
      if (!ValidMode(c->mode())) return Corruption("set-policy-rule: unknown mode");
      return Command(SetPolicyRule{ToString(c->prefix()), static_cast<Mode>(c->mode())});
    }
    case fb::CommandBody::RemovePolicyRule: {
      const auto* c = m->body_as_RemovePolicyRule();
      return Command(RemovePolicyRule{ToString(c->prefix())});
    }
    case fb::CommandBody::ReleaseReplica: {
      const auto* c = m->body_as_ReleaseReplica();
      return Command(ReleaseReplica{c->shard(), c->replica_id()});
    }
    case fb::CommandBody::NONE:
      break;
  }
  return Corruption("cluster command without a known body");
}

std::string EncodeHeartbeat(const Heartbeat& heartbeat) {
  flatbuffers::FlatBufferBuilder b(64);
  b.Finish(fb::CreateHeartbeat(b, heartbeat.node, heartbeat.incarnation, heartbeat.seq));
  return Finish(b);
}

StatusOr<Heartbeat> DecodeHeartbeat(std::string_view bytes) {
  Status error;
  const wire::AlignedBytes aligned(bytes);
  const auto* m = Verified<fb::Heartbeat>(aligned.view(), 1024, "heartbeat", &error);
  if (m == nullptr) return error;
  return Heartbeat{m->node(), m->incarnation(), m->seq()};
}

}  // namespace geokv::placement
