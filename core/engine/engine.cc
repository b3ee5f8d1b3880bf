#include "core/engine/engine.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdio>
#include <utility>

#include "replication/crdt/codec.h"
#include "replication/crdt/lww_register.h"
#include "replication/crdt/mv_register.h"
#include "replication/crdt/or_set.h"
#include "replication/crdt/pn_counter.h"
#include "replication/wire/aligned.h"
#include "replication/wire/node_generated.h"

namespace geokv {

namespace fb = geokv::wire::node;

namespace {

constexpr std::string_view kStrongTable = "strong";
constexpr std::string_view kAppliedTable = "applied";
constexpr std::string_view kMetaTable = "meta";
constexpr int kRoundsPerCallMax = 64;  // bounds one Process() call; the rest waits a tick
constexpr size_t kEnvelopeBytesMax = 64 << 10;  // an Envelope around its payload
constexpr size_t kCrdtHeaderBytes = 8;  // a CRDT payload starts with the sender's and the receiver's replica ids
constexpr size_t kCommandOverheadBytes = 256;   // a Command's fields and FlatBuffers framing
constexpr std::string_view kClusterMapKey = "cluster_map";
constexpr std::string_view kLegacyPolicyKey = "policy";  // written before the cluster map
constexpr std::string_view kDiskIdKey = "disk_id";          // this data directory's identity
constexpr std::string_view kDiskEstablishedKey = "disk_established";  // every peer confirmed it
constexpr std::string_view kPeerDiskPrefix = "peer_disk/";  // + node id: its recorded disk id
// A metadata leader whose detector did not run for this long was paused (or its loop
// stalled): the silence it would see is its own, so it starts its detectors afresh.
constexpr int64_t kDetectorPauseUs = 1'000'000;
constexpr int64_t kVerdictRetryUs = 1'000'000;  // a verdict not applied by then is proposed again

std::optional<placement::NodeState> ParseNodeState(std::string_view name) {
  for (uint8_t i = 0; i <= static_cast<uint8_t>(placement::kNodeStateMax); ++i) {
    const auto state = static_cast<placement::NodeState>(i);
    if (placement::NodeStateName(state) == name) return state;
  }
  return std::nullopt;
}

// A cluster map command as a metadata command (Op::kPlacement).
Request PlacementRequest(const placement::Command& command) {
  Request r;
  r.op = Op::kPlacement;
  r.value = placement::EncodeCommand(command);
  return r;
}

// Decimal node id, nothing else.
std::optional<placement::NodeId> ParseNodeId(std::string_view s) {
  placement::NodeId id = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) return std::nullopt;
  return id;
}

std::string GroupKey(uint32_t group) {
  std::string k;
  for (int i = 3; i >= 0; --i) k.push_back(static_cast<char>((group >> (8 * i)) & 0xff));
  return k;
}

std::string StrongKey(uint32_t group, std::string_view key) { return GroupKey(group) + std::string(key); }
// kAppliedTable: a strong shard's bytes (keys and values) as of its applied slot.
std::string BytesKey(uint32_t group) { return "bytes" + GroupKey(group); }

std::string EncodeU64(uint64_t v) {
  crdt::Encoder enc;
  enc.PutVarint(v);
  return enc.Release();
}

// A 64-bit id as 16 hex digits (status lines, errors).
std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

uint64_t DecodeU64(std::string_view bytes) {
  crdt::Decoder dec(bytes);
  uint64_t v = 0;
  return dec.GetVarint(&v).ok() ? v : 0;
}

// The strong-mode command stored in a Paxos log (node.fbs Command).
std::string EncodeCommand(const Request& r) {
  flatbuffers::FlatBufferBuilder b(64 + r.key.size() + r.value.size() + r.expected.size());
  auto bytes = [&](std::string_view s) {
    return b.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  auto key = bytes(r.key), value = bytes(r.value), expected = bytes(r.expected);
  fb::CommandBuilder cb(b);
  cb.add_op(static_cast<fb::Op>(r.op));
  cb.add_key(key);
  cb.add_value(value);
  cb.add_expected(expected);
  cb.add_has_expected(r.has_expected);
  cb.add_delta(r.delta);
  cb.add_mode(static_cast<uint8_t>(r.mode));
  b.Finish(cb.Finish());
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

StatusOr<Request> DecodeCommand(std::string_view bytes) {
  const wire::AlignedBytes aligned(bytes);
  flatbuffers::Verifier verifier(aligned.data(), aligned.size());
  if (!verifier.VerifyBuffer<fb::Command>(nullptr)) return Corruption("command failed verification");
  const auto* c = flatbuffers::GetRoot<fb::Command>(aligned.data());
  if (static_cast<uint8_t>(c->op()) > kOpMax || c->mode() > static_cast<uint8_t>(Mode::kSet)) {
    return Corruption("command has an unknown op or mode");
  }
  auto str = [](const flatbuffers::Vector<uint8_t>* v) {
    return v == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(v->data()), v->size());
  };
  Request r;
  r.op = static_cast<Op>(c->op());
  r.key = str(c->key());
  r.value = str(c->value());
  r.expected = str(c->expected());
  r.has_expected = c->has_expected();
  r.delta = c->delta();
  r.mode = static_cast<Mode>(c->mode());
  return r;
}

bool ParseInt(std::string_view s, int64_t* out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

Response Answer(Status s) {
  Response r;
  r.status = std::move(s);
  return r;
}

bool OpFitsMode(Op op, Mode mode) {
  switch (mode) {
    case Mode::kStrong: return op == Op::kGet || op == Op::kPut || op == Op::kDelete || op == Op::kCas || op == Op::kAdd;
    case Mode::kLww: return op == Op::kGet || op == Op::kPut || op == Op::kDelete;
    case Mode::kMvReg: return op == Op::kMvGet || op == Op::kMvPut || op == Op::kMvDelete || op == Op::kGet;
    case Mode::kCounter: return op == Op::kAdd || op == Op::kGet;
    case Mode::kSet: return op == Op::kSetAdd || op == Op::kSetRemove || op == Op::kSetMembers || op == Op::kSetContains;
  }
  return false;
}

bool IsRead(Op op) {
  return op == Op::kGet || op == Op::kPolicyList || op == Op::kPolicyCheck || op == Op::kShardSnapshot;
}

}  // namespace

// ---- construction and recovery ---------------------------------------------------------

Engine::Engine(const EngineOptions& options, Env& env)
    : options_(options),
      env_(env),
      detector_(options.failure_detector),
      load_reporter_(options.self, options.load_reporting) {}

StatusOr<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options, Env& env) {
  if (options.regions == 0 || options.regions > 64) return InvalidArgument("regions must be in [1, 64]");
  if (options.shards == 0 || options.shards > 4096) return InvalidArgument("shards must be in [1, 4096]");
  const size_t nodes = options.members.empty() ? options.regions : options.members.size();
  if (nodes > EngineOptions::kNodesMax) {
    return InvalidArgument("a cluster has at most " + std::to_string(EngineOptions::kNodesMax) + " nodes, not " +
                           std::to_string(nodes));
  }
  if (options.self >= nodes) return InvalidArgument("self must be below the node count");
  std::unique_ptr<Engine> e(new Engine(options, env));
  e->nodes_ = static_cast<uint32_t>(nodes);
  e->meta_nodes_.assign(options.regions, placement::kNoNode);
  for (uint32_t n = 0; n < nodes; ++n) {
    const uint32_t region = options.members.empty() ? n : options.members[n].region;
    if (region >= options.regions) {
      return InvalidArgument("node " + std::to_string(n) + " is in region " + std::to_string(region) + " of " +
                             std::to_string(options.regions));
    }
    e->node_regions_.push_back(region);
    if (e->meta_nodes_[region] == placement::kNoNode) {
      // The metadata group's voters are in the genesis map.
      if (!options.members.empty() && options.members[n].added) {
        return InvalidArgument("node " + std::to_string(n) + " is the first of region " + std::to_string(region) +
                               " and cannot be an added node");
      }
      e->meta_nodes_[region] = n;
    }
  }
  for (uint32_t r = 0; r < options.regions; ++r) {
    if (e->meta_nodes_[r] == placement::kNoNode) return InvalidArgument("region " + std::to_string(r) + " has no node");
  }
  // The other nodes follow the metadata group as learners, replica ids from `regions` up.
  for (uint32_t n = 0; n < nodes; ++n) {
    if (e->meta_nodes_[e->node_regions_[n]] != n) e->meta_nodes_.push_back(n);
  }
  GEOKV_RETURN_IF_ERROR(e->Recover());
  return e;
}

Status Engine::Recover() {
  storage::Storage& store = env_.Store();
  client_id_ = env_.Random() | 1;
  // Forward ids carry 24 random bits of incarnation above a 40-bit counter: ZeroMQ delivers
  // replies queued for an earlier life of this node, and they must not match our requests.
  incarnation_ = options_.unsafe_forward_ids_restart ? 0 : (env_.Random() % ((1u << 24) - 1)) + 1;

  // The cluster map as of the metadata group's applied slot; a node of an earlier version
  // kept only the policy, and a new node starts from the genesis map.
  auto stored = store.Get(kMetaTable, kClusterMapKey);
  bool fresh = false;  // a new data directory (not one of an earlier version either)
  if (stored.ok()) {
    auto decoded = placement::ClusterMap::Decode(*stored);
    if (!decoded.ok()) return decoded.status();
    map_ = std::move(decoded).value();
  } else if (stored.status().IsNotFound()) {
    Policy policy = options_.policy;
    auto legacy = store.Get(kMetaTable, kLegacyPolicyKey);
    if (legacy.ok()) {
      auto decoded = Policy::Decode(*legacy);
      if (!decoded.ok()) return decoded.status();
      policy = std::move(decoded).value();
    } else if (legacy.status().IsNotFound()) {
      fresh = true;
    } else {
      return legacy.status();
    }
    auto genesis = GenesisMap(policy);
    if (!genesis.ok()) return genesis.status();
    map_ = std::move(genesis).value();
  } else {
    return stored.status();
  }
  if (map_.regions().size() != options_.regions || map_.shards().size() != options_.shards) {
    return InvalidArgument("the stored cluster map has " + std::to_string(map_.regions().size()) + " regions and " +
                           std::to_string(map_.shards().size()) + " shards; this node is configured with " +
                           std::to_string(options_.regions) + " and " + std::to_string(options_.shards));
  }
  // The map may list nodes added since this node's configuration was written; the
  // configuration may list added nodes the map does not have yet (a joining node's map
  // starts as the genesis one). Every other node is in both, in the same region.
  for (uint32_t id = static_cast<uint32_t>(map_.nodes().size()); id < nodes_; ++id) {
    if (!options_.members[id].added) {
      return InvalidArgument("node " + std::to_string(id) + " is configured but the stored cluster map has " +
                             std::to_string(map_.nodes().size()) + " nodes (a node added to a running cluster is "
                             "configured with added = true)");
    }
  }
  for (const auto& [id, node] : map_.nodes()) {
    if (id < nodes_ && node.region != node_regions_[id]) {
      return InvalidArgument("the stored cluster map has node " + std::to_string(id) + " in region " +
                             std::to_string(node.region) + "; this node is configured otherwise");
    }
  }
  GrowNodes();

  GEOKV_RETURN_IF_ERROR(LoadDiskIds(fresh));

  const uint32_t total = options_.shards + 1;  // shards, then the metadata group
  groups_.resize(total);
  handoff_after_us_.assign(total, 0);
  shard_bytes_.assign(options_.shards, 0);
  for (uint32_t g = 0; g < options_.shards; ++g) {
    auto bytes = store.Get(kAppliedTable, BytesKey(g));
    if (bytes.ok()) {
      shard_bytes_[g] = DecodeU64(*bytes);
    } else if (bytes.status().IsNotFound()) {
      // Written by an earlier version: count once.
      auto counted = CountShardBytes(g);
      if (!counted.ok()) return counted.status();
      shard_bytes_[g] = *counted;
    } else {
      return bytes.status();
    }
  }
  // This node opens the replicas the map places on it. Genesis voters are ids 0..regions-1.
  paxos::Config& c = replica_config_;
  c.replicas = options_.regions;
  c.tick_us = options_.tick_us;
  c.heartbeat_ticks = options_.heartbeat_ticks;
  c.election_ticks = options_.election_ticks;
  c.resend_ticks = options_.resend_ticks;
  c.lease_us = options_.lease_us;
  c.clock_drift_max = options_.clock_drift_max;
  c.unsafe_skip_phase1_recovery = options_.unsafe_skip_phase1_recovery;
  c.unsafe_lease_cached_time = options_.unsafe_lease_cached_time;
  // A Paxos message and its envelope fit the node's message bound.
  c.message_bytes_max = kMessageBytesMax - kEnvelopeBytesMax;
  command_bytes_max_ = paxos::Replica::CommandBytesMax(c);
  move_proposed_us_.assign(options_.shards, 0);
  for (uint32_t g = 0; g < total; ++g) {
    // The metadata group everywhere (a learner unless the region's first node).
    const int32_t id = ReplicaIdOf(g, options_.self);
    if (id >= 0) GEOKV_RETURN_IF_ERROR(OpenReplica(g, static_cast<uint32_t>(id)));
  }

  // The CRDT replicas: those the map no longer wants here (released, or a move's learner
  // whose move was aborted before the map change reached this disk) go; the others open.
  auto stored_crdts = CrdtStore::List(store);
  if (!stored_crdts.ok()) return stored_crdts.status();
  const std::set<CrdtId> wanted = WantedCrdtReplicas();
  storage::WriteBatch erase;
  for (const auto& [shard, id] : *stored_crdts) {
    if (wanted.count({shard, id}) != 0) continue;
    GEOKV_RETURN_IF_ERROR(CrdtStore(store, shard, id).Erase(&erase));
  }
  if (!erase.empty()) GEOKV_RETURN_IF_ERROR(store.Write(erase, storage::Durability::kSync));
  for (const auto& [shard, id] : wanted) GEOKV_RETURN_IF_ERROR(OpenCrdtReplica(shard, id));
  FollowMapNodes();
  next_tick_us_ = env_.NowUs();
  Process();
  return failed_;
}

Status Engine::OpenReplica(uint32_t g, uint32_t id) {
  Group& group = groups_[g];
  group.applied = 0;
  auto applied = env_.Store().Get(kAppliedTable, GroupKey(g));
  if (applied.ok()) {
    group.applied = DecodeU64(*applied);
  } else if (!applied.status().IsNotFound()) {
    return applied.status();
  }
  group.compacted_at = group.applied;
  group.log = std::make_unique<PaxosLog>(env_.Store(), g, &round_batch_, &round_sync_);
  paxos::Config c = replica_config_;
  c.id = id;
  c.seed = env_.Random();
  c.preferred_leader.reset();
  if (g < options_.preferred_leader.size() && options_.preferred_leader[g]) {
    c.preferred_leader = ReplicaInRegion(g, *options_.preferred_leader[g]);
  }
  auto replica = paxos::Replica::Open(c, *group.log);
  if (!replica.ok()) return replica.status();
  group.replica = std::move(replica).value();
  return Status::Ok();
}

void Engine::EraseDeparted() {
  closing_.clear();
  for (uint32_t g = 0; g < options_.shards; ++g) {
    if (!Hosts(g)) continue;
    const auto id = map_.ReplicaIdOf(g, options_.self);
    if (id && *id == groups_[g].replica->id()) continue;
    // The map no longer places this replica here (its move finished elsewhere, or the
    // move that brought it was aborted): everything of it goes, in the write that persists
    // the map, so that a restart never reopens it without its data.
    closing_.push_back(g);
    if (Status s = groups_[g].log->Erase(&apply_batch_); !s.ok()) return Fail(s);
    const std::string prefix = GroupKey(g);
    std::string after;
    for (;;) {
      auto rows = env_.Store().Scan(kStrongTable, prefix, after, 1024);
      if (!rows.ok()) return Fail(rows.status());
      for (const auto& row : *rows) apply_batch_.Delete(kStrongTable, row.key);
      if (rows->size() < 1024) break;
      after = rows->back().key;
    }
    for (auto it = overlay_.lower_bound(prefix); it != overlay_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      apply_batch_.Delete(kStrongTable, it->first);
    }
    apply_batch_.Delete(kAppliedTable, GroupKey(g));
    apply_batch_.Delete(kAppliedTable, BytesKey(g));
  }
}

void Engine::GrowNodes() {
  const auto listed = static_cast<uint32_t>(map_.nodes().size());
  if (listed <= nodes_) return;
  for (uint32_t id = nodes_; id < listed; ++id) {
    const placement::Node* node = map_.FindNode(id);
    node_regions_.push_back(node != nullptr ? node->region : 0);
    meta_nodes_.push_back(id);  // a learner of the metadata group, ids in node order
  }
  nodes_ = listed;
  peer_disks_.resize(nodes_, 0);
  seen_disks_.resize(nodes_, 0);
  foreign_disks_.resize(nodes_, 0);
  echoed_.resize(nodes_, false);
}

void Engine::FollowMapNodes() {
  GrowNodes();
  if (!failed_.ok()) return;
  for (const auto& [id, node] : map_.nodes()) {
    node_regions_[id] = node.region;  // the map's word (a configuration may say otherwise of an added node)
    if (id == options_.self) continue;
    if (node.state == placement::NodeState::kRemoved) {
      // Gone for good: a new directory here does not wait for it.
      if (id < echoed_.size()) echoed_[id] = true;
      continue;
    }
    if (connected_.insert(id).second) env_.ConnectPeer(id, map_.regions()[node.region].name, node.peer_address);
  }
}

void Engine::ReconcileReplicas() {
  for (uint32_t g : closing_) {
    groups_[g].replica.reset();
    groups_[g].log.reset();
    groups_[g].applied = 0;
    groups_[g].compacted_at = 0;
    shard_bytes_[g] = 0;
    stats_.replicas_closed++;
  }
  closing_.clear();
  for (uint32_t g = 0; g < options_.shards; ++g) {
    const auto id = map_.ReplicaIdOf(g, options_.self);
    if (!id || Hosts(g)) continue;
    if (Status s = OpenReplica(g, *id); !s.ok()) return Fail(s);
    stats_.replicas_opened++;
  }
}

// ---- eventual keys: the CRDT replicas of the shards held here --------------------------

std::set<Engine::CrdtId> Engine::WantedCrdtReplicas() const {
  std::set<CrdtId> wanted;
  for (uint32_t g = 0; g < options_.shards && g < map_.shards().size(); ++g) {
    if (const auto id = map_.ReplicaIdOf(g, options_.self)) wanted.insert({g, *id});
    for (const placement::DepartedReplica& d : map_.shards()[g].departed) {
      if (d.node == options_.self) wanted.insert({g, d.replica_id});
    }
  }
  return wanted;
}

Status Engine::OpenCrdtReplica(uint32_t shard, uint32_t id) {
  CrdtReplica c;
  c.store = std::make_unique<CrdtStore>(env_.Store(), shard, id);
  auto image = c.store->Load();
  if (!image.ok()) return image.status();
  const placement::ShardPlacement& s = map_.shards()[shard];
  crdt::DisseminatorOptions d;
  d.self = id;
  d.regions = std::max(s.next_replica_id, id + 1);
  d.batch_interval_us = options_.crdt_batch_interval_us;
  d.resend_interval_us = options_.crdt_resend_interval_us;
  d.key_bytes_max = options_.limits.key_bytes_max;
  d.limits.value_bytes_max = options_.limits.value_bytes_max;
  // A CRDT message and its envelope must fit the node's message bound.
  d.message_bytes_max = kMessageBytesMax - kEnvelopeBytesMax - kCrdtHeaderBytes;
  // A move's learner (ids from `regions` up; the shard's first replicas are the region
  // indexes) takes the shard's eventual keys from state transfers of the other replicas
  // before it applies or accepts anything (crdt::DisseminatorOptions::join). Only a fresh
  // image joins: afterwards the persisted join state rules.
  d.join = id >= options_.regions;
  c.d = std::make_unique<crdt::Disseminator>(d, std::move(image).value());
  // A stored CRDT state that does not decode is kept on disk untouched; the node refuses to
  // start rather than serve without it.
  if (!c.d->open_status().ok()) return c.d->open_status();
  c.d->ObserveWallClock(env_.WallUs());
  FollowCrdtMembership(shard, id, *c.d);
  crdts_[{shard, id}] = std::move(c);
  stats_.crdt_replicas_opened++;
  return Status::Ok();
}

void Engine::FollowCrdtMembership(uint32_t shard, uint32_t id, crdt::Disseminator& d) {
  const placement::ShardPlacement& s = map_.shards()[shard];
  const uint32_t n = std::max(s.next_replica_id, d.replicas());
  if (n > d.replicas()) {
    if (Status st = d.AddReplicas(n); !st.ok()) return Fail(st);
  }
  const bool learning_here = s.change && s.change->replica_id == id;
  for (uint32_t r = 0; r < n; ++r) {
    if (r == id || d.retired(r)) continue;
    const bool placed = std::find(s.replica_ids.begin(), s.replica_ids.end(), r) != s.replica_ids.end();
    const bool learner = s.change && s.change->replica_id == r;
    if (placed || learner) {
      // A newcomer takes nothing from the replica it replaces (dead, perhaps): what that one
      // wrote reaches it as batches, before or after the move finishes. Nor does it wait for
      // a replica whose node is down (one transfer carries every collection).
      if (learning_here && r == s.replica_ids[s.change->region]) d.MarkDeparted(r);
      const placement::Node* node = map_.FindNode(map_.NodeOfReplicaId(shard, r));
      if (node == nullptr || node->state == placement::NodeState::kDown) d.JoinWithout(r);
      continue;
    }
    if (map_.NodeOfDeparted(shard, r) != placement::kNoNode) {
      d.MarkDeparted(r);
    } else {
      d.RetireReplica(r);  // released, aborted, or its node removed
    }
  }
}

void Engine::FollowCrdtReplicas() {
  for (const CrdtId& id : crdts_closing_) {
    crdts_.erase(id);
    stats_.crdt_replicas_erased++;
  }
  crdts_closing_.clear();
  for (const auto& [shard, id] : WantedCrdtReplicas()) {
    auto it = crdts_.find({shard, id});
    if (it != crdts_.end()) {
      FollowCrdtMembership(shard, id, *it->second.d);
    } else if (Status s = OpenCrdtReplica(shard, id); !s.ok()) {
      return Fail(s);
    }
  }
}

void Engine::EraseDepartedCrdts() {
  const std::set<CrdtId> wanted = WantedCrdtReplicas();
  for (auto& [id, c] : crdts_) {
    if (wanted.count(id) != 0) continue;
    if (Status s = c.store->Erase(&apply_batch_); !s.ok()) return Fail(s);
    crdts_closing_.push_back(id);
  }
}

void Engine::TickCrdtReleases(int64_t now) {
  for (auto& [id, c] : crdts_) {
    if (map_.NodeOfDeparted(id.first, id.second) != options_.self) continue;
    if (!c.d->Shipped() && !options_.unsafe_release_unshipped) continue;
    if (now - c.release_proposed_us < kMoveRetryUs) continue;
    c.release_proposed_us = now;
    stats_.crdt_releases++;
    Dispatch(PlacementRequest(placement::ReleaseReplica{id.first, id.second}), [](Response) {}, Via::kClient);
  }
}

std::optional<Engine::CrdtId> Engine::ServingCrdtId(uint32_t shard) const {
  const placement::ShardPlacement& s = map_.shards()[shard];
  for (size_t r = 0; r < s.replicas.size(); ++r) {
    if (s.replicas[r] == options_.self) return CrdtId{shard, s.replica_ids[r]};
  }
  return std::nullopt;
}

Engine::CrdtReplica* Engine::ServingCrdt(uint32_t shard) {
  const std::optional<CrdtId> id = ServingCrdtId(shard);
  auto it = id ? crdts_.find(*id) : crdts_.end();
  return it == crdts_.end() ? nullptr : &it->second;
}

const crdt::Disseminator* Engine::EventualReplica(uint32_t shard) const {
  const std::optional<CrdtId> id = ServingCrdtId(shard);
  auto it = id ? crdts_.find(*id) : crdts_.end();
  return it == crdts_.end() || it->second.d->joining() ? nullptr : it->second.d.get();
}

const crdt::CrdtValue* Engine::EventualValue(std::string_view key) const {
  const crdt::Disseminator* d = EventualReplica(ShardOf(key));
  return d == nullptr ? nullptr : d->Get(key);
}

std::vector<std::pair<std::pair<uint32_t, uint32_t>, const crdt::Disseminator*>> Engine::CrdtReplicas() const {
  std::vector<std::pair<std::pair<uint32_t, uint32_t>, const crdt::Disseminator*>> out;
  for (const auto& [id, c] : crdts_) out.emplace_back(id, c.d.get());
  return out;
}

crdt::DisseminatorStats Engine::CrdtStats() const {
  crdt::DisseminatorStats sum;
  for (const auto& [id, c] : crdts_) {
    const crdt::DisseminatorStats& s = c.d->stats();
    sum.batches_sealed += s.batches_sealed;
    sum.batches_applied += s.batches_applied;
    sum.batches_resent += s.batches_resent;
    sum.messages_bad += s.messages_bad;
    sum.transfers_started += s.transfers_started;
    sum.transfers_completed += s.transfers_completed;
    sum.bytes_sent += s.bytes_sent;
    sum.tombstones_collected += s.tombstones_collected;
    sum.messages_from_retired += s.messages_from_retired;
  }
  return sum;
}

bool Engine::CrdtJoining(uint32_t shard) const {
  if (shard >= options_.shards) return false;
  const auto id = map_.ReplicaIdOf(shard, options_.self);
  if (!id) return false;
  auto it = crdts_.find({shard, *id});
  return it != crdts_.end() && it->second.d->joining();
}

uint32_t Engine::CrdtNodeOf(uint32_t shard, uint32_t id) const {
  const uint32_t node = map_.NodeOfReplicaId(shard, id);
  return node != placement::kNoNode ? node : map_.NodeOfDeparted(shard, id);
}

void Engine::SendCrdt(uint32_t shard, uint32_t from_id, const crdt::OutMessage& m) {
  const uint32_t node = CrdtNodeOf(shard, m.to);
  if (node == placement::kNoNode) return;  // retired since: the disseminator no longer waits for it
  std::string payload;
  payload.reserve(kCrdtHeaderBytes + m.bytes.size());
  for (uint32_t v : {from_id, m.to}) {
    for (int i = 3; i >= 0; --i) payload.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  payload += m.bytes;
  if (node == options_.self) {
    local_crdt_.emplace_back(shard, std::move(payload));
    return;
  }
  SendEnvelope(node, static_cast<uint8_t>(fb::Channel::Crdt), shard, payload);
}

void Engine::StepCrdt(uint32_t from, uint32_t shard, std::string_view payload) {
  if (payload.size() < kCrdtHeaderBytes) {
    stats_.bad_messages++;
    return;
  }
  auto u32 = [&](size_t at) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(payload[at + i]);
    return v;
  };
  const uint32_t from_id = u32(0), to_id = u32(4);
  auto it = crdts_.find({shard, to_id});
  // For a replica this node does not hold, or from one the map does not place on the
  // sender (the sender's map is older or newer than ours): dropped, and resent by its
  // origin if it still matters.
  if (it == crdts_.end() || CrdtNodeOf(shard, from_id) != from) {
    stats_.misrouted_messages++;
    return;
  }
  it->second.d->ObserveWallClock(env_.WallUs());
  it->second.d->Step(from_id, payload.substr(kCrdtHeaderBytes));
}

// ---- routing ---------------------------------------------------------------------------

uint32_t Engine::ShardOf(std::string_view key) const {
  return static_cast<uint32_t>(crdt::Fnv1a64(key) % options_.shards);
}

uint32_t Engine::GroupsLedBy(uint32_t node) const {
  uint32_t n = 0;
  for (uint32_t g = 0; g < groups_.size(); ++g) n += LeaderOf(g) == static_cast<int32_t>(node) ? 1 : 0;
  return n;
}

bool Engine::IsLeader(uint32_t group) const { return Hosts(group) && groups_[group].replica->IsLeader(); }

int32_t Engine::LeaderOf(uint32_t group) const {
  if (!Hosts(group)) return -1;
  const int32_t hint = groups_[group].replica->leader_hint();
  if (hint < 0) return -1;
  const uint32_t node = NodeOfReplica(group, static_cast<uint32_t>(hint));
  return node == placement::kNoNode ? -1 : static_cast<int32_t>(node);
}

uint32_t Engine::NodeOfReplica(uint32_t group, uint32_t replica) const {
  if (group == metadata_group()) return replica < meta_nodes_.size() ? meta_nodes_[replica] : placement::kNoNode;
  return group < map_.shards().size() ? map_.NodeOfReplicaId(group, replica) : placement::kNoNode;
}

int32_t Engine::ReplicaIdOf(uint32_t group, uint32_t node) const {
  if (node >= nodes_) return -1;
  if (group == metadata_group()) {
    const auto it = std::find(meta_nodes_.begin(), meta_nodes_.end(), node);
    return static_cast<int32_t>(it - meta_nodes_.begin());
  }
  const auto id = map_.ReplicaIdOf(group, node);
  return id ? static_cast<int32_t>(*id) : -1;
}

uint32_t Engine::ReplicaInRegion(uint32_t group, uint32_t region) const {
  return group == metadata_group() ? MetadataVoterIn(region) : map_.shards()[group].replica_ids[region];
}

uint32_t Engine::HolderIn(uint32_t group, uint32_t region) const {
  return group == metadata_group() ? meta_nodes_[MetadataVoterIn(region)] : map_.ReplicaOf(group, region);
}

uint32_t Engine::MetadataVoterIn(uint32_t region) const {
  const Group& meta = groups_[metadata_group()];
  if (meta.replica == nullptr) return region;
  const paxos::Membership& m = meta.replica->members();
  if (m.IsVoter(region)) return region;
  for (uint64_t voters = m.voters; voters != 0; voters &= voters - 1) {
    const auto id = static_cast<uint32_t>(std::countr_zero(voters));
    if (id < meta_nodes_.size() && meta_nodes_[id] < node_regions_.size() && node_regions_[meta_nodes_[id]] == region) {
      return id;
    }
  }
  return region;
}

void Engine::ReplaceMetadataVoters() {
  using placement::NodeState;
  paxos::Replica& meta = *groups_[metadata_group()].replica;
  const paxos::Membership& m = meta.members();
  auto node_of = [&](uint32_t id) { return map_.FindNode(meta_nodes_[id]); };
  auto gone = [&](uint32_t id) {
    const placement::Node* n = node_of(id);
    return n != nullptr && (n->state == NodeState::kDown || n->state == NodeState::kRemoved);
  };
  for (uint32_t r = 0; r < options_.regions; ++r) {
    std::vector<uint32_t> voters;
    for (uint64_t v = m.voters; v != 0; v &= v - 1) {
      const auto id = static_cast<uint32_t>(std::countr_zero(v));
      if (id < meta_nodes_.size() && node_regions_[meta_nodes_[id]] == r) voters.push_back(id);
    }
    if (voters.size() > 1) {
      // Promoted: the replaced voter leaves, a gone one first (the older one, if it came
      // back meanwhile), never this leader itself.
      std::optional<uint32_t> leaving;
      for (uint32_t id : voters) {
        if (id != meta.id() && (!leaving || (gone(id) && !gone(*leaving)))) leaving = id;
      }
      if (leaving && meta.ChangeMembers(paxos::MemberChange::kRemove, *leaving).ok()) {
        stats_.member_changes++;
        stats_.metadata_voters_replaced++;
      }
      return;
    }
    if (voters.empty() || !gone(voters[0]) || voters[0] == meta.id()) continue;
    // An up learner of the region takes the vote (kBusy until it has caught up).
    for (uint64_t l = m.learners; l != 0; l &= l - 1) {
      const auto id = static_cast<uint32_t>(std::countr_zero(l));
      if (id >= meta_nodes_.size() || node_regions_[meta_nodes_[id]] != r) continue;
      const placement::Node* n = node_of(id);
      if (n == nullptr || n->state != NodeState::kUp) continue;
      if (meta.ChangeMembers(paxos::MemberChange::kPromote, id).ok()) stats_.member_changes++;
      return;
    }
  }
}

Status Engine::CheckNodeRemoval(const Request& r) const {
  if (r.op != Op::kNodeState || r.value != "removed") return Status::Ok();
  const auto node = ParseNodeId(r.key);
  const placement::Node* n = node ? map_.FindNode(*node) : nullptr;
  // What the map refuses anyway it names: no such node, a node that is neither draining nor
  // down, a node that still holds replicas (they move first).
  if (n == nullptr || !placement::TransitionAllowed(n->state, placement::NodeState::kRemoved) || n->load.shards != 0) {
    return Status::Ok();
  }
  const int32_t id = ReplicaIdOf(metadata_group(), *node);
  if (id >= 0 && groups_[metadata_group()].replica->members().IsVoter(static_cast<uint32_t>(id))) {
    return Status(Code::kConflict, "node " + r.key + " still votes in the metadata group; an up node of its "
                                   "region takes its vote once it is down (add one if the region has none)");
  }
  return Status::Ok();
}

Status Engine::CheckRequest(const Request& r) const {
  if (r.op == Op::kStatus || r.op == Op::kPolicyList || r.op == Op::kClusterMap) return Status::Ok();
  const bool keyless = r.op == Op::kPolicySet || r.op == Op::kPolicyRemove || r.op == Op::kPlacement ||
                       r.op == Op::kPolicyCheck || r.op == Op::kShardSnapshot || r.op == Op::kCrdtDump;
  if (r.key.empty() && !keyless) return InvalidArgument("key is empty");
  if (r.key.size() > options_.limits.key_bytes_max) {
    return Status(Code::kKeyTooLarge, "key is " + std::to_string(r.key.size()) + " bytes; the limit is " +
                                          std::to_string(options_.limits.key_bytes_max));
  }
  if (r.value.size() > options_.limits.value_bytes_max || r.expected.size() > options_.limits.value_bytes_max) {
    return Status(Code::kValueTooLarge, "value is larger than the limit of " +
                                            std::to_string(options_.limits.value_bytes_max) + " bytes");
  }
  return Status::Ok();
}

int64_t Engine::DeadlineUs(const Request& r) const {
  int64_t ms = r.timeout_ms != 0 ? r.timeout_ms : options_.request_timeout_ms;
  return env_.NowUs() + ms * 1000;
}

void Engine::Round(RoundInputs inputs) {
  if (!failed_.ok()) return;  // fail-stop: the host stops the process
  stats_.rounds++;
  // Peer messages first: after a pause they carry what the cluster decided meanwhile.
  for (auto& m : inputs.messages) Step(m.from, m.bytes);
  for (auto& c : inputs.calls) Submit(std::move(c.request), std::move(c.done));
  if (env_.NowUs() >= next_tick_us_) Tick();
  Process();
  FlushOutbox();
}

uint64_t Engine::NextForwardId() {
  return (incarnation_ << 40) | (++forward_count_ & ((uint64_t{1} << 40) - 1));
}

void Engine::ObserveClocks() {
  const int64_t wall = env_.WallUs();
  for (auto& [id, c] : crdts_) c.d->ObserveWallClock(wall);
}

void Engine::Submit(Request request, Callback done) {
  stats_.requests++;
  if (request.op == Op::kPlacement || request.op == Op::kPolicyCheck) {
    // Only nodes send these (to the metadata leader, or to a shard's leader, as peers).
    Response r = Answer(InvalidArgument(std::string(OpName(request.op)) + " requests are sent by nodes, not clients"));
    r.id = request.id;
    return done(std::move(r));
  }
  Dispatch(std::move(request), std::move(done), Via::kClient);
}

void Engine::Dispatch(Request request, Callback done, Via via) {
  const uint64_t id = request.id;
  auto reply = [&](Status s) {
    Response r = Answer(std::move(s));
    r.id = id;
    done(std::move(r));
  };
  if (!failed_.ok()) return reply(failed_);
  // A lost or unconfirmed data directory serves status and the map only (clients' own
  // requests; a forwarded or proxied one comes from a peer that checked our identity).
  if (via == Via::kClient && request.op != Op::kStatus && request.op != Op::kClusterMap) {
    if (Status s = DiskGate(); !s.ok()) return reply(std::move(s));
  }
  if (Status s = CheckRequest(request); !s.ok()) return reply(std::move(s));
  if (proposals_.size() + reads_.size() + forwards_.size() + parked_.size() >= options_.pending_requests_max) {
    return reply(Status(Code::kBusy, "too many requests in flight"));
  }
  switch (request.op) {
    case Op::kStatus: {
      Response r;
      r.id = id;
      r.values = StatusLines();
      return done(std::move(r));
    }
    case Op::kClusterMap: {
      // As applied here: possibly behind the metadata leader's by what is in flight.
      Response r;
      r.id = id;
      r.found = true;
      r.value = map_.Encode();
      r.number = static_cast<int64_t>(map_.version());
      return done(std::move(r));
    }
    case Op::kNodeState: {
      // Operators set what only they can know; the detector owns suspect (and joining is
      // where a node starts).
      const auto node = ParseNodeId(request.key);
      const auto state = ParseNodeState(request.value);
      if (!node) return reply(InvalidArgument("node-state: \"" + request.key + "\" is not a node id"));
      if (!state || *state == placement::NodeState::kJoining || *state == placement::NodeState::kSuspect) {
        return reply(InvalidArgument("node-state: \"" + request.value +
                                     "\" is not a state an operator sets (draining, up, down, removed)"));
      }
      return SubmitStrong(metadata_group(), std::move(request), std::move(done), via);
    }
    case Op::kNodeAdd: {
      auto add = ParseNodeAdd(request);
      if (!add.ok()) return reply(add.status());
      return SubmitStrong(metadata_group(), std::move(request), std::move(done), via);
    }
    case Op::kPlacement:
    case Op::kPolicySet:
    case Op::kPolicyRemove:
    case Op::kPolicyList:
      return SubmitStrong(metadata_group(), std::move(request), std::move(done), via);
    case Op::kPolicyCheck: {
      if (request.delta < 0 || request.delta >= static_cast<int64_t>(options_.shards)) {
        return reply(InvalidArgument("policy-check: shard " + std::to_string(request.delta) + " out of range"));
      }
      const auto shard = static_cast<uint32_t>(request.delta);
      return SubmitStrong(shard, std::move(request), std::move(done), via);
    }
    case Op::kShardSnapshot: {
      // Served like a strong read of the shard: at its leader, after a read index, so the
      // snapshot holds every write acknowledged before it was taken.
      if (request.delta < 0 || request.delta >= static_cast<int64_t>(options_.shards)) {
        return reply(InvalidArgument("shard-snapshot: shard " + std::to_string(request.delta) +
                                     " out of range (the cluster has shards 0.." +
                                     std::to_string(options_.shards - 1) + ")"));
      }
      int64_t offset = 0;
      if (!ParseInt(request.value, &offset) || offset < 0) {
        return reply(InvalidArgument("shard-snapshot: offset \"" + request.value + "\" is not a decimal byte offset"));
      }
      if (request.key.empty() && offset != 0) {
        return reply(InvalidArgument("shard-snapshot: a new snapshot is read from offset 0, not " + request.value));
      }
      const auto shard = static_cast<uint32_t>(request.delta);
      return SubmitStrong(shard, std::move(request), std::move(done), via);
    }
    case Op::kCrdtDump: {
      if (request.delta < 0 || request.delta >= static_cast<int64_t>(options_.shards)) {
        return reply(InvalidArgument("crdt-dump: shard " + std::to_string(request.delta) + " out of range (the cluster has shards 0.." +
                                     std::to_string(options_.shards - 1) + ")"));
      }
      const auto shard = static_cast<uint32_t>(request.delta);
      CrdtReplica* c = ServingCrdt(shard);
      if (c == nullptr || c->d->joining()) {
        return ProxyToHolder(shard, std::move(request), std::move(done), via, "the eventual keys of shard " + std::to_string(shard));
      }
      return ServeCrdtDump(*c->d, request, std::move(done));
    }
    default:
      break;
  }
  const Mode mode = map_.policy().Lookup(request.key);
  // A proxied request carries the mode its proxy routed it by (Request::mode): served in
  // another, a lagging or a newer policy would put the data where the key's other
  // operations do not look. Refused before any effect; the client retries.
  if (via == Via::kProxy && request.mode != mode) {
    return reply(Status(Code::kUnavailable, "the policy for this key is changing (routed as " +
                                                std::string(ModeName(request.mode)) + ", here " +
                                                std::string(ModeName(mode)) + "); retry"));
  }
  if (!OpFitsMode(request.op, mode)) {
    return reply(Status(Code::kWrongMode, std::string(OpName(request.op)) + " does not fit key mode " +
                                              std::string(ModeName(mode)) + " (policy prefix \"" +
                                              map_.policy().MatchingPrefix(request.key) + "\")"));
  }
  // The policy may have changed since the key got its data (a change is checked against
  // the data the metadata leader holds, which can miss data still travelling elsewhere):
  // data is never reinterpreted or hidden under another mode, it is refused.
  if (const std::optional<Mode> held = ModeOfData(request.key, mode); held && *held != mode) {
    return reply(Status(Code::kWrongMode, "key holds " + std::string(ModeName(*held)) + " data, but the policy now gives it mode " +
                                              std::string(ModeName(mode)) + " (policy prefix \"" +
                                              map_.policy().MatchingPrefix(request.key) + "\"); its data is not reinterpreted"));
  }
  if (mode == Mode::kStrong) {
    // The command travels in one Paxos message: refuse what cannot, before it is proposed.
    const size_t command_bytes = request.key.size() + request.value.size() + request.expected.size() + kCommandOverheadBytes;
    if (command_bytes > command_bytes_max_) {
      return reply(Status(Code::kValueTooLarge, "a strong operation of " + std::to_string(command_bytes) +
                                                    " bytes exceeds the " + std::to_string(command_bytes_max_) +
                                                    " bytes one consensus round carries"));
    }
    const uint32_t shard = ShardOf(request.key);  // before `request` is moved from
    return SubmitStrong(shard, std::move(request), std::move(done), via);
  }
  // A forward goes to a shard leader for a strong key: the forwarder routed by an older or
  // newer policy than ours. Refused before any effect.
  if (via == Via::kForward) return reply(Status(Code::kUnavailable, "the policy for this key is changing; retry"));
  const uint32_t shard = ShardOf(request.key);
  CrdtReplica* c = ServingCrdt(shard);
  if (c == nullptr || c->d->joining()) {
    request.mode = mode;  // what the holder checks its own routing against
    return ProxyToHolder(shard, std::move(request), std::move(done), via, "the eventual keys of shard " + std::to_string(shard));
  }
  SubmitEventual(*c->d, mode, request, std::move(done));
}

void Engine::ProxyToHolder(uint32_t shard, Request request, Callback done, Via via, const std::string& what) {
  auto reply = [&](Status s) {
    Response r = Answer(std::move(s));
    r.id = request.id;
    done(std::move(r));
  };
  // A proxied request reached a node that does not serve the shard (its map differs from
  // the proxy's, or its replica still joins): the proxy tries the next region's holder.
  if (via != Via::kClient) {
    return reply(Status(Code::kUnavailable, "node " + std::to_string(options_.self) + " does not serve " + what));
  }
  const int32_t holder = ProxyTarget(shard, 0);
  if (holder < 0 || static_cast<uint32_t>(holder) == options_.self) {
    return reply(Status(Code::kUnavailable, "no node serving " + what + " is up"));
  }
  stats_.proxied++;
  done = [this, shard, done = std::move(done)](Response r) {
    r.map_version = map_.version();
    r.redirect_node = HolderIn(shard, RegionOf(options_.self));
    done(std::move(r));
  };
  const bool eventual_write = map_.policy().Lookup(request.key) != Mode::kStrong && request.op != Op::kGet &&
                              request.op != Op::kMvGet && request.op != Op::kSetMembers &&
                              request.op != Op::kSetContains && request.op != Op::kCrdtDump;
  StartForward(/*proxy=*/true, shard, static_cast<uint32_t>(holder), std::move(request), std::move(done),
               /*resendable=*/!eventual_write);
}

std::optional<Mode> Engine::ModeOfData(std::string_view key, Mode routed) const {
  if (const crdt::CrdtValue* v = EventualValue(key); v != nullptr && !v->IsEmpty()) {
    switch (v->type()) {
      case crdt::CrdtType::kLww: return Mode::kLww;
      case crdt::CrdtType::kMvReg: return Mode::kMvReg;
      case crdt::CrdtType::kCounter: return Mode::kCounter;
      case crdt::CrdtType::kSet: return Mode::kSet;
    }
  }
  // Strong data is looked up only for keys routed to a CRDT (a strong key's own data is its
  // shard's business): one storage read per eventual operation.
  if (routed != Mode::kStrong && env_.Store().Get(kStrongTable, StrongKey(ShardOf(key), key)).ok()) {
    return Mode::kStrong;
  }
  return std::nullopt;
}

StatusOr<Policy> Engine::PolicyAfter(const Request& r) const {
  Policy after = map_.policy();
  if (r.op == Op::kPolicyRemove) {
    GEOKV_RETURN_IF_ERROR(after.Remove(r.key));
  } else {
    GEOKV_RETURN_IF_ERROR(after.Set(r.key, r.mode, options_.limits.key_bytes_max));
  }
  return after;
}

Status Engine::CheckShardForPolicyChange(uint32_t group, const Request& r) const {
  // The rules before and after come with the check (the metadata leader's, which decide the
  // change), not from this node's copy of the metadata group: it may lag by a commit.
  crdt::Decoder dec(r.context);
  std::string_view before_bytes, after_bytes;
  if (!dec.GetBytes(r.context.size(), &before_bytes, "rules before").ok() ||
      !dec.GetBytes(r.context.size(), &after_bytes, "rules after").ok()) {
    return InvalidArgument("malformed policy-check");
  }
  auto before = Policy::Decode(before_bytes);
  auto after = Policy::Decode(after_bytes);
  if (!before.ok() || !after.ok()) return InvalidArgument("malformed policy-check");
  // Every row under the prefix, page by page: a key deep in the prefix counts as much as
  // the first.
  const std::string prefix = StrongKey(group, r.key);
  std::string after_row;
  for (;;) {
    auto rows = env_.Store().Scan(kStrongTable, prefix, after_row, 1024);
    if (!rows.ok()) return rows.status();
    for (const auto& e : *rows) {
      std::string key = e.key.substr(4);
      if (before->Lookup(key) != after->Lookup(key)) {
        return InvalidArgument("prefix \"" + r.key + "\" holds data in mode strong (key \"" + key +
                               "\"); its mode cannot change");
      }
    }
    if (rows->size() < 1024) break;
    after_row = rows->back().key;
  }
  // And the shard's eventual keys under the prefix, as this replica holds them.
  if (const crdt::Disseminator* d = EventualReplica(group)) {
    for (auto it = d->states().lower_bound(r.key); it != d->states().end(); ++it) {
      if (it->first.compare(0, r.key.size(), r.key) != 0) break;
      if (!it->second.IsEmpty() && before->Lookup(it->first) != after->Lookup(it->first)) {
        return InvalidArgument("prefix \"" + r.key + "\" holds data in mode " + std::string(ModeName(before->Lookup(it->first))) +
                               " (key \"" + it->first + "\"); its mode cannot change");
      }
    }
  }
  return Status::Ok();
}

void Engine::CheckShardsForPolicyChange(Request request, Callback done, Via via) {
  // Each shard's leader checks its rows after a read index: every write committed before
  // the check began is seen, wherever the shard's replicas are. A shard that cannot be
  // checked in time refuses the change (nothing was proposed).
  struct Check {
    Request request;
    Callback done;
    Via via;
    uint32_t outstanding = 0;
    Status conflict;     // a key whose mode would change
    Status unchecked;    // a shard not checked
  };
  auto refuse = [&](Status s) {
    Response out = Answer(std::move(s));
    out.id = request.id;
    done(std::move(out));
  };
  auto after = PolicyAfter(request);
  if (!after.ok()) return refuse(after.status());
  // Only the rules deciding keys under the prefix travel.
  crdt::Encoder rules;
  rules.PutBytes(map_.policy().Under(request.key).Encode());
  rules.PutBytes(after->Under(request.key).Encode());
  const std::string rules_bytes = rules.Release();
  if (rules_bytes.size() > kMessageBytesMax / 2) {
    return refuse(InvalidArgument("the policy rules under prefix \"" + request.key +
                                  "\" are too many to check a change against"));
  }
  auto check = std::make_shared<Check>(Check{std::move(request), std::move(done), via, options_.shards, {}, {}});
  stats_.policy_checks++;
  for (uint32_t g = 0; g < options_.shards; ++g) {
    Request probe;
    probe.op = Op::kPolicyCheck;
    probe.key = check->request.key;
    probe.context = rules_bytes;
    probe.delta = g;
    probe.timeout_ms = check->request.timeout_ms;
    SubmitStrong(g, std::move(probe), [this, check, g](Response r) {
      if (r.status.code() == Code::kInvalidArgument) {
        if (check->conflict.ok()) check->conflict = r.status;
      } else if (!r.status.ok() && check->unchecked.ok()) {
        check->unchecked = Status(Code::kUnavailable, "the data of shard " + std::to_string(g) +
                                                          " could not be checked against the policy change (" +
                                                          r.status.ToString() + "); nothing was changed, retry");
      }
      if (--check->outstanding != 0) return;
      if (!check->conflict.ok() || !check->unchecked.ok()) {
        Response out = Answer(!check->conflict.ok() ? check->conflict : check->unchecked);
        out.id = check->request.id;
        return check->done(std::move(out));
      }
      policy_checked_ = true;
      SubmitStrong(metadata_group(), std::move(check->request), std::move(check->done), check->via);
      policy_checked_ = false;
    }, Via::kClient);
  }
}

void Engine::SubmitStrong(uint32_t group, Request request, Callback done, Via via) {
  const uint64_t id = request.id;
  auto reply = [&](Status s) {
    Response r = Answer(std::move(s));
    r.id = id;
    done(std::move(r));
  };
  const std::string name = group == metadata_group() ? "the metadata group" : "shard " + std::to_string(group);
  if (!Hosts(group)) {
    // A proxy's map placed the shard here and ours does not (or no longer): it retries.
    if (via != Via::kClient) return reply(Status(Code::kUnavailable, "node " + std::to_string(options_.self) +
                                                                          " holds no replica of " + name));
    const int32_t holder = ProxyTarget(group, 0);
    if (holder < 0) return reply(Status(Code::kUnavailable, "no node holding a replica of " + name + " is up"));
    stats_.proxied++;
    if (group != metadata_group()) {
      request.mode = Mode::kStrong;  // routed as strong (the holder checks it, Dispatch)
      // Served all the same, with a redirect hint: a client routing by the cluster map
      // (docs/placement.md, "Routing") learns that its map sent it to the wrong node.
      done = [this, group, done = std::move(done)](Response r) {
        r.map_version = map_.version();
        r.redirect_node = HolderIn(group, RegionOf(options_.self));
        done(std::move(r));
      };
    }
    return StartForward(/*proxy=*/true, group, static_cast<uint32_t>(holder), std::move(request), std::move(done));
  }
  paxos::Replica& replica = *groups_[group].replica;
  if (!replica.IsLeader()) {
    const int32_t leader = LeaderOf(group);
    if (via == Via::kForward || leader < 0 || static_cast<uint32_t>(leader) == options_.self) {
      Status none(Code::kUnavailable, "no leader for " + name + " is reachable from node " + std::to_string(options_.self));
      if (via == Via::kForward) return reply(std::move(none));  // the forwarder waits itself
      return Park(group, std::move(request), std::move(done), via, std::move(none));
    }
    stats_.forwarded++;
    return StartForward(/*proxy=*/false, group, static_cast<uint32_t>(leader), std::move(request), std::move(done));
  }
  // A leader handing over, or not yet ready, refuses with kUnavailable before any effect.
  auto refused = [&](Status s) {
    if (s.code() != Code::kUnavailable || via == Via::kForward) return reply(std::move(s));
    Park(group, std::move(request), std::move(done), via, std::move(s));
  };
  if (IsRead(request.op)) {
    const uint64_t rid = next_id_++;
    Status s = replica.ReadIndex(rid, env_.NowUs());
    if (!s.ok()) return refused(std::move(s));
    const int64_t deadline = DeadlineUs(request);
    reads_[rid] = PendingRead{std::move(request), std::move(done), deadline};
    return;
  }
  if (Status s = CheckNodeRemoval(request); !s.ok()) return reply(std::move(s));
  if ((request.op == Op::kPolicySet || request.op == Op::kPolicyRemove) && !policy_checked_) {
    return CheckShardsForPolicyChange(std::move(request), std::move(done), via);
  }
  // A forwarded write keeps the forwarder's session: Paxos applies a duplicate once.
  const uint64_t client = request.client_id != 0 ? request.client_id : client_id_;
  const uint64_t seq = request.client_id != 0 ? request.seq : next_seq_++;
  Status s = replica.Propose(paxos::Command{client, seq, EncodeCommand(request)});
  if (!s.ok()) return refused(std::move(s));
  Pending& p = proposals_[{client, seq}];
  p.done = std::move(done);
  p.deadline_us = DeadlineUs(request);
  p.request_id = id;
}

Response Engine::UnknownIfRefused(Response r) {
  const Code code = r.status.code();
  if (code == Code::kUnavailable || code == Code::kBusy) {
    r.status = Status(Code::kTimeout, "shard leader refused a forwarded write (" + r.status.message() +
                                          "); a duplicate may still commit, so its outcome is unknown");
  }
  return r;
}

void Engine::Park(uint32_t group, Request request, Callback done, Via via, Status why) {
  const int64_t now = env_.NowUs();
  // An election, or a hand-over, takes a few election timeouts at most; a group that has
  // no leader for longer is refused, within half the request's time, so that the client
  // learns it definitely and tries another node before its own timeout.
  const int64_t bound = park_until_us_ != 0
                            ? park_until_us_
                            : now + std::min((DeadlineUs(request) - now) / 2,
                                             int64_t{kParkElections} * options_.election_ticks * options_.tick_us);
  if (now >= bound) {
    Response r = Answer(std::move(why));
    r.id = request.id;
    return done(std::move(r));
  }
  stats_.parked++;
  parked_.push_back(Parked{group, std::move(request), std::move(done), via, bound, why.message()});
}

bool Engine::LeaderReady(uint32_t group) const {
  if (!Hosts(group)) return true;  // SubmitStrong proxies it
  const paxos::Replica& replica = *groups_[group].replica;
  if (replica.IsLeader()) return !replica.Transferring();
  const int32_t leader = LeaderOf(group);
  return leader >= 0 && static_cast<uint32_t>(leader) != options_.self;
}

void Engine::RetryParked(int64_t now) {
  if (parked_.empty()) return;
  std::vector<Parked> waiting;
  waiting.swap(parked_);
  for (Parked& p : waiting) {
    if (now >= p.until_us) {
      Response r = Answer(Status(Code::kUnavailable, p.why + " (no leader within " +
                                                         std::to_string(kParkElections * options_.election_ticks *
                                                                        options_.tick_us / 1000) +
                                                         " ms; nothing was applied)"));
      r.id = p.request.id;
      p.done(std::move(r));
      continue;
    }
    if (!LeaderReady(p.group)) {
      parked_.push_back(std::move(p));
      continue;
    }
    // Submitted as when it arrived (a leader that is not ready after all parks it again,
    // under the same bound).
    park_until_us_ = p.until_us;
    SubmitStrong(p.group, std::move(p.request), std::move(p.done), p.via);
    park_until_us_ = 0;
  }
}

void Engine::SubmitEventual(crdt::Disseminator& d, Mode mode, const Request& r, Callback done) {
  crdt::Disseminator* crdt = &d;
  // Its HLC stamps this operation: the wall clock as of now (a client's, or a proxied one).
  crdt->ObserveWallClock(env_.WallUs());
  Response out;
  out.id = r.id;
  out.served_by = options_.self;
  const crdt::CrdtValue* v = crdt->Get(r.key);
  switch (r.op) {
    case Op::kPut:
      out.status = crdt->PutLww(r.key, r.value);
      break;
    case Op::kDelete:
      out.status = mode == Mode::kMvReg ? crdt->DeleteMv(r.key, v && v->As<crdt::MvRegister>()
                                                                    ? v->As<crdt::MvRegister>()->ReadContext()
                                                                    : crdt::CausalContext())
                                        : crdt->DeleteLww(r.key);
      break;
    case Op::kAdd:
      out.status = crdt->AddCounter(r.key, r.delta);
      if (out.status.ok()) out.number = crdt->Get(r.key)->As<crdt::PnCounter>()->Value();
      break;
    case Op::kSetAdd:
      out.status = crdt->SetAdd(r.key, r.value);
      break;
    case Op::kSetRemove:
      out.status = crdt->SetRemove(r.key, r.value);
      break;
    case Op::kMvPut:
    case Op::kMvDelete: {
      crdt::CausalContext ctx;
      if (!r.context.empty()) {
        crdt::Decoder dec(r.context);
        Status s = ctx.DecodeFrom(&dec);
        if (s.ok()) s = dec.Finish();
        if (!s.ok()) {
          out.status = InvalidArgument("bad causal context: " + s.message());
          return done(std::move(out));
        }
      }
      out.status = r.op == Op::kMvPut ? crdt->WriteMv(r.key, r.value, ctx) : crdt->DeleteMv(r.key, ctx);
      break;
    }
    case Op::kGet:
    case Op::kMvGet:
    case Op::kSetMembers:
    case Op::kSetContains: {
      // Reads are local and need no durability wait.
      if (v != nullptr) {
        if (const auto* lww = v->As<crdt::LwwRegister>()) {
          if (mode != Mode::kLww) { out.status = Status(Code::kWrongMode, "key holds an lww register"); break; }
          if (auto value = lww->Get()) { out.found = true; out.value = *value; }
        } else if (const auto* mv = v->As<crdt::MvRegister>()) {
          out.values = mv->Values();
          out.found = !out.values.empty();
          if (out.found) out.value = out.values.front();
          crdt::Encoder enc;
          mv->ReadContext().EncodeTo(&enc);
          out.context = enc.Release();
        } else if (const auto* counter = v->As<crdt::PnCounter>()) {
          out.found = true;
          out.number = counter->Value();
          out.value = std::to_string(out.number);
        } else if (const auto* set = v->As<crdt::OrSet>()) {
          if (r.op == Op::kSetContains) {
            out.found = set->Contains(r.value);
          } else {
            out.values = set->Members();
            out.found = true;
          }
        }
      } else if (mode == Mode::kCounter) {
        out.found = true;
        out.value = "0";
      } else if (mode == Mode::kSet && r.op == Op::kSetMembers) {
        out.found = true;
      }
      if (out.status.ok() && !out.found && r.op == Op::kGet) out.status = NotFound("no such key");
      // What this read saw may include updates of this round: answer once they are durable.
      after_persist_.emplace_back(std::move(done), std::move(out));
      return;
    }
    default:
      out.status = Status(Code::kWrongMode, "operation does not fit an eventual-mode key");
  }
  if (!out.status.ok()) return done(std::move(out));
  // Acknowledged once the round that persists the delta has written it.
  after_persist_.emplace_back(std::move(done), std::move(out));
}

// ---- inputs ----------------------------------------------------------------------------

void Engine::SendEnvelope(uint32_t to, uint8_t channel, uint32_t group, std::string_view payload) {
  outbox_[to].push_back(Outgoing{channel, group, std::string(payload)});
  stats_.envelopes_sent++;
}

void Engine::SendPaxos(uint32_t group, uint32_t replica, std::string_view payload) {
  const uint32_t node = NodeOfReplica(group, replica);
  if (node == placement::kNoNode || node == options_.self) return;
  // A move's learner answers its group only once its CRDT replica has joined: until then
  // its leader sees it as behind (it catches up all the same), and does not promote it.
  if (CrdtJoining(group)) {
    stats_.paxos_held_for_join++;
    return;
  }
  SendEnvelope(node, static_cast<uint8_t>(fb::Channel::Paxos), group, payload);
}

std::string Engine::MakeEnvelope(uint8_t channel, uint32_t group, std::string_view payload, uint32_t to,
                                 bool outermost) const {
  flatbuffers::FlatBufferBuilder b(payload.size() + 64);
  auto bytes = b.CreateVector(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
  fb::EnvelopeBuilder e(b);
  e.add_channel(static_cast<fb::Channel>(channel));
  e.add_group(group);
  e.add_payload(bytes);
  if (outermost) {
    e.add_disk(disk_id_);
    if (disk_established_) e.add_disk_established(true);
    if (to < peer_disks_.size() && peer_disks_[to] != 0) {
      e.add_peer_disk(peer_disks_[to]);
    } else if (to < seen_disks_.size() && seen_disks_[to] != 0) {
      e.add_peer_disk_seen(seen_disks_[to]);
    }
  }
  b.Finish(e.Finish());
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

void Engine::FlushOutbox() {
  // Room for a Bundle's own tables, each Blob's header and each envelope around its payload.
  constexpr size_t kBundleOverheadBytes = 64;
  constexpr size_t kBlobOverheadBytes = 16;
  constexpr size_t kInnerEnvelopeBytes = 64;
  for (auto& [to, items] : outbox_) {
    size_t i = 0;
    while (i < items.size()) {
      // As many envelopes as fit in one message; one alone goes in an envelope of its own.
      size_t bytes = kBundleOverheadBytes, j = i;
      while (j < items.size() &&
             bytes + items[j].payload.size() + kInnerEnvelopeBytes + kBlobOverheadBytes <= kMessageBytesMax) {
        bytes += items[j].payload.size() + kInnerEnvelopeBytes + kBlobOverheadBytes;
        ++j;
      }
      if (j <= i + 1) {
        env_.Send(to, MakeEnvelope(items[i].channel, items[i].group, items[i].payload, to, /*outermost=*/true));
        stats_.messages_sent++;
        i = std::max(j, i + 1);
        continue;
      }
      flatbuffers::FlatBufferBuilder b(bytes);
      std::vector<flatbuffers::Offset<fb::Blob>> blobs;
      blobs.reserve(j - i);
      for (size_t k = i; k < j; ++k) {
        const std::string inner = MakeEnvelope(items[k].channel, items[k].group, items[k].payload, to, false);
        blobs.push_back(fb::CreateBlob(b, b.CreateVector(reinterpret_cast<const uint8_t*>(inner.data()), inner.size())));
      }
      auto bundle = fb::CreateBundle(b, b.CreateVector(blobs));
      b.Finish(bundle);
      const std::string_view payload(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
      env_.Send(to, MakeEnvelope(static_cast<uint8_t>(fb::Channel::Bundle), 0, payload, to, /*outermost=*/true));
      stats_.messages_sent++;
      i = j;
    }
  }
  outbox_.clear();
}

// ---- data directory identity -----------------------------------------------------------

Status Engine::LoadDiskIds(bool fresh) {
  storage::Storage& store = env_.Store();
  peer_disks_.assign(nodes_, 0);
  seen_disks_.assign(nodes_, 0);
  foreign_disks_.assign(nodes_, 0);
  echoed_.assign(nodes_, false);
  echoed_[options_.self] = true;
  // A node added to a running cluster waits for the metadata group's voters only: every
  // node joins through them (they record a joined node's id from its first established
  // message, so they refuse an earlier life's id), while other nodes may be down for good
  // (the one it replaces) or joining themselves.
  // Nor does it wait for a node its configuration says is gone (a metadata voter it
  // replaces, say).
  if (!options_.members.empty() && options_.members[options_.self].added) {
    for (uint32_t n = 0; n < nodes_; ++n) {
      const bool voter =
          std::find(meta_nodes_.begin(), meta_nodes_.begin() + options_.regions, n) != meta_nodes_.begin() + options_.regions;
      if (!voter || (n < options_.members.size() && options_.members[n].removed)) echoed_[n] = true;
    }
  }
  auto id = store.Get(kMetaTable, kDiskIdKey);
  if (id.ok()) {
    disk_id_ = DecodeU64(*id);
    if (disk_id_ == 0) return Corruption("the stored disk id is 0");
    auto established = store.Get(kMetaTable, kDiskEstablishedKey);
    if (!established.ok() && !established.status().IsNotFound()) return established.status();
    disk_established_ = established.ok() || nodes_ == 1;
  } else if (id.status().IsNotFound()) {
    // A new directory waits for every peer; one of an earlier version (which no peer knows
    // by an id yet) is established at once.
    while (disk_id_ == 0) disk_id_ = env_.Random();
    disk_established_ = !fresh || nodes_ == 1 || options_.new_cluster;
    storage::WriteBatch b;
    b.Put(kMetaTable, kDiskIdKey, EncodeU64(disk_id_));
    if (disk_established_) b.Put(kMetaTable, kDiskEstablishedKey, "1");
    GEOKV_RETURN_IF_ERROR(store.Write(b, storage::Durability::kSync));
  } else {
    return id.status();
  }
  for (uint32_t n = 0; n < nodes_; ++n) {
    if (n == options_.self) continue;
    auto known = store.Get(kMetaTable, std::string(kPeerDiskPrefix) + std::to_string(n));
    if (known.ok()) {
      peer_disks_[n] = DecodeU64(*known);
    } else if (!known.status().IsNotFound()) {
      return known.status();
    }
  }
  return Status::Ok();
}

bool Engine::CheckDisks(uint32_t from, uint64_t disk, bool established, uint64_t peer_disk, uint64_t peer_disk_seen) {
  if (disk == 0 || options_.unsafe_trust_any_disk) return true;  // 0: a node of an earlier version
  // 1. What the peer knows of us. A record of another id: this node is not the one the peer
  // knows. An echo of our id (recorded, or seen without a record of another) confirms it.
  if (peer_disk != 0 && peer_disk != disk_id_) {
    if (lost_disk_known_ == 0) {
      lost_disk_known_ = peer_disk;
      lost_disk_peer_ = from;
    }
  } else if (!disk_established_ && (peer_disk == disk_id_ || peer_disk_seen == disk_id_)) {
    echoed_[from] = true;
    if (std::all_of(echoed_.begin(), echoed_.end(), [](bool e) { return e; })) {
      storage::WriteBatch b;
      b.Put(kMetaTable, kDiskEstablishedKey, "1");
      if (Status s = env_.Store().Write(b, storage::Durability::kSync); !s.ok()) {
        Fail(s);
        return false;
      }
      disk_established_ = true;
    }
  }
  // 2. The sender. Its payload counts only once we are both part of the cluster.
  uint64_t& record = peer_disks_[from];
  if (record == 0) {
    seen_disks_[from] = disk;
    if (!established) return false;  // its identity is still being checked
    // Its first established message: the id is recorded for good.
    storage::WriteBatch b;
    b.Put(kMetaTable, std::string(kPeerDiskPrefix) + std::to_string(from), EncodeU64(disk));
    if (Status s = env_.Store().Write(b, storage::Durability::kSync); !s.ok()) {
      Fail(s);
      return false;
    }
    record = disk;
    seen_disks_[from] = 0;
  } else if (record != disk) {
    stats_.foreign_disk_messages++;
    foreign_disks_[from] = disk;
    return false;
  }
  return disk_established_ && lost_disk_known_ == 0;
}

void Engine::SendHellos(int64_t now) {
  if (now < next_hello_us_) return;
  next_hello_us_ = now + kHelloIntervalUs;
  for (uint32_t n = 0; n < nodes_; ++n) {
    if (n == options_.self) continue;
    // A new directory asks each peer that has not echoed it; a peer answers a node whose
    // directory is being checked (it may be waiting for our echo).
    const bool ask = !disk_established_ && !echoed_[n];
    const bool answer = seen_disks_[n] != 0 && peer_disks_[n] == 0;
    if (ask || answer) SendEnvelope(n, static_cast<uint8_t>(fb::Channel::Hello), 0, {});
  }
}

Status Engine::DiskGate() const {
  if (options_.unsafe_trust_any_disk) return Status::Ok();
  if (lost_disk_known_ != 0) {
    return Status(Code::kUnavailable,
                  "this node's data directory is not the one its peers know (node " + std::to_string(lost_disk_peer_) +
                      " knows node " + std::to_string(options_.self) + " by disk " + Hex(lost_disk_known_) +
                      ", this directory is disk " + Hex(disk_id_) +
                      "): it was lost or replaced, and a node cannot rejoin on an empty disk; its peers ignore it "
                      "(docs/operations.md, \"A lost data directory\")");
  }
  if (!disk_established_) {
    return Status(Code::kUnavailable,
                  "this node's data directory is new and not every other node has confirmed it yet (every node "
                  "must be up when a cluster is created); retry in a moment");
  }
  return Status::Ok();
}

void Engine::StartForward(bool proxy, uint32_t group, uint32_t to, Request request, Callback done, bool resendable) {
  // The target answers with a ForwardReply carrying our forward id.
  const uint64_t fid = NextForwardId();
  Request copy = request;
  copy.id = fid;
  if (!IsRead(copy.op) && copy.client_id == 0) {
    // A Paxos session of its own: sessions keep only the highest sequence number per
    // client, so forwards sharing one session could be overtaken (reordered by the
    // network) and then dropped as duplicates. A duplicated copy of this forward still
    // shares its session and is applied once, and so does the holder's forward of a proxied
    // request, which keeps it.
    copy.client_id = env_.Random() | 1;
    copy.seq = 1;
  }
  Pending& p = forwards_[fid];
  p.done = std::move(done);
  p.deadline_us = DeadlineUs(request);
  p.request_id = request.id;
  p.write = !IsRead(request.op);
  p.proxy = proxy;
  p.resendable = resendable;
  p.group = group;
  p.sent_to = to;
  p.sent_us = env_.NowUs();
  p.attempts = 1;
  SendEnvelope(to, static_cast<uint8_t>(proxy ? fb::Channel::Proxy : fb::Channel::Forward), group, EncodeRequest(copy));
  p.forwarded = std::move(copy);
}

int32_t Engine::ProxyTarget(uint32_t group, uint32_t skip) const {
  // Regions in order from this one (the nearest holder first), `skip` of them passed over;
  // the first holder the map says serves, else the first holder at all (the map may lag).
  const uint32_t own = RegionOf(options_.self);
  std::optional<uint32_t> fallback;
  for (uint32_t i = 0; i < options_.regions; ++i) {
    const uint32_t region = (own + skip + i) % options_.regions;
    const uint32_t holder = HolderIn(group, region);
    const placement::Node* node = map_.FindNode(holder);
    if (node == nullptr || holder == options_.self) continue;
    if (node->state == placement::NodeState::kUp || node->state == placement::NodeState::kDraining) {
      return static_cast<int32_t>(holder);
    }
    if (!fallback) fallback = holder;
  }
  return fallback ? static_cast<int32_t>(*fallback) : -1;
}

int32_t Engine::ForwardTarget(const Pending& p) const {
  if (p.proxy) return ProxyTarget(p.group, p.skip);
  return IsLeader(p.group) ? -1 : LeaderOf(p.group);
}

bool Engine::Reforward(Pending& p, bool same_target_ok) {
  const int32_t target = ForwardTarget(p);
  if (p.attempts >= kForwardAttemptsMax || env_.NowUs() >= p.deadline_us) return false;
  if (target < 0 || static_cast<uint32_t>(target) == options_.self ||
      (!same_target_ok && static_cast<uint32_t>(target) == p.sent_to)) {
    return false;
  }
  // Same forward id and Paxos session: if an earlier copy was proposed after all, the
  // session makes this one a duplicate instead of a second application.
  p.attempts++;
  p.sent_to = static_cast<uint32_t>(target);
  p.sent_us = env_.NowUs();
  stats_.reforwards++;
  SendEnvelope(p.sent_to, static_cast<uint8_t>(p.proxy ? fb::Channel::Proxy : fb::Channel::Forward), p.group,
               EncodeRequest(p.forwarded));
  return true;
}

void Engine::ReforwardStale() {
  // A leader that answers neither within an election timeout nor at all has probably died
  // or been paused: its followers elect another, and the forward goes there. (A proxied
  // request goes to its region's holder again, which chases the leader itself.)
  const int64_t now = env_.NowUs();
  const int64_t patience_us = static_cast<int64_t>(options_.election_ticks) * options_.tick_us;
  std::vector<uint64_t> led_here;
  for (auto& [fid, p] : forwards_) {
    if (!p.resendable) continue;  // it waits for its answer or its deadline
    // This node leads the group now: the forward is served here, under its own session.
    if (!p.proxy && Hosts(p.group) && IsLeader(p.group)) {
      led_here.push_back(fid);
      continue;
    }
    const bool silent = now - p.sent_us >= patience_us;
    // A proxied request's holder that does not answer (dead, paused, cut off, before the
    // map says so): the next region's holder takes it, under the same Paxos session.
    if (p.proxy && silent) p.skip++;
    const int32_t leader = ForwardTarget(p);
    const bool moved = leader >= 0 && static_cast<uint32_t>(leader) != p.sent_to;
    // Forwards are not resent by any protocol below: a lost one is re-sent here too.
    if (moved || silent) (void)Reforward(p, /*same_target_ok=*/true);
  }
  for (const uint64_t fid : led_here) {
    auto it = forwards_.find(fid);
    Pending p = std::move(it->second);
    forwards_.erase(it);
    stats_.reforwards++;
    Request request = std::move(p.forwarded);
    request.timeout_ms = std::max<int64_t>(1, (p.deadline_us - now) / 1000);  // what is left of its time
    // The copy sent to the old leader may have been proposed: a write refused here (this
    // node lost the leadership again) has an unknown outcome, as a refused forward has.
    SubmitStrong(p.group, std::move(request), [done = std::move(p.done), id = p.request_id, write = p.write](Response r) {
      r.id = id;
      done(write ? UnknownIfRefused(std::move(r)) : std::move(r));
    }, Via::kForward);
  }
}

void Engine::Step(uint32_t from, std::string_view bytes) { StepEnvelope(from, bytes, /*in_bundle=*/false); }

void Engine::StepEnvelope(uint32_t from, std::string_view bytes, bool in_bundle) {
  if (from >= nodes_ || bytes.size() > kMessageBytesMax) {
    stats_.bad_messages++;
    return;
  }
  const wire::AlignedBytes envelope(bytes);
  flatbuffers::Verifier verifier(envelope.data(), envelope.size());
  if (!verifier.VerifyBuffer<fb::Envelope>(nullptr)) {
    stats_.bad_messages++;
    return;
  }
  const auto* env = flatbuffers::GetRoot<fb::Envelope>(envelope.data());
  if (!in_bundle && !CheckDisks(from, env->disk(), env->disk_established(), env->peer_disk(), env->peer_disk_seen())) {
    return;
  }
  std::string_view nested;
  if (env->payload() != nullptr) {
    nested = std::string_view(reinterpret_cast<const char*>(env->payload()->data()), env->payload()->size());
  }
  // The payload is a buffer of its own, nested at any offset: align it before reading it.
  const wire::AlignedBytes aligned_payload(nested);
  const std::string_view payload = aligned_payload.view();
  switch (env->channel()) {
    case fb::Channel::Paxos:
      if (env->group() >= groups_.size()) { stats_.bad_messages++; return; }
      // For a replica this node does not hold: the sender's map is older or newer than ours.
      if (!Hosts(env->group())) { stats_.misrouted_messages++; return; }
      (void)groups_[env->group()].replica->Step(payload, env_.NowUs());  // bad ones are counted by the replica
      break;
    case fb::Channel::Node:
      ReceiveHeartbeat(from, payload);
      break;
    case fb::Channel::Hello:
      break;  // its identities were all it carried (CheckDisks)
    case fb::Channel::Crdt:
      if (env->group() >= options_.shards) { stats_.bad_messages++; return; }
      StepCrdt(from, env->group(), payload);
      break;
    case fb::Channel::Forward:
    case fb::Channel::Proxy: {
      auto req = DecodeRequest(payload);
      if (!req.ok()) { stats_.bad_messages++; return; }
      const uint64_t fid = req->id;
      if (env->channel() == fb::Channel::Proxy &&
          !proxied_seen_.emplace(std::make_pair(from, fid), DeadlineUs(*req) + options_.request_timeout_ms * 1000).second) {
        stats_.duplicate_proxies++;
        return;
      }
      Dispatch(std::move(req).value(), [this, from, fid](Response r) {
        r.id = fid;
        SendEnvelope(from, static_cast<uint8_t>(fb::Channel::ForwardReply), 0, EncodeResponse(r));
      }, env->channel() == fb::Channel::Proxy ? Via::kProxy : Via::kForward);
      break;
    }
    case fb::Channel::ForwardReply: {
      auto resp = DecodeResponse(payload);
      if (!resp.ok()) { stats_.bad_messages++; return; }
      auto it = forwards_.find(resp->id);
      if (it == forwards_.end()) return;  // answered already (timed out), or for an earlier life
      const Code refused = resp->status.code();
      if (refused == Code::kUnavailable || refused == Code::kBusy) {
        Pending& p = it->second;
        // A refusal by a node we no longer wait for says nothing of the copy in flight.
        if (from != p.sent_to) return;
        // A holder that refused (it reaches no leader, or no longer holds the shard): the
        // next region's may do better.
        if (p.proxy) p.skip++;
        if (Reforward(p, /*same_target_ok=*/false)) break;
        // A leader that is not one any more (a hand-over, a new election) before this node
        // has heard of its successor: the forward waits for the successor (ReforwardStale
        // sends it there, or serves it here if this node is the one), within its deadline.
        if (refused == Code::kUnavailable && p.attempts < kForwardAttemptsMax && env_.NowUs() < p.deadline_us) {
          p.refusal = resp->status.message();
          break;
        }
      }
      Pending p = std::move(it->second);
      forwards_.erase(it);
      resp->id = p.request_id;
      // The network may have delivered the forward twice: one copy refused does not mean
      // the other was not proposed. A refused forwarded write has an unknown outcome.
      p.done(p.write ? UnknownIfRefused(std::move(resp).value()) : std::move(resp).value());
      break;
    }
    case fb::Channel::Bundle: {
      flatbuffers::Verifier bv(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
      if (in_bundle || !bv.VerifyBuffer<fb::Bundle>(nullptr)) { stats_.bad_messages++; return; }
      const auto* bundle = flatbuffers::GetRoot<fb::Bundle>(payload.data());
      if (bundle->envelopes() == nullptr) return;
      for (const fb::Blob* blob : *bundle->envelopes()) {
        if (blob->bytes() == nullptr) { stats_.bad_messages++; continue; }
        StepEnvelope(from, std::string_view(reinterpret_cast<const char*>(blob->bytes()->data()), blob->bytes()->size()),
                     /*in_bundle=*/true);
      }
      break;
    }
    default:
      stats_.bad_messages++;
      return;
  }
}

int64_t Engine::NextTimerUs() const {
  bool busy = !proposals_.empty() || !reads_.empty() || !forwards_.empty() || !parked_.empty();
  for (const auto& [id, c] : crdts_) busy = busy || c.d->HasOpenBatch();
  const auto beat = static_cast<uint64_t>(options_.heartbeat_ticks);
  if (busy || beat <= 1) return next_tick_us_;
  const uint64_t aligned = (ticks_ + beat) / beat * beat;  // the next multiple after ticks_
  return next_tick_us_ + static_cast<int64_t>(aligned - ticks_ - 1) * options_.tick_us;
}

void Engine::Tick() {
  const int64_t now = env_.NowUs();
  // The ticks due since the last one (several when the node was idle, see NextTimerUs;
  // at most a heartbeat interval's worth, so a leader beats at most once per call).
  const int64_t due = 1 + std::max<int64_t>(0, now - next_tick_us_) / options_.tick_us;
  const int n = static_cast<int>(std::min<int64_t>(due, std::max(1, options_.heartbeat_ticks)));
  next_tick_us_ = now + options_.tick_us;
  for (int i = 0; i < n; ++i) {
    for (auto& g : groups_) {
      if (g.replica) g.replica->Tick(now);
    }
  }
  ticks_ += static_cast<uint64_t>(n);
  SendHellos(now);
  ObserveClocks();
  for (auto& [id, c] : crdts_) c.d->Tick(now);
  TickCrdtReleases(now);
  std::erase_if(proxied_seen_, [&](const auto& e) { return e.second <= now; });
  // Expire requests past their deadline. A write's outcome is then unknown.
  auto expire = [&](auto& pending, auto&& status_for) {
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->second.deadline_us > now) { ++it; continue; }
      auto done = std::move(it->second.done);
      Response r = Answer(status_for(it->second));
      if constexpr (std::is_same_v<std::decay_t<decltype(it->second)>, Pending>) r.id = it->second.request_id;
      else r.id = it->second.request.id;
      it = pending.erase(it);
      stats_.timeouts++;
      done(std::move(r));
    }
  };
  expire(proposals_, [](const Pending&) {
    return Status(Code::kTimeout, "the write was not committed in time; its outcome is unknown");
  });
  expire(reads_, [](const PendingRead&) { return Status(Code::kUnavailable, "no quorum confirmed the read in time"); });
  // The leader may have committed a forwarded write: its outcome is unknown too.
  expire(forwards_, [](const Pending& p) {
    return Status(Code::kTimeout, "the shard leader did not answer in time" +
                                      (p.refusal.empty() ? std::string() : " (last refusal: " + p.refusal + ")") +
                                      "; a write's outcome is unknown");
  });
  ReforwardStale();
  RetryParked(now);
  TickHealth(now);
  TickDriver(now);
  TickLeadership(now);
  TickMoves(now);
  TickLoad(now);
}

void Engine::TickMoves(int64_t now) {
  using placement::NodeState;
  for (uint32_t g = 0; g < options_.shards; ++g) {
    if (!IsLeader(g)) continue;
    paxos::Replica& replica = *groups_[g].replica;
    const placement::ShardPlacement& s = map_.shards()[g];
    const paxos::Membership& m = replica.members();
    const std::optional<placement::ReplicaChange>& change = s.change;
    // Replica ids are handed out in order (next_replica_id): a member of an id this map has
    // not handed out yet comes from a move of a newer map (this leader's map lags, e.g. it
    // was just elected): it is not a stray, and removing it would undo that move.
    auto placed = [&](uint32_t id) {
      return std::find(s.replica_ids.begin(), s.replica_ids.end(), id) != s.replica_ids.end() ||
             (change && change->replica_id == id) || id >= s.next_replica_id;
    };
    // A leader that must leave hands over to a replica that answers, once per election
    // timeout (a transfer blocks proposals until it completes or times out).
    auto hand_over = [&](uint32_t to) {
      if (now < handoff_after_us_[g] || !replica.PeerHealthy(to)) return;
      if (replica.TransferLeader(to).ok()) stats_.leader_handoffs++;
      handoff_after_us_[g] = now + static_cast<int64_t>(options_.election_ticks) * options_.tick_us;
    };
    auto propose = [&](const placement::Command& command) {  // to the metadata group, once a second
      if (now - move_proposed_us_[g] < kMoveRetryUs) return;
      move_proposed_us_[g] = now;
      Dispatch(PlacementRequest(command), [](Response) {}, Via::kClient);
    };
    // A member the map does not place (the learner of an aborted move; a voter a move
    // promoted just before its abort committed) leaves the group; the leader hands its
    // own leadership away first.
    // A replica the map places that is not a voter, with no move in flight: a move's
    // removal of it committed in the group, and then the move was aborted in the map (its
    // target stopped serving while the removal was on its way). It comes back, as a learner
    // and then a voter, before any stray leaves: removing the aborted move's voter first
    // would leave its region without a replica.
    if (!change && !options_.unsafe_no_member_repair) {
      std::optional<uint32_t> missing;
      for (uint32_t id : s.replica_ids) {
        if (!m.IsVoter(id)) {
          missing = id;
          break;
        }
      }
      if (missing) {
        const auto step = m.IsLearner(*missing) ? paxos::MemberChange::kPromote : paxos::MemberChange::kAddLearner;
        if (replica.ChangeMembers(step, *missing).ok()) {  // kBusy until a learner has caught up
          stats_.member_changes++;
          stats_.members_repaired += step == paxos::MemberChange::kAddLearner;
        }
        continue;
      }
    }
    std::optional<uint32_t> stray;
    for (uint64_t members = m.voters | m.learners; members != 0 && !stray; members &= members - 1) {
      const auto id = static_cast<uint32_t>(std::countr_zero(members));
      if (!placed(id)) stray = id;
    }
    if (stray) {
      if (*stray == replica.id()) {
        for (uint32_t id : s.replica_ids) {
          if (id != replica.id() && replica.PeerHealthy(id)) {
            hand_over(id);
            break;
          }
        }
      } else if (replica.ChangeMembers(paxos::MemberChange::kRemove, *stray).ok()) {
        stats_.member_changes++;
      }
      continue;
    }
    if (!change) continue;
    const uint32_t learner = change->replica_id;
    const uint32_t leaving = s.replica_ids[change->region];
    const placement::Node* target = map_.FindNode(change->to);
    const bool target_serves = target != nullptr && (target->state == NodeState::kUp || target->state == NodeState::kSuspect);
    // 1. The move's target joins as a learner and catches up (by log or snapshot); a
    // target that stopped serving before it was promoted ends the move.
    if (!m.IsVoter(learner)) {
      if (!target_serves) {
        propose(placement::AbortMove{g, s.epoch});
      } else if (!m.IsLearner(learner)) {
        if (replica.ChangeMembers(paxos::MemberChange::kAddLearner, learner).ok()) stats_.member_changes++;
      } else if (replica.ChangeMembers(paxos::MemberChange::kPromote, learner).ok()) {  // BUSY until caught up
        stats_.member_changes++;
      }
      continue;
    }
    // 2. Promoted: the replica it replaces leaves (a leader leaving hands over first). A
    // target that stopped serving meanwhile ends the move while the replica it was to
    // replace is still a member (and no removal of it is in flight): it then leaves as a
    // member the map does not place.
    if (m.IsMember(leaving)) {
      if (!target_serves) {
        if (!replica.ChangeInFlight()) propose(placement::AbortMove{g, s.epoch});
      } else if (leaving == replica.id()) {
        hand_over(learner);
      } else if (replica.ChangeMembers(paxos::MemberChange::kRemove, leaving).ok()) {
        stats_.member_changes++;
      }
      continue;
    }
    // 3. The group has switched: the map follows (and the replaced node erases its
    // replica) once a quorum of the new voters knows the removal was chosen. Before that,
    // a voter that accepted the removal without learning its commit still counts the old
    // voters: with the leader gone it could re-choose the removal only with the replaced
    // replica's vote, and a map that had moved on has erased it (the group stuck for good).
    if (!replica.MembershipSettled() && !options_.unsafe_finish_move_unsettled) continue;
    propose(placement::FinishMove{g, s.epoch});
  }
}

void Engine::TickDriver(int64_t now) {
  if (!detecting_ || now < next_plan_us_) return;  // the metadata leader's job
  next_plan_us_ = now + options_.driver_interval_us;
  for (const placement::Command& command : placement::Plan(map_, options_.driver)) {
    // Leaderships (SetLeader) and replica moves (BeginMove: the shards' leaders carry them
    // out, TickMoves).
    if (std::holds_alternative<placement::SetLeader>(command)) stats_.leaders_planned++;
    if (std::holds_alternative<placement::BeginMove>(command)) stats_.moves_planned++;
    Dispatch(PlacementRequest(command), [](Response) {}, Via::kClient);
  }
}

void Engine::TickLoad(int64_t now) {
  if (now < next_load_report_us_) return;
  next_load_report_us_ = now + options_.load_report_us;
  // The sizes of the shards this node leads (its applied state is the newest there is).
  std::vector<placement::ShardBytes> sizes;
  for (uint32_t g = 0; g < options_.shards; ++g) {
    if (IsLeader(g)) sizes.push_back({g, shard_bytes_[g]});
  }
  auto report = load_reporter_.Report(map_, now, sizes);
  if (!report) return;
  stats_.load_reports++;
  // Through the metadata group like any metadata change (forwarded to its leader); a report
  // lost on the way is simply due again at the next one.
  Dispatch(PlacementRequest(*report), [](Response) {}, Via::kClient);
}

// ---- the cluster map and health ----------------------------------------------------------

StatusOr<placement::AddNode> Engine::ParseNodeAdd(const Request& r) const {
  const auto id = ParseNodeId(r.key);
  if (!id) return InvalidArgument("node-add: \"" + r.key + "\" is not a node id");
  std::vector<std::string> fields;
  for (size_t at = 0; at <= r.value.size();) {
    const size_t end = std::min(r.value.find(' ', at), r.value.size());
    fields.emplace_back(r.value.substr(at, end - at));
    at = end + 1;
  }
  if (fields.size() != 3 || fields[0].empty() || fields[1].empty() || fields[2].empty()) {
    return InvalidArgument("node-add: the value is \"<region> <peer address> <client address>\", not \"" +
                           r.value.substr(0, 200) + "\"");
  }
  for (const placement::Region& region : map_.regions()) {
    if (region.name == fields[0]) return placement::AddNode{*id, region.id, fields[1], fields[2]};
  }
  return InvalidArgument("node-add: the cluster has no region \"" + fields[0] + "\" (nodes join existing regions)");
}

StatusOr<placement::ClusterMap> Engine::GenesisMap(const Policy& policy) const {
  using namespace placement;
  ClusterMap m;
  auto member = [&](uint32_t i) {
    EngineMember e = i < options_.members.size() ? options_.members[i] : EngineMember{};
    e.region = RegionOf(i);
    if (e.region_name.empty()) e.region_name = "region-" + std::to_string(e.region);
    if (e.peer_address.empty()) e.peer_address = "node-" + std::to_string(i);
    if (e.client_address.empty()) e.client_address = "node-" + std::to_string(i);
    return e;
  };
  // A region is named by its first node.
  for (uint32_t r = 0; r < options_.regions; ++r) GEOKV_RETURN_IF_ERROR(m.Apply(AddRegion{member(meta_nodes_[r]).region_name}));
  for (uint32_t i = 0; i < nodes_; ++i) {
    const EngineMember e = member(i);
    if (e.added) continue;  // ids are dense: added nodes come after the genesis ones
    GEOKV_RETURN_IF_ERROR(m.Apply(AddNode{i, e.region, e.peer_address, e.client_address}));
    GEOKV_RETURN_IF_ERROR(m.Apply(SetNodeState{i, NodeState::kUp}));
  }
  // One replica per region, spread evenly over the region's nodes; each shard led from
  // its preferred region, the others spread round-robin.
  std::vector<std::optional<RegionId>> preferred(options_.shards);
  for (uint32_t g = 0; g < options_.shards && g < options_.preferred_leader.size(); ++g) {
    preferred[g] = options_.preferred_leader[g];
  }
  auto init = InitialPlacement(m, options_.shards, preferred);
  if (!init.ok()) return init.status();
  GEOKV_RETURN_IF_ERROR(m.Apply(*init));
  GEOKV_RETURN_IF_ERROR(m.Apply(SetPolicyRule{"", policy.default_mode()}));
  for (const auto& [prefix, mode] : policy.rules()) GEOKV_RETURN_IF_ERROR(m.Apply(SetPolicyRule{prefix, mode}));
  return m;
}

Status Engine::ApplyMetadata(const Request& c) {
  placement::Command command;
  switch (c.op) {
    case Op::kPolicySet: command = placement::SetPolicyRule{c.key, c.mode}; break;
    case Op::kPolicyRemove: command = placement::RemovePolicyRule{c.key}; break;
    case Op::kNodeState: {
      const auto node = ParseNodeId(c.key);
      const auto state = ParseNodeState(c.value);
      if (!node || !state) return InvalidArgument("node-state: malformed command");
      // Idempotent: an operator's retry (or a verdict proposed twice) changes nothing.
      if (const placement::Node* n = map_.FindNode(*node); n != nullptr && n->state == *state) return Status::Ok();
      command = placement::SetNodeState{*node, *state};
      break;
    }
    case Op::kNodeAdd: {
      auto add = ParseNodeAdd(c);
      if (!add.ok()) return add.status();
      // Idempotent: an operator's retry of an add that committed changes nothing.
      if (const placement::Node* n = map_.FindNode(add->id);
          n != nullptr && n->region == add->region && n->peer_address == add->peer_address &&
          n->client_address == add->client_address) {
        return Status::Ok();
      }
      // Node ids are dense and never reused: a node's Paxos replica ids, CRDT dots and data
      // directory records are its id's.
      if (add->id != map_.nodes().size()) {
        return InvalidArgument("node-add: node " + std::to_string(add->id) + " is not the next node id (" +
                               std::to_string(map_.nodes().size()) + ")");
      }
      if (add->id >= EngineOptions::kNodesMax) {
        return InvalidArgument("node-add: a cluster has at most " + std::to_string(EngineOptions::kNodesMax) + " nodes");
      }
      command = std::move(add).value();
      break;
    }
    case Op::kPlacement: {
      auto decoded = placement::DecodeCommand(c.value);
      if (!decoded.ok()) return decoded.status();
      // What this engine carries out: sizes, leaderships, replica moves and releases (not the
      // commands that change regions, nodes or shards: those come from the genesis map).
      if (!std::holds_alternative<placement::ReportLoad>(*decoded) && !std::holds_alternative<placement::SetLeader>(*decoded) &&
          !std::holds_alternative<placement::BeginMove>(*decoded) && !std::holds_alternative<placement::FinishMove>(*decoded) &&
          !std::holds_alternative<placement::AbortMove>(*decoded) &&
          !std::holds_alternative<placement::ReleaseReplica>(*decoded)) {
        return InvalidArgument("placement: " + std::string(placement::CommandName(*decoded)) + " is not carried out by this version");
      }
      command = std::move(decoded).value();
      break;
    }
    default: return InvalidArgument("not a metadata operation");
  }
  // Refused alike on every replica: the map is the same wherever this slot is applied.
  if (Status s = map_.Apply(command); !s.ok()) {
    // A committed refusal is final; kBusy would tell a client (and a forwarding node) that
    // the command was turned away before it took effect, and should be retried.
    if (s.code() == Code::kBusy) return Status(Code::kConflict, s.message());
    return s;
  }
  apply_batch_.Put(kMetaTable, kClusterMapKey, map_.Encode());
  map_changed_ = true;
  return Status::Ok();
}

void Engine::ReceiveHeartbeat(uint32_t from, std::string_view payload) {
  auto hb = placement::DecodeHeartbeat(payload);
  if (!hb.ok() || hb->node != from) {
    stats_.bad_messages++;
    return;
  }
  if (!detecting_) return;  // not the metadata leader (or not yet started as one)
  // A new incarnation (the node restarted) starts its history afresh.
  auto [it, fresh] = incarnations_.try_emplace(hb->node, hb->incarnation);
  if (!fresh && it->second != hb->incarnation) {
    it->second = hb->incarnation;
    detector_.Forget(hb->node);
  }
  detector_.Heartbeat(hb->node, env_.NowUs());
  heard_.insert(hb->node);
}

void Engine::TickHealth(int64_t now) {
  using placement::NodeState;
  const bool leads = IsLeader(metadata_group());
  if (now >= next_node_heartbeat_us_) {
    next_node_heartbeat_us_ = now + options_.node_heartbeat_us;
    const int32_t leader = LeaderOf(metadata_group());
    const std::string beat = placement::EncodeHeartbeat({options_.self, incarnation_, ++node_heartbeat_seq_});
    if (leads) {
      if (detecting_) {
        detector_.Heartbeat(options_.self, now);
        heard_.insert(options_.self);
      }
    } else if (leader >= 0 && static_cast<uint32_t>(leader) != options_.self) {
      SendEnvelope(static_cast<uint32_t>(leader), static_cast<uint8_t>(fb::Channel::Node), 0, beat);
      stats_.node_heartbeats_sent++;
    } else if (leader < 0 && static_cast<uint32_t>(ReplicaIdOf(metadata_group(), options_.self)) >= options_.regions) {
      // A learner that does not know the metadata leader (the leader has not added it yet,
      // or an election is on): every voter hears it (one per region), and only the leader
      // listens.
      for (uint32_t r = 0; r < options_.regions; ++r) {
        const uint32_t voter = HolderIn(metadata_group(), r);
        if (voter == options_.self) continue;
        SendEnvelope(voter, static_cast<uint8_t>(fb::Channel::Node), 0, beat);
        stats_.node_heartbeats_sent++;
      }
    }
  }
  if (!leads) {
    detecting_ = false;
    verdicts_.clear();
    return;
  }
  paxos::Replica& meta = *groups_[metadata_group()].replica;
  // Every node follows the cluster map: the metadata leader adds the nodes that are not
  // members of its group as learners, one change at a time (refused, and tried again at
  // the next tick, while another is in flight); a removed node's learner leaves it.
  for (uint32_t id = 0; id < meta_nodes_.size(); ++id) {
    const placement::Node* n = map_.FindNode(meta_nodes_[id]);
    const bool removed = n != nullptr && n->state == placement::NodeState::kRemoved;
    if (removed && meta.members().IsLearner(id)) {
      if (meta.ChangeMembers(paxos::MemberChange::kRemove, id).ok()) stats_.member_changes++;
      break;
    }
    if (meta.members().IsMember(id) || n == nullptr || removed) continue;
    if (meta.ChangeMembers(paxos::MemberChange::kAddLearner, id).ok()) stats_.member_changes++;
    break;
  }
  ReplaceMetadataVoters();
  const bool paused = now - last_detect_us_ > kDetectorPauseUs && !options_.unsafe_detector_ignores_pauses;
  last_detect_us_ = now;
  if (!detecting_ || paused) {
    // No evidence about anyone yet: every node gets the detector's first interval (and the
    // acceptable pause) from now, and only a node heard from since is called up again.
    for (const auto& [id, node] : map_.nodes()) {
      detector_.Forget(id);
      if (node.state != NodeState::kRemoved) detector_.Heartbeat(id, now);
    }
    heard_.clear();
    verdicts_.clear();
    detecting_ = true;
    stats_.detector_restarts++;
    return;
  }
  for (const auto& [id, node] : map_.nodes()) {
    std::optional<NodeState> want;
    switch (detector_.Check(id, now)) {
      case placement::Verdict::kAlive:
        if (heard_.count(id) != 0 &&
            (node.state == NodeState::kJoining || node.state == NodeState::kSuspect || node.state == NodeState::kDown)) {
          want = NodeState::kUp;
        }
        break;
      case placement::Verdict::kSuspect:
        if (node.state == NodeState::kUp) want = NodeState::kSuspect;
        break;
      case placement::Verdict::kDown:
        if (node.state == NodeState::kUp || node.state == NodeState::kSuspect) want = NodeState::kDown;
        break;
      case placement::Verdict::kUnknown:
        break;
    }
    if (!want) {
      verdicts_.erase(id);
      continue;
    }
    auto it = verdicts_.find(id);
    if (it != verdicts_.end() && it->second.first == *want && now - it->second.second < kVerdictRetryUs) continue;
    Request r;
    r.op = Op::kNodeState;
    r.key = std::to_string(id);
    r.value = std::string(placement::NodeStateName(*want));
    if (meta.Propose(paxos::Command{client_id_, next_seq_++, EncodeCommand(r)}).ok()) {
      verdicts_[id] = {*want, now};
      stats_.verdicts_proposed++;
    }
  }
}

void Engine::TickLeadership(int64_t now) {
  using placement::NodeState;
  const placement::Node* self = map_.FindNode(options_.self);
  const bool draining = self != nullptr && self->state == NodeState::kDraining;
  const uint32_t own = RegionOf(options_.self);
  for (uint32_t g = 0; g < groups_.size(); ++g) {
    if (!Hosts(g)) continue;
    paxos::Replica& replica = *groups_[g].replica;
    auto up = [&](uint32_t region) {  // the node holding the group's replica there
      const placement::Node* n = map_.FindNode(HolderIn(g, region));
      return n != nullptr && n->state == NodeState::kUp;
    };
    // Leadership goes where the cluster map says (the placement driver's choice: the
    // preferred region, else spread), and only while that region's node is up.
    std::optional<uint32_t> preferred;
    if (g < map_.shards().size()) {
      preferred = map_.shards()[g].leader_region;
    } else if (g < options_.preferred_leader.size()) {
      preferred = options_.preferred_leader[g];  // the metadata group's, from the options
    }
    if (preferred && !up(*preferred)) preferred.reset();
    // The replica there (its id is the region's index only until the shard's first move).
    std::optional<uint32_t> preferred_id;
    if (preferred) preferred_id = ReplicaInRegion(g, *preferred);
    if (replica.preferred_leader() != preferred_id) (void)replica.SetPreferredLeader(preferred_id);
    if (!draining || !replica.IsLeader() || now < handoff_after_us_[g]) continue;
    // A draining node hands each leadership to the preferred region, else to the first
    // other region whose node is up, provided the replica there answers (the map may not
    // know yet that a node died, and a handover to it would stall the group, the metadata
    // group's verdict on that node included); it tries again after an election timeout.
    std::optional<uint32_t> to;
    if (preferred_id && replica.PeerHealthy(*preferred_id)) to = preferred_id;
    for (uint32_t r = 0; r < options_.regions && !to; ++r) {
      if (r != own && up(r) && replica.PeerHealthy(ReplicaInRegion(g, r))) to = ReplicaInRegion(g, r);
    }
    if (!to || *to == replica.id()) continue;
    if (replica.TransferLeader(*to).ok()) stats_.leader_handoffs++;
    handoff_after_us_[g] = now + static_cast<int64_t>(options_.election_ticks) * options_.tick_us;
  }
}

// ---- the event-loop round --------------------------------------------------------------

void Engine::Fail(Status status) {
  if (options_.unsafe_ignore_storage_errors || !failed_.ok()) return;
  failed_ = Status(Code::kIOError, "storage failed; the node stops (fail-stop): " + status.ToString());
}

void Engine::Process() {
  if (processing_) return;  // callbacks may submit; the running loop picks their work up
  processing_ = true;
  for (int round = 0; round < kRoundsPerCallMax && failed_.ok(); ++round) {
    std::vector<std::pair<uint32_t, paxos::Ready>> readies;
    for (uint32_t g = 0; g < groups_.size(); ++g) {
      if (Hosts(g) && groups_[g].replica->HasReady()) readies.emplace_back(g, groups_[g].replica->Ready());
    }
    std::vector<CrdtId> crdt_ready;
    for (const auto& [id, c] : crdts_) {
      if (c.d->HasReady()) crdt_ready.push_back(id);
    }
    if (readies.empty() && crdt_ready.empty() && after_persist_.empty()) break;

    // 0. A leader's accepts, heartbeats and catch-ups leave first: the followers persist
    // while we do (the replica counts our own acceptance only when their answers arrive,
    // in a later round, after this round's write).
    for (auto& [g, r] : readies) {
      for (auto& m : r.messages) {
        if (paxos::MaySendBeforePersist(m.type)) SendPaxos(g, m.to, m.bytes);
      }
    }
    FlushOutbox();  // with what earlier steps of this round queued (persisted already)

    // 1. Persist everything this round asks for, in one write. Paxos promises and accepts
    // are always synced (an acceptor that forgets a promise breaks safety, whatever the
    // data durability); CRDT state takes the configured durability.
    round_batch_.Clear();
    round_sync_ = false;
    Status saved;
    for (auto& [g, r] : readies) {
      Group& group = groups_[g];
      if (r.snapshot && saved.ok()) saved = group.log->SaveSnapshot(*r.snapshot);
      if (saved.ok()) saved = group.log->Save(r.hard_state ? &*r.hard_state : nullptr, r.entries);
      if (r.must_sync) round_sync_ = true;
    }
    const bool paxos_sync = round_sync_;
    std::vector<std::pair<CrdtId, crdt::Ready>> crs;
    bool crdt_sync = false;
    for (const CrdtId& id : crdt_ready) {
      CrdtReplica& c = crdts_.at(id);
      crdt::Ready cr = c.d->GetReady();
      c.store->Persist(cr, &round_batch_);
      // Local updates are acknowledged, and remote batches acknowledged to their origin,
      // only once durable.
      crdt_sync = crdt_sync || !cr.states.empty() || !cr.erased_keys.empty() || cr.progress || cr.open_batch;
      crs.emplace_back(id, std::move(cr));
    }
    std::vector<std::pair<Callback, Response>> acks;
    acks.swap(after_persist_);
    if (!saved.ok()) {
      Fail(saved);
      if (!failed_.ok()) break;
    }
    // A sync the replicas asked for happens even when this round writes nothing: it makes
    // what earlier rounds wrote unsynced (a snapshot, a commit index) durable before the
    // answers that rely on it leave.
    if (!round_batch_.empty() || paxos_sync) {
      const storage::Durability durability = paxos_sync  ? storage::Durability::kSync
                                             : crdt_sync ? options_.durability
                                                         : storage::Durability::kNone;
      Status s = env_.Store().Write(round_batch_, durability);
      stats_.storage_writes++;
      if (durability == storage::Durability::kSync) stats_.storage_syncs++;
      if (!s.ok()) {
        Fail(s);
        if (!failed_.ok()) break;
      }
    }

    // 2. Send.
    for (auto& [g, r] : readies) {
      for (auto& m : r.messages) {
        if (!paxos::MaySendBeforePersist(m.type)) SendPaxos(g, m.to, m.bytes);
      }
    }
    for (auto& [id, cr] : crs) {
      for (auto& m : cr.messages) SendCrdt(id.first, id.second, m);
    }

    // 3. Apply, then answer.
    std::vector<std::pair<Callback, Response>> answers;
    apply_batch_.Clear();
    overlay_.clear();
    for (auto& [g, r] : readies) {
      Group& group = groups_[g];
      if (r.install_snapshot && r.snapshot) {
        if (Status s = InstallSnapshot(g, r.snapshot->data, r.snapshot->index); !s.ok()) {
          Fail(s);
          break;
        }
      }
      // Slots applied before a restart are skipped. A slot may hold several commands: the
      // applied slot is persisted once per round, so a slot is applied whole or not at all,
      // and the test is against the slot applied before this Ready, not the one just set.
      const uint64_t applied_before = group.applied;
      for (const auto& a : r.apply) {
        if (a.slot <= (options_.unsafe_apply_first_of_shared_slot ? group.applied : applied_before)) continue;
        Response resp = a.duplicate ? AnswerDuplicate(a) : ApplyCommand(g, a);
        group.applied = a.slot;
        stats_.strong_applied++;
        auto it = proposals_.find({a.command.client_id, a.command.seq});
        if (it != proposals_.end()) {
          resp.id = it->second.request_id;
          answers.emplace_back(std::move(it->second.done), std::move(resp));
          proposals_.erase(it);
        }
      }
      // Slots without commands (no-ops, membership changes) count as applied too.
      const bool advanced = group.replica->applied_index() > group.applied;
      if (advanced) group.applied = group.replica->applied_index();
      if (!r.apply.empty() || r.install_snapshot || advanced) {
        apply_batch_.Put(kAppliedTable, GroupKey(g), EncodeU64(group.applied));
        // The shard's size as of that slot, in the same write (recovery replays from there).
        if (g < shard_bytes_.size()) apply_batch_.Put(kAppliedTable, BytesKey(g), EncodeU64(shard_bytes_[g]));
      }
    }
    if (!failed_.ok()) break;
    if (map_changed_) {  // in the write that persists the map
      EraseDeparted();
      EraseDepartedCrdts();
    }
    if (!failed_.ok()) break;
    if (!apply_batch_.empty()) {
      // Not synced: the Paxos log is durable, and recovery replays what this write loses.
      Status s = env_.Store().Write(apply_batch_, storage::Durability::kNone);
      if (!s.ok()) {
        Fail(s);
        if (!failed_.ok()) break;
      }
    }
    overlay_.clear();
    for (auto& [g, r] : readies) {
      for (const auto& rs : r.reads) {
        auto it = reads_.find(rs.request_id);
        if (it == reads_.end()) continue;
        Response resp = ServeRead(g, it->second.request);
        resp.id = it->second.request.id;
        answers.emplace_back(std::move(it->second.done), std::move(resp));
        reads_.erase(it);
      }
    }
    for (auto& [g, r] : readies) groups_[g].replica->Advance();
    for (const CrdtId& id : crdt_ready) crdts_.at(id).d->Advance();
    // Between two replicas of one shard here: stepped now, their Readies in the next pass.
    std::vector<std::pair<uint32_t, std::string>> local;
    local.swap(local_crdt_);
    for (auto& [shard, payload] : local) StepCrdt(options_.self, shard, payload);
    if (map_changed_) {
      map_changed_ = false;
      FollowMapNodes();
      ReconcileReplicas();
      FollowCrdtReplicas();
      if (!failed_.ok()) break;
    }

    // Snapshots keep each shard's log bounded.
    for (uint32_t g = 0; g < groups_.size(); ++g) {
      Group& group = groups_[g];
      if (!Hosts(g)) continue;
      if (group.applied - group.compacted_at >= options_.compact_every_slots &&
          group.replica->applied_index() == group.applied) {
        auto snapshot = SnapshotOf(g);
        if (snapshot.ok() && group.replica->Compact(*std::move(snapshot)).ok()) {
          stats_.snapshots++;
        } else {
          stats_.compaction_failures++;  // tried again after another compact_every_slots
        }
        group.compacted_at = group.applied;
      }
    }

    for (auto& [done, resp] : answers) done(std::move(resp));
    for (auto& [done, resp] : acks) done(std::move(resp));
  }
  processing_ = false;
}

// ---- the strong-mode state machine ------------------------------------------------------

std::optional<std::string> Engine::ReadStrong(uint32_t group, std::string_view key) const {
  const std::string k = StrongKey(group, key);
  auto it = overlay_.find(k);
  if (it != overlay_.end()) return it->second;
  auto v = env_.Store().Get(kStrongTable, k);
  if (!v.ok()) return std::nullopt;
  return std::move(v).value();
}

void Engine::WriteStrong(uint32_t group, std::string_view key, std::optional<std::string> value,
                         const std::optional<std::string>& old) {
  if (old) shard_bytes_[group] -= std::min<uint64_t>(shard_bytes_[group], key.size() + old->size());
  if (value) shard_bytes_[group] += key.size() + value->size();
  const std::string k = StrongKey(group, key);
  if (value) {
    apply_batch_.Put(kStrongTable, k, *value);
  } else {
    apply_batch_.Delete(kStrongTable, k);
  }
  overlay_[k] = std::move(value);
}

// A duplicate changes nothing. A repeat of its session's last command (a forward re-sent to a
// new leader after the first copy committed) took effect: a put, whose answer is always OK
// and carries nothing, is answered OK. Otherwise (the answers of delete, cas, add and policy
// changes depend on the state the first copy saw, which is not kept; a duplicate overtaken
// by a later command of its session may never have taken effect) the outcome is unknown.
Response Engine::AnswerDuplicate(const paxos::Apply& apply) {
  if (apply.repeat) {
    auto cmd = DecodeCommand(apply.command.payload);
    if (cmd.ok() && cmd->op == Op::kPut) return Response{};
  }
  return Answer(Status(Code::kTimeout, "duplicate or overtaken request; its outcome is unknown"));
}

Response Engine::ApplyCommand(uint32_t group, const paxos::Apply& apply) {
  if (apply.command.payload.empty()) return Response{};
  auto cmd = DecodeCommand(apply.command.payload);
  if (!cmd.ok()) return Answer(cmd.status());  // every replica skips it alike
  Response out;
  const Request& c = *cmd;
  if (group == metadata_group()) {
    out.status = ApplyMetadata(c);
    return out;
  }
  std::optional<std::string> current = ReadStrong(group, c.key);
  switch (c.op) {
    case Op::kPut:
      WriteStrong(group, c.key, c.value, current);
      break;
    case Op::kDelete:
      out.found = current.has_value();
      WriteStrong(group, c.key, std::nullopt, current);
      break;
    case Op::kCas: {
      const bool match = c.has_expected ? (current && *current == c.expected) : !current;
      out.found = current.has_value();
      if (current) out.value = *current;
      if (match) {
        WriteStrong(group, c.key, c.value, current);
      } else {
        out.status = Status(Code::kConflict, "compare-and-set: the current value differs");
      }
      break;
    }
    case Op::kAdd: {
      int64_t n = 0;
      if (current && !ParseInt(*current, &n)) {
        out.status = InvalidArgument("add: the current value is not a decimal integer");
        break;
      }
      if (__builtin_add_overflow(n, c.delta, &n)) {
        out.status = InvalidArgument("add: the result would overflow a 64-bit integer; the value is unchanged");
        break;
      }
      out.number = n;
      out.found = true;
      out.value = std::to_string(n);
      WriteStrong(group, c.key, out.value, current);
      break;
    }
    default:
      out.status = Status(Code::kWrongMode, "operation cannot be applied to a strong key");
  }
  return out;
}

Response Engine::ServeRead(uint32_t group, const Request& r) {
  Response out;
  if (r.op == Op::kPolicyCheck) {
    out.status = CheckShardForPolicyChange(group, r);
    return out;
  }
  if (r.op == Op::kShardSnapshot) return ServeShardSnapshot(group, r);
  if (r.op == Op::kPolicyList) {
    out.found = true;
    const Policy& policy = map_.policy();
    out.values.push_back("=" + std::string(ModeName(policy.default_mode())) + " (default)");
    for (const auto& [prefix, mode] : policy.rules()) out.values.push_back(prefix + "=" + std::string(ModeName(mode)));
    return out;
  }
  auto v = ReadStrong(group, r.key);
  if (!v) {
    out.status = NotFound("no such key");
    return out;
  }
  out.found = true;
  out.value = std::move(*v);
  return out;
}

StatusOr<uint64_t> Engine::CountShardBytes(uint32_t group) const {
  uint64_t bytes = 0;
  const std::string prefix = GroupKey(group);
  std::string after;
  for (;;) {
    auto page = env_.Store().Scan(kStrongTable, prefix, after, 1024);
    if (!page.ok()) return page.status();
    for (const auto& e : *page) bytes += e.key.size() - prefix.size() + e.value.size();
    if (page->size() < 1024) break;
    after = page->back().key;
  }
  return bytes;
}

Response Engine::ServeShardSnapshot(uint32_t group, const Request& r) {
  Response out;
  const int64_t now = env_.NowUs();
  std::erase_if(shard_snapshots_, [now](const auto& e) { return e.second.expires_us <= now; });
  auto it = shard_snapshots_.find(r.key);
  if (r.key.empty()) {
    auto bytes = SnapshotOf(group);
    if (!bytes.ok()) {
      out.status = bytes.status();
      return out;
    }
    if (shard_snapshots_.size() >= kShardSnapshotsMax) {
      shard_snapshots_.erase(std::min_element(shard_snapshots_.begin(), shard_snapshots_.end(), [](const auto& a, const auto& b) {
        return a.second.expires_us < b.second.expires_us;
      }));
    }
    // Random, so that a reader cannot guess another backup's token, nor a token reused
    // after a restart name a different snapshot.
    std::string token;
    do token = Hex(env_.Random()) + Hex(env_.Random());
    while (shard_snapshots_.count(token) != 0);
    it = shard_snapshots_.emplace(std::move(token), ShardSnapshot{group, *std::move(bytes), 0}).first;
  } else if (it == shard_snapshots_.end()) {
    out.status = NotFound("snapshot expired; start again (a snapshot is kept " +
                          std::to_string(kShardSnapshotIdleUs / 1'000'000) +
                          " s after its last chunk, by the shard's leader of the time)");
    return out;
  } else if (it->second.group != group) {
    out.status = InvalidArgument("shard-snapshot: the token is of shard " + std::to_string(it->second.group) +
                                 ", not of shard " + std::to_string(group));
    return out;
  }
  int64_t offset = 0;
  ParseInt(r.value, &offset);  // checked by Dispatch
  const std::string& bytes = it->second.bytes;
  if (static_cast<uint64_t>(offset) > bytes.size()) {
    out.status = InvalidArgument("shard-snapshot: offset " + r.value + " is beyond the snapshot's " +
                                 std::to_string(bytes.size()) + " bytes");
    return out;
  }
  it->second.expires_us = now + kShardSnapshotIdleUs;
  out.found = true;
  out.value = bytes.substr(static_cast<size_t>(offset), options_.backup_chunk_bytes);
  out.number = static_cast<int64_t>(bytes.size());
  out.context = it->first;
  return out;
}

void Engine::ServeCrdtDump(crdt::Disseminator& d, const Request& r, Callback done) {
  Response out;
  out.id = r.id;
  // Deleted values and empty sets are left out: there is nothing in them to restore.
  size_t bytes = 0;
  for (auto it = d.states().upper_bound(r.key); it != d.states().end(); ++it) {
    if (it->second.IsEmpty()) continue;
    std::string state = it->second.Encode();
    if (!out.values.empty() && bytes + it->first.size() + state.size() > options_.backup_chunk_bytes) {
      out.found = true;
      break;
    }
    bytes += it->first.size() + state.size();
    out.values.push_back(it->first);
    out.values.push_back(std::move(state));
  }
  // What the page holds may include updates of this round: answer once they are durable.
  after_persist_.emplace_back(std::move(done), std::move(out));
}

StatusOr<std::string> Engine::SnapshotOf(uint32_t group) const {
  crdt::Encoder enc;
  if (group == metadata_group()) {
    // The policy first, as nodes of an earlier version read it (and ignore what follows).
    enc.PutBytes(map_.policy().Encode());
    enc.PutBytes(map_.Encode());
    return enc.Release();
  }
  std::vector<storage::Entry> rows;
  std::string after;
  const std::string prefix = GroupKey(group);
  for (;;) {
    auto page = env_.Store().Scan(kStrongTable, prefix, after, 1024);
    if (!page.ok()) return page.status();
    for (auto& e : *page) rows.push_back(std::move(e));
    if (rows.empty() || page->size() < 1024) break;
    after = rows.back().key;
  }
  enc.PutVarint(rows.size());
  for (const auto& e : rows) {
    enc.PutBytes(std::string_view(e.key).substr(4));
    enc.PutBytes(e.value);
  }
  return enc.Release();
}

Status Engine::InstallSnapshot(uint32_t group, std::string_view data, uint64_t index) {
  crdt::Decoder dec(data);
  if (group == metadata_group()) {
    std::string_view bytes;
    GEOKV_RETURN_IF_ERROR(dec.GetBytes(kMessageBytesMax, &bytes, "policy"));
    auto p = Policy::Decode(bytes);
    if (!p.ok()) return p.status();
    if (dec.remaining() == 0) {
      // From a node of an earlier version: the policy alone.
      auto genesis = GenesisMap(*p);
      if (!genesis.ok()) return genesis.status();
      map_ = std::move(genesis).value();
    } else {
      GEOKV_RETURN_IF_ERROR(dec.GetBytes(placement::kMapBytesMax, &bytes, "cluster map"));
      auto m = placement::ClusterMap::Decode(bytes);
      if (!m.ok()) return m.status();
      map_ = std::move(m).value();
    }
    apply_batch_.Put(kMetaTable, kClusterMapKey, map_.Encode());
    map_changed_ = true;  // the replicas this node holds follow
  } else {
    // Replace the shard's state: drop every key, then write the snapshot's.
    const std::string prefix = GroupKey(group);
    std::string after;
    for (;;) {
      auto page = env_.Store().Scan(kStrongTable, prefix, after, 1024);
      if (!page.ok()) return page.status();
      for (const auto& e : *page) WriteStrong(group, std::string_view(e.key).substr(4), std::nullopt, std::nullopt);
      if (page->size() < 1024) break;
      after = page->back().key;
    }
    shard_bytes_[group] = 0;  // the rows dropped above, and counted again as written below
    uint64_t n = 0;
    GEOKV_RETURN_IF_ERROR(dec.GetBounded(1u << 28, &n, "snapshot rows"));
    for (uint64_t i = 0; i < n; ++i) {
      std::string_view k, v;
      GEOKV_RETURN_IF_ERROR(dec.GetBytes(kMessageBytesMax, &k, "key"));
      GEOKV_RETURN_IF_ERROR(dec.GetBytes(kMessageBytesMax, &v, "value"));
      WriteStrong(group, k, std::string(v), std::nullopt);
    }
  }
  groups_[group].applied = index;
  groups_[group].compacted_at = index;
  return Status::Ok();
}

// ---- introspection ---------------------------------------------------------------------

std::vector<std::string> Engine::StatusLines() const {
  std::vector<std::string> out;
  out.push_back("node " + std::to_string(options_.self) + " of " + std::to_string(nodes_) + " nodes in " +
                std::to_string(options_.regions) + " regions, this one in " + map_.RegionName(RegionOf(options_.self)) +
                "; " + std::to_string(options_.shards) + " shards");
  const Status gate = DiskGate();
  out.push_back("data directory: disk " + Hex(disk_id_) +
                (gate.ok() ? "" : lost_disk_known_ != 0 ? " LOST: " + gate.message() : " (new: not yet confirmed by every peer)"));
  for (uint32_t n = 0; n < foreign_disks_.size(); ++n) {
    if (foreign_disks_[n] == 0) continue;
    out.push_back("node " + std::to_string(n) + " sends from disk " + Hex(foreign_disks_[n]) + ", not disk " +
                  Hex(peer_disks_[n]) + " it had: its data directory was lost or replaced; its messages are dropped (" +
                  std::to_string(stats_.foreign_disk_messages) + " so far, from all such nodes)");
  }
  for (uint32_t g = 0; g < groups_.size(); ++g) {
    if (!Hosts(g)) continue;  // the shards this node holds a replica of
    const auto& r = *groups_[g].replica;
    // Replica ids of the group's members as this replica knows them.
    auto ids = [](uint64_t mask) {
      std::string s;
      for (uint32_t id = 0; id < paxos::Membership::kIdsMax; ++id) {
        if ((mask >> id) & 1) s += (s.empty() ? "" : ",") + std::to_string(id);
      }
      return "[" + s + "]";
    };
    out.push_back(std::string(g == options_.shards ? "meta" : "shard " + std::to_string(g)) +
                  ": leader=" + std::to_string(LeaderOf(g)) + (r.IsLeader() ? " (this node)" : "") +
                  " commit=" + std::to_string(r.commit_index()) + " applied=" + std::to_string(groups_[g].applied) +
                  " replica=" + std::to_string(r.id()) + " voters=" + ids(r.members().voters) +
                  (r.members().learners != 0 ? " learners=" + ids(r.members().learners) : ""));
  }
  // The metadata group's voters by node id: one per region, the first node of each unless
  // it went down and another node of its region took its vote.
  {
    std::string voters;
    for (uint64_t v = groups_[metadata_group()].replica->members().voters; v != 0; v &= v - 1) {
      const auto id = static_cast<uint32_t>(std::countr_zero(v));
      if (id < meta_nodes_.size()) voters += (voters.empty() ? "" : ",") + std::to_string(meta_nodes_[id]);
    }
    out.push_back("metadata voters: nodes [" + voters + "]");
  }
  // The cluster map as applied here; loads as this node sees them (leaderships from its
  // replicas' view, shards from the placement).
  out.push_back("cluster map: version " + std::to_string(map_.version()) + ", " + std::to_string(map_.nodes().size()) +
                " nodes, " + std::to_string(map_.shards().size()) + " shards" +
                (detecting_ ? " (this node runs the failure detector)" : ""));
  const int64_t now = env_.NowUs();
  for (const auto& [id, node] : map_.nodes()) {
    const uint32_t leading = GroupsLedBy(id);
    const std::string region = map_.RegionName(node.region);
    std::string line = "node " + std::to_string(id) + " (" + region + "): " + std::string(placement::NodeStateName(node.state)) +
                       ", replicas=" + std::to_string(node.load.shards) + ", bytes=" + std::to_string(node.load.bytes) +
                       ", leading=" + std::to_string(leading) + " (planned " + std::to_string(node.load.leaders) + ")" +
                       ", peer=" + node.peer_address + ", client=" + node.client_address;
    if (detecting_ && node.state != placement::NodeState::kRemoved) {
      char phi[32];
      std::snprintf(phi, sizeof phi, "%.1f", std::min(std::max(0.0, detector_.Phi(id, now)), 99.9));
      line += ", phi=" + std::string(phi);
    }
    if (id == options_.self) line += " (this node)";
    out.push_back(std::move(line));
  }
  // Replica moves in flight (the placement driver's, carried out by the shards' leaders).
  for (uint32_t g = 0; g < map_.shards().size(); ++g) {
    const auto& change = map_.shards()[g].change;
    if (!change) continue;
    out.push_back("move: shard " + std::to_string(g) + " in " + map_.RegionName(change->region) + ", node " +
                  std::to_string(change->from) + " -> node " + std::to_string(change->to) + " (replica " +
                  std::to_string(change->replica_id) + ")");
  }
  // Eventual keys: the CRDT replicas of the shards held here.
  size_t keys = 0, log = 0, joining = 0, departed = 0;
  for (const auto& [id, c] : crdts_) {
    if (map_.NodeOfDeparted(id.first, id.second) == options_.self) {
      ++departed;
    } else {
      keys += c.d->states().size();
    }
    log += c.d->log_size();
    joining += c.d->joining();
  }
  out.push_back("crdt: replicas=" + std::to_string(crdts_.size()) + " keys=" + std::to_string(keys) + " log=" +
                std::to_string(log) + " joining=" + std::to_string(joining) + " departed=" + std::to_string(departed) +
                (joining != 0 ? " (a joining replica takes its shard's eventual keys from the other regions by "
                                "state transfers; its Paxos replica waits)"
                              : ""));
  return out;
}

Status Engine::CheckShardBytes() const {
  for (uint32_t g = 0; g < options_.shards; ++g) {
    auto counted = CountShardBytes(g);
    if (!counted.ok()) return counted.status();
    if (*counted != shard_bytes_[g]) {
      return Status(Code::kInternal, "shard " + std::to_string(g) + " holds " + std::to_string(*counted) +
                                         " bytes but the node counts " + std::to_string(shard_bytes_[g]));
    }
  }
  return Status::Ok();
}

StatusOr<std::string> Engine::ReadStrongForTest(std::string_view key) const {
  auto v = ReadStrong(ShardOf(key), key);
  if (!v) return NotFound("no such key");
  return *v;
}

}  // namespace geokv
