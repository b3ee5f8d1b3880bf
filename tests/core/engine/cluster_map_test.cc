// ClusterMap: validation of every command (specific errors, the map untouched), the node
// state machine, loads kept in step with the placement, FlatBuffers round trips, and the
// Verifier's rejection of truncated and garbage buffers.
#include "core/engine/cluster_map.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <random>

#include "replication/crdt/codec.h"
#include "tests/core/engine/placement_testing.h"

namespace geokv::placement {
namespace {

using testing::IdOf;
using testing::MakeCluster;

// Applies `c` and expects `code`; a refusal must leave the map exactly as it was.
void ExpectRefused(ClusterMap& map, const Command& c, Code code) {
  const std::string before = map.Encode();
  const uint64_t version = map.version();
  Status s = map.Apply(c);
  EXPECT_EQ(s.code(), code) << CommandName(c) << ": " << s.ToString();
  EXPECT_EQ(map.version(), version);
  EXPECT_EQ(map.Encode(), before);
}

TEST(ClusterMap, RegionsAndNodesAreValidated) {
  ClusterMap map;
  ASSERT_TRUE(map.Apply(AddRegion{"us-east"}).ok());
  EXPECT_EQ(map.version(), 1u);
  ExpectRefused(map, AddRegion{"us-east"}, Code::kInvalidArgument);
  ExpectRefused(map, AddRegion{""}, Code::kInvalidArgument);
  ExpectRefused(map, AddRegion{std::string(kRegionNameBytesMax + 1, 'r')}, Code::kInvalidArgument);
  ExpectRefused(map, AddNode{1, 7, "tcp://a:1", "tcp://a:2"}, Code::kNotFound);
  ExpectRefused(map, AddNode{1, 0, "", "tcp://a:2"}, Code::kInvalidArgument);
  ExpectRefused(map, AddNode{1, 0, "tcp://a:1", std::string(kAddressBytesMax + 1, 'x')}, Code::kInvalidArgument);
  ExpectRefused(map, AddNode{kNoNode, 0, "tcp://a:1", "tcp://a:2"}, Code::kInvalidArgument);
  ASSERT_TRUE(map.Apply(AddNode{1, 0, "tcp://a:1", std::string(kAddressBytesMax, 'x')}).ok());
  ExpectRefused(map, AddNode{1, 0, "tcp://b:1", "tcp://b:2"}, Code::kInvalidArgument);
  EXPECT_EQ(map.FindNode(1)->state, NodeState::kJoining);
  ExpectRefused(map, SetNodeState{2, NodeState::kUp}, Code::kNotFound);
  EXPECT_EQ(map.version(), 2u);
}

// Every limit of the model, at its edge and one past it.
TEST(ClusterMap, Limits) {
  ClusterMap map;
  ASSERT_TRUE(map.Apply(AddRegion{std::string(kRegionNameBytesMax, 'r')}).ok());
  for (size_t r = 1; r < kRegionsMax; ++r) ASSERT_TRUE(map.Apply(AddRegion{"r" + std::to_string(r)}).ok());
  ExpectRefused(map, AddRegion{"one-too-many"}, Code::kInvalidArgument);
  for (NodeId id = 0; id < kNodesMax; ++id) {
    ASSERT_TRUE(map.Apply(AddNode{id, static_cast<RegionId>(id % kRegionsMax), "tcp://p:1", "tcp://c:1"}).ok());
  }
  ExpectRefused(map, AddNode{static_cast<NodeId>(kNodesMax), 0, "tcp://p:1", "tcp://c:1"}, Code::kInvalidArgument);

  ClusterMap one = MakeCluster(1, 1, 1);
  ClusterMap fresh;
  ASSERT_TRUE(fresh.Apply(AddRegion{"a"}).ok());
  testing::AddUpNode(fresh, 0, 0);
  ShardPlacement p = one.shards()[0];
  ClusterMap full = fresh;
  ExpectRefused(full, InitShards{std::vector<ShardPlacement>(kShardsMax + 1, p)}, Code::kInvalidArgument);
  ASSERT_TRUE(full.Apply(InitShards{std::vector<ShardPlacement>(kShardsMax, p)}).ok());
  EXPECT_EQ(full.FindNode(IdOf(0, 0))->load.shards, kShardsMax);
  auto decoded = ClusterMap::Decode(full.Encode());
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_TRUE(*decoded == full);
}

TEST(ClusterMap, NodeStateMachine) {
  const NodeState all[] = {NodeState::kJoining, NodeState::kUp, NodeState::kSuspect,
                           NodeState::kDown, NodeState::kDraining, NodeState::kRemoved};
  // Reaches `from` along allowed transitions, then tries `to`.
  const std::map<NodeState, std::vector<NodeState>> path = {
      {NodeState::kJoining, {}},
      {NodeState::kUp, {NodeState::kUp}},
      {NodeState::kSuspect, {NodeState::kUp, NodeState::kSuspect}},
      {NodeState::kDown, {NodeState::kUp, NodeState::kDown}},
      {NodeState::kDraining, {NodeState::kUp, NodeState::kDraining}},
      {NodeState::kRemoved, {NodeState::kRemoved}},
  };
  NodeId next = 1;
  for (NodeState from : all) {
    for (NodeState to : all) {
      ClusterMap map;
      ASSERT_TRUE(map.Apply(AddRegion{"r"}).ok());
      const NodeId id = next++;
      ASSERT_TRUE(map.Apply(AddNode{id, 0, "tcp://p:1", "tcp://c:1"}).ok());
      for (NodeState step : path.at(from)) ASSERT_TRUE(map.Apply(SetNodeState{id, step}).ok());
      ASSERT_EQ(map.FindNode(id)->state, from);
      if (from == to) {
        const uint64_t v = map.version();
        EXPECT_TRUE(map.Apply(SetNodeState{id, to}).ok());
        EXPECT_EQ(map.version(), v) << "a no-op is not a change";
      } else if (TransitionAllowed(from, to)) {
        EXPECT_TRUE(map.Apply(SetNodeState{id, to}).ok()) << NodeStateName(from) << "->" << NodeStateName(to);
        EXPECT_EQ(map.FindNode(id)->state, to);
      } else {
        ExpectRefused(map, SetNodeState{id, to}, Code::kInvalidArgument);
      }
    }
  }
  EXPECT_FALSE(TransitionAllowed(NodeState::kUp, NodeState::kRemoved));
  EXPECT_FALSE(TransitionAllowed(NodeState::kRemoved, NodeState::kUp));
  EXPECT_FALSE(TransitionAllowed(NodeState::kJoining, NodeState::kDraining));
}

TEST(ClusterMap, ShardsAndMoves) {
  ClusterMap map = MakeCluster(3, 2, 8);
  ASSERT_EQ(map.shards().size(), 8u);
  ASSERT_TRUE(map.CheckInvariants().ok());
  ExpectRefused(map, AddRegion{"late"}, Code::kBusy);
  ExpectRefused(map, InitShards{map.shards()}, Code::kBusy);

  const ShardPlacement s0 = map.shards()[0];
  const NodeId from = s0.replicas[1];
  const NodeId other = from == IdOf(1, 0) ? IdOf(1, 1) : IdOf(1, 0);
  ExpectRefused(map, BeginMove{99, s0.epoch, 1, from, other}, Code::kNotFound);
  ExpectRefused(map, BeginMove{0, s0.epoch + 1, 1, from, other}, Code::kConflict);
  ExpectRefused(map, BeginMove{0, s0.epoch, 7, from, other}, Code::kNotFound);
  ExpectRefused(map, BeginMove{0, s0.epoch, 1, other, from}, Code::kInvalidArgument);
  ExpectRefused(map, BeginMove{0, s0.epoch, 1, from, from}, Code::kInvalidArgument);
  ExpectRefused(map, BeginMove{0, s0.epoch, 1, from, IdOf(2, 0)}, Code::kInvalidArgument);
  ExpectRefused(map, BeginMove{0, s0.epoch, 1, from, 4242}, Code::kNotFound);
  ExpectRefused(map, FinishMove{0, s0.epoch}, Code::kNotFound);
  ExpectRefused(map, AbortMove{0, s0.epoch}, Code::kNotFound);

  // A target that is not up is refused.
  ASSERT_TRUE(map.Apply(SetNodeState{other, NodeState::kSuspect}).ok());
  ExpectRefused(map, BeginMove{0, s0.epoch, 1, from, other}, Code::kInvalidArgument);
  ASSERT_TRUE(map.Apply(SetNodeState{other, NodeState::kUp}).ok());

  const NodeLoad from_before = map.FindNode(from)->load;
  const NodeLoad other_before = map.FindNode(other)->load;
  ASSERT_TRUE(map.Apply(BeginMove{0, s0.epoch, 1, from, other}).ok());
  const uint64_t e = map.shards()[0].epoch;
  EXPECT_EQ(e, s0.epoch + 1);
  // One change per shard at a time, in any region, and no leader change meanwhile.
  ExpectRefused(map, BeginMove{0, e, 1, from, other}, Code::kBusy);
  ExpectRefused(map, BeginMove{0, e, 2, s0.replicas[2], s0.replicas[2] == IdOf(2, 0) ? IdOf(2, 1) : IdOf(2, 0)},
                Code::kBusy);
  ExpectRefused(map, SetLeader{0, e, 2}, Code::kBusy);
  // The nodes of a change in flight cannot be removed.
  ASSERT_TRUE(map.Apply(SetNodeState{other, NodeState::kDraining}).ok());
  ExpectRefused(map, SetNodeState{other, NodeState::kRemoved}, Code::kBusy);
  ASSERT_TRUE(map.Apply(SetNodeState{other, NodeState::kUp}).ok());
  ExpectRefused(map, FinishMove{0, e - 1}, Code::kConflict);
  ASSERT_TRUE(map.Apply(FinishMove{0, e}).ok());
  EXPECT_EQ(map.ReplicaOf(0, 1), other);
  EXPECT_FALSE(map.shards()[0].change.has_value());
  EXPECT_EQ(map.FindNode(from)->load.shards, from_before.shards - 1);
  EXPECT_EQ(map.FindNode(other)->load.shards, other_before.shards + 1);
  EXPECT_TRUE(map.CheckInvariants().ok());

  // The replica that left is listed as departed (its eventual keys may not have reached
  // anyone else yet) until it is released.
  ASSERT_EQ(map.shards()[0].departed.size(), 1u);
  EXPECT_EQ(map.shards()[0].departed[0], (DepartedReplica{s0.replica_ids[1], from}));
  EXPECT_EQ(map.NodeOfDeparted(0, s0.replica_ids[1]), from);
  EXPECT_EQ(map.NodeOfDeparted(0, map.shards()[0].replica_ids[1]), kNoNode);

  // Abort leaves the replica where it was, and lists nothing.
  const uint64_t e2 = map.shards()[0].epoch;
  ASSERT_TRUE(map.Apply(BeginMove{0, e2, 1, other, from}).ok());
  ASSERT_TRUE(map.Apply(AbortMove{0, e2 + 1}).ok());
  EXPECT_EQ(map.ReplicaOf(0, 1), other);
  EXPECT_EQ(map.shards()[0].departed.size(), 1u);
  EXPECT_TRUE(map.CheckInvariants().ok());

  // Released once: the second release finds nothing.
  ExpectRefused(map, ReleaseReplica{0, map.shards()[0].replica_ids[1]}, Code::kNotFound);
  ExpectRefused(map, ReleaseReplica{99, 0}, Code::kNotFound);
  ASSERT_TRUE(map.Apply(ReleaseReplica{0, s0.replica_ids[1]}).ok());
  EXPECT_TRUE(map.shards()[0].departed.empty());
  ExpectRefused(map, ReleaseReplica{0, s0.replica_ids[1]}, Code::kNotFound);
  EXPECT_TRUE(map.CheckInvariants().ok());
}

// A node removed for good takes its departed replicas with it: whatever they had not
// shipped is lost, and nobody waits for them any more.
TEST(ClusterMap, RemovingANodeForgetsItsDepartedReplicas) {
  ClusterMap map = MakeCluster(3, 2, 8);
  const NodeId gone = IdOf(1, 0), stays = IdOf(1, 1);
  size_t moved = 0;
  for (uint32_t shard = 0; shard < 8; ++shard) {
    const ShardPlacement& s = map.shards()[shard];
    if (s.replicas[1] != gone) continue;
    ASSERT_TRUE(map.Apply(BeginMove{shard, s.epoch, 1, gone, stays}).ok());
    ASSERT_TRUE(map.Apply(FinishMove{shard, map.shards()[shard].epoch}).ok());
    ++moved;
  }
  ASSERT_GT(moved, 0u);
  size_t listed = 0;
  for (const ShardPlacement& s : map.shards()) listed += s.departed.size();
  EXPECT_EQ(listed, moved);
  ASSERT_TRUE(map.Apply(SetNodeState{gone, NodeState::kDraining}).ok());
  ASSERT_TRUE(map.Apply(SetNodeState{gone, NodeState::kRemoved}).ok());
  for (const ShardPlacement& s : map.shards()) EXPECT_TRUE(s.departed.empty());
  EXPECT_TRUE(map.CheckInvariants().ok());
  // The map round-trips with departed replicas listed, and without.
  ClusterMap again = MakeCluster(3, 2, 8);
  const ShardPlacement& s = again.shards()[0];
  const NodeId from = s.replicas[2], to = from == IdOf(2, 0) ? IdOf(2, 1) : IdOf(2, 0);
  ASSERT_TRUE(again.Apply(BeginMove{0, s.epoch, 2, from, to}).ok());
  ASSERT_TRUE(again.Apply(FinishMove{0, again.shards()[0].epoch}).ok());
  auto decoded = ClusterMap::Decode(again.Encode());
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_TRUE(*decoded == again);
  EXPECT_EQ(decoded->shards()[0].departed.size(), 1u);
}

// A move's learner gets a fresh Paxos replica id, which becomes the region's on finish; ids
// are never reused (an abort burns one too), and a shard that used them all moves no more.
TEST(ClusterMap, MovesGiveLearnersFreshReplicaIds) {
  ClusterMap map = MakeCluster(3, 2, 1);
  const ShardPlacement& s = map.shards()[0];
  EXPECT_EQ(s.replica_ids, (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_EQ(s.next_replica_id, 3u);
  NodeId here = s.replicas[1];
  NodeId there = here == IdOf(1, 0) ? IdOf(1, 1) : IdOf(1, 0);
  EXPECT_EQ(map.NodeOfReplicaId(0, 1), here);
  EXPECT_EQ(map.ReplicaIdOf(0, here), std::optional<uint32_t>(1));
  EXPECT_EQ(map.ReplicaIdOf(0, there), std::nullopt);
  ASSERT_TRUE(map.Apply(BeginMove{0, s.epoch, 1, here, there}).ok());
  ASSERT_TRUE(s.change.has_value());
  EXPECT_EQ(s.change->replica_id, 3u);
  EXPECT_EQ(map.NodeOfReplicaId(0, 3), there);  // the learner is addressable while it catches up
  EXPECT_EQ(map.ReplicaIdOf(0, there), std::optional<uint32_t>(3));
  ASSERT_TRUE(map.Apply(FinishMove{0, s.epoch}).ok());
  EXPECT_EQ(s.replica_ids, (std::vector<uint32_t>{0, 3, 2}));
  EXPECT_EQ(map.NodeOfReplicaId(0, 1), kNoNode);  // the replica that left is nobody's
  EXPECT_EQ(map.NodeOfReplicaId(0, 3), there);
  EXPECT_TRUE(map.CheckInvariants().ok());
  // The ids survive a round trip.
  auto decoded = ClusterMap::Decode(map.Encode());
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_TRUE(*decoded == map);
  // Moves back and forth (aborts included) until the ids run out.
  int moves = 0;
  for (uint32_t id = 4; id < kReplicaIdsMax; ++id, ++moves) {
    const NodeId from = map.ReplicaOf(0, 1);
    ASSERT_TRUE(map.Apply(BeginMove{0, s.epoch, 1, from, from == here ? there : here}).ok()) << "id " << id;
    EXPECT_EQ(s.change->replica_id, id);
    ASSERT_TRUE(map.Apply(id % 2 == 0 ? Command(AbortMove{0, s.epoch}) : Command(FinishMove{0, s.epoch})).ok());
  }
  EXPECT_EQ(moves, static_cast<int>(kReplicaIdsMax) - 4);
  EXPECT_EQ(s.next_replica_id, kReplicaIdsMax);
  const NodeId at = map.ReplicaOf(0, 1);
  ExpectRefused(map, BeginMove{0, s.epoch, 1, at, at == IdOf(1, 0) ? IdOf(1, 1) : IdOf(1, 0)}, Code::kInvalidArgument);
  EXPECT_TRUE(map.CheckInvariants().ok());
}

TEST(ClusterMap, RemovalNeedsAnEmptyNode) {
  ClusterMap map = MakeCluster(1, 2, 4);
  const NodeId n = IdOf(0, 0);
  ASSERT_GT(map.FindNode(n)->load.shards, 0u);
  ASSERT_TRUE(map.Apply(SetNodeState{n, NodeState::kDraining}).ok());
  ExpectRefused(map, SetNodeState{n, NodeState::kRemoved}, Code::kBusy);
  for (uint32_t s = 0; s < 4; ++s) {
    if (map.ReplicaOf(s, 0) != n) continue;
    ASSERT_TRUE(map.Apply(BeginMove{s, map.shards()[s].epoch, 0, n, IdOf(0, 1)}).ok());
    ExpectRefused(map, SetNodeState{n, NodeState::kRemoved}, Code::kBusy);
    ASSERT_TRUE(map.Apply(FinishMove{s, map.shards()[s].epoch}).ok());
  }
  EXPECT_EQ(map.FindNode(n)->load.shards, 0u);
  ASSERT_TRUE(map.Apply(SetNodeState{n, NodeState::kRemoved}).ok());
  ExpectRefused(map, SetNodeState{n, NodeState::kUp}, Code::kInvalidArgument);
  ExpectRefused(map, AddNode{n, 0, "tcp://x:1", "tcp://x:2"}, Code::kInvalidArgument);
}

TEST(ClusterMap, LoadReportsAndLeaders) {
  ClusterMap map = MakeCluster(2, 2, 4);
  const NodeId holder = map.ReplicaOf(1, 0);
  const NodeId stranger = holder == IdOf(0, 0) ? IdOf(0, 1) : IdOf(0, 0);
  ExpectRefused(map, ReportLoad{stranger, {{1, 100}}}, Code::kInvalidArgument);
  ExpectRefused(map, ReportLoad{holder, {{9, 100}}}, Code::kNotFound);
  ExpectRefused(map, ReportLoad{777, {}}, Code::kNotFound);
  ASSERT_TRUE(map.Apply(ReportLoad{holder, {{1, 5000}}}).ok());
  EXPECT_EQ(map.shards()[1].bytes, 5000u);
  EXPECT_GE(map.FindNode(holder)->load.bytes, 5000u);
  EXPECT_GE(map.FindNode(map.ReplicaOf(1, 1))->load.bytes, 5000u);
  ASSERT_TRUE(map.CheckInvariants().ok());

  const ShardPlacement& s = map.shards()[1];
  const RegionId other_region = s.leader_region == 0 ? 1 : 0;
  const uint32_t leaders_before = map.FindNode(s.replicas[other_region])->load.leaders;
  ExpectRefused(map, SetLeader{1, s.epoch, 5}, Code::kNotFound);
  ExpectRefused(map, SetLeader{1, s.epoch + 3, other_region}, Code::kConflict);
  ASSERT_TRUE(map.Apply(SetLeader{1, map.shards()[1].epoch, other_region}).ok());
  EXPECT_EQ(map.shards()[1].leader_region, other_region);
  EXPECT_EQ(map.FindNode(map.LeaderOf(1))->load.leaders, leaders_before + 1);
  ASSERT_TRUE(map.CheckInvariants().ok());
  // A leader must be on an up node.
  const NodeId back = map.ReplicaOf(1, 1 - other_region);
  ASSERT_TRUE(map.Apply(SetNodeState{back, NodeState::kSuspect}).ok());
  ExpectRefused(map, SetLeader{1, map.shards()[1].epoch, 1 - other_region}, Code::kInvalidArgument);

  ExpectRefused(map, SetPreferredLeader{1, 9}, Code::kNotFound);
  ASSERT_TRUE(map.Apply(SetPreferredLeader{1, 0}).ok());
  EXPECT_EQ(map.shards()[1].preferred_leader, std::optional<RegionId>(0));
  ASSERT_TRUE(map.Apply(SetPreferredLeader{1, std::nullopt}).ok());
  EXPECT_FALSE(map.shards()[1].preferred_leader.has_value());
}

TEST(ClusterMap, InitShardsIsValidated) {
  ClusterMap map;
  ExpectRefused(map, InitShards{{ShardPlacement{}}}, Code::kInvalidArgument);  // no regions
  ASSERT_TRUE(map.Apply(AddRegion{"a"}).ok());
  ASSERT_TRUE(map.Apply(AddRegion{"b"}).ok());
  ASSERT_TRUE(map.Apply(AddNode{1, 0, "tcp://1:1", "tcp://1:2"}).ok());
  ASSERT_TRUE(map.Apply(AddNode{2, 1, "tcp://2:1", "tcp://2:2"}).ok());
  ShardPlacement p;
  p.replicas = {1, 2};
  ExpectRefused(map, InitShards{{p}}, Code::kInvalidArgument);  // nodes still joining
  ASSERT_TRUE(map.Apply(SetNodeState{1, NodeState::kUp}).ok());
  ASSERT_TRUE(map.Apply(SetNodeState{2, NodeState::kUp}).ok());
  ExpectRefused(map, InitShards{}, Code::kInvalidArgument);
  ShardPlacement swapped = p;
  swapped.replicas = {2, 1};
  ExpectRefused(map, InitShards{{swapped}}, Code::kInvalidArgument);
  ShardPlacement short_set = p;
  short_set.replicas = {1};
  ExpectRefused(map, InitShards{{short_set}}, Code::kInvalidArgument);
  ShardPlacement bad_leader = p;
  bad_leader.leader_region = 2;
  ExpectRefused(map, InitShards{{bad_leader}}, Code::kNotFound);
  ShardPlacement moving = p;
  moving.change = ReplicaChange{0, 1, 2};
  ExpectRefused(map, InitShards{{moving}}, Code::kInvalidArgument);
  ASSERT_TRUE(map.Apply(InitShards{{p, p}}).ok());
  EXPECT_EQ(map.FindNode(1)->load.shards, 2u);
  EXPECT_EQ(map.FindNode(1)->load.leaders, 2u);
}

TEST(ClusterMap, ShardOfIsTheEnginesHash) {
  ClusterMap map = MakeCluster(1, 1, 256);
  for (std::string key : {"a", "user:42", "", "\xff\x00z", "a much longer key than the others"}) {
    EXPECT_EQ(map.ShardOf(key), crdt::Fnv1a64(key) % 256) << key;
  }
}

TEST(ClusterMap, Policy) {
  ClusterMap map;
  ASSERT_TRUE(map.Apply(SetPolicyRule{"cart:", Mode::kSet}).ok());
  ASSERT_TRUE(map.Apply(SetPolicyRule{"", Mode::kLww}).ok());
  EXPECT_EQ(map.policy().Lookup("cart:1"), Mode::kSet);
  EXPECT_EQ(map.policy().Lookup("x"), Mode::kLww);
  ExpectRefused(map, SetPolicyRule{std::string(4097, 'k'), Mode::kStrong}, Code::kKeyTooLarge);
  ExpectRefused(map, RemovePolicyRule{"nope"}, Code::kNotFound);
  ASSERT_TRUE(map.Apply(RemovePolicyRule{"cart:"}).ok());
  EXPECT_EQ(map.policy().Lookup("cart:1"), Mode::kLww);
}

// Policy::Under keeps exactly what decides keys under a prefix (a policy-check carries it
// between nodes): every key under the prefix gets the same mode from both.
RC_GTEST_PROP(ClusterMapProps, PolicyUnderDecidesKeysUnderThePrefixAlike, ()) {
  // Short strings over a small alphabet, so prefixes, rules and keys overlap often.
  const auto text = rc::gen::container<std::string>(*rc::gen::inRange(0, 5), rc::gen::elementOf(std::string("ab/")));
  Policy policy(*rc::gen::elementOf(std::vector<Mode>{Mode::kStrong, Mode::kLww, Mode::kCounter}));
  const int rules = *rc::gen::inRange(0, 12);
  for (int i = 0; i < rules; ++i) {
    (void)policy.Set(*text, *rc::gen::elementOf(std::vector<Mode>{Mode::kStrong, Mode::kLww, Mode::kSet}));
  }
  const std::string prefix = *text;
  const Policy under = policy.Under(prefix);
  for (const auto& [rule, mode] : under.rules()) RC_ASSERT(rule.size() > prefix.size() && rule.starts_with(prefix));
  for (int i = 0; i < 20; ++i) {
    const std::string key = prefix + *text;
    RC_ASSERT(under.Lookup(key) == policy.Lookup(key));
  }
}

ClusterMap BusyCluster() {
  ClusterMap map = MakeCluster(3, 3, 16);
  EXPECT_TRUE(map.Apply(SetPolicyRule{"s:", Mode::kStrong}).ok());
  EXPECT_TRUE(map.Apply(SetPolicyRule{"c:", Mode::kCounter}).ok());
  EXPECT_TRUE(map.Apply(ReportLoad{map.ReplicaOf(3, 0), {{3, 123456}}}).ok());
  const ShardPlacement& s = map.shards()[5];
  const NodeId from = s.replicas[2];
  const NodeId to = from == IdOf(2, 0) ? IdOf(2, 1) : IdOf(2, 0);
  EXPECT_TRUE(map.Apply(BeginMove{5, s.epoch, 2, from, to}).ok());
  EXPECT_TRUE(map.Apply(SetNodeState{IdOf(1, 2), NodeState::kSuspect}).ok());
  EXPECT_TRUE(map.Apply(AddNode{IdOf(0, 9), 0, "tcp://new:1", "tcp://new:2"}).ok());
  return map;
}

TEST(ClusterMap, EncodeDecodeRoundTrip) {
  const ClusterMap map = BusyCluster();
  const std::string bytes = map.Encode();
  auto decoded = ClusterMap::Decode(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_TRUE(*decoded == map);
  EXPECT_EQ(decoded->Encode(), bytes);
  // Unaligned input decodes alike.
  std::string shifted = "x" + bytes;
  auto unaligned = ClusterMap::Decode(std::string_view(shifted).substr(1));
  ASSERT_TRUE(unaligned.ok());
  EXPECT_TRUE(*unaligned == map);
}

std::vector<Command> EveryCommand() {
  ShardPlacement p;
  p.replicas = {1, 2, 3};
  p.preferred_leader = 2;
  p.leader_region = 1;
  p.bytes = 77;
  ShardPlacement q = p;
  q.preferred_leader.reset();
  return {AddRegion{"eu-west"},
          AddNode{7, 2, "tcp://10.0.0.7:7000", "tcp://10.0.0.7:7001"},
          SetNodeState{7, NodeState::kDraining},
          ReportLoad{7, {{1, 10}, {2, 1ull << 40}}},
          InitShards{{p, q}},
          BeginMove{3, 9, 1, 4, 5},
          FinishMove{3, 10},
          AbortMove{3, 10},
          SetPreferredLeader{3, 2},
          SetPreferredLeader{3, std::nullopt},
          SetLeader{3, 11, 0},
          SetPolicyRule{std::string("a\0b", 3), Mode::kMvReg},
          RemovePolicyRule{"a"},
          ReleaseReplica{3, 7}};
}

TEST(ClusterMap, CommandRoundTrip) {
  for (const Command& c : EveryCommand()) {
    const std::string bytes = EncodeCommand(c);
    auto decoded = DecodeCommand(bytes);
    ASSERT_TRUE(decoded.ok()) << CommandName(c) << ": " << decoded.status().ToString();
    EXPECT_EQ(decoded->index(), c.index());
    EXPECT_EQ(EncodeCommand(*decoded), bytes) << CommandName(c);
  }
  const Heartbeat hb{12, 0xdeadbeefcafe, 99};
  auto decoded = DecodeHeartbeat(EncodeHeartbeat(hb));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, hb);
}

// A cut buffer fails verification, unless the cut removed only the trailing alignment
// padding that FlatBuffers leaves after the first object it wrote: then it decodes to the very
// same value.
TEST(ClusterMap, TruncatedBuffersAreRejected) {
  const ClusterMap map = BusyCluster();
  const std::string map_bytes = map.Encode();
  size_t accepted = 0;
  for (size_t n = 0; n < map_bytes.size(); ++n) {
    auto m = ClusterMap::Decode(std::string_view(map_bytes.data(), n));
    if (m.ok()) {
      ++accepted;
      EXPECT_GE(n, map_bytes.size() - 8) << "cut at " << n;
      EXPECT_TRUE(*m == map);
    } else {
      EXPECT_EQ(m.status().code(), Code::kCorruption) << "cut at " << n;
    }
  }
  for (const Command& c : EveryCommand()) {
    const std::string full = EncodeCommand(c);
    for (size_t n = 0; n < full.size(); ++n) {
      auto d = DecodeCommand(std::string_view(full.data(), n));
      if (d.ok()) {
        ++accepted;
        EXPECT_GE(n, full.size() - 8) << CommandName(c) << " cut at " << n;
        EXPECT_EQ(EncodeCommand(*d), full) << CommandName(c) << " cut at " << n;
      } else {
        EXPECT_EQ(d.status().code(), Code::kCorruption) << CommandName(c) << " cut at " << n;
      }
    }
  }
  const std::string hb = EncodeHeartbeat({1, 2, 3});
  for (size_t n = 0; n < hb.size(); ++n) {
    auto d = DecodeHeartbeat(std::string_view(hb.data(), n));
    if (d.ok()) {
      ++accepted;
      EXPECT_EQ(*d, (Heartbeat{1, 2, 3}));
    }
  }
  EXPECT_LT(accepted, 64u);
}

TEST(ClusterMap, OversizeBuffersAreRejected) {
  std::string big(kCommandBytesMax + 1, '\0');
  EXPECT_EQ(DecodeCommand(big).status().code(), Code::kCorruption);
  EXPECT_EQ(DecodeHeartbeat(std::string(2048, '\0')).status().code(), Code::kCorruption);
}

// Random bytes and random corruptions of valid buffers never crash a decoder; whatever a
// decoder accepts is a well-formed map or command.
RC_GTEST_PROP(ClusterMapProps, GarbageNeverCrashesDecode, ()) {
  static const std::string map_bytes = BusyCluster().Encode();
  static const std::vector<Command> commands = EveryCommand();
  const int kind = *rc::gen::inRange(0, 3);
  std::string bytes;
  if (kind == 0) {
    bytes = *rc::gen::container<std::string>(rc::gen::arbitrary<char>());
  } else if (kind == 1) {
    bytes = map_bytes;
  } else {
    bytes = EncodeCommand(commands[*rc::gen::inRange<size_t>(0, commands.size())]);
  }
  const int flips = *rc::gen::inRange(1, 8);
  for (int i = 0; i < flips && !bytes.empty(); ++i) {
    bytes[*rc::gen::inRange<size_t>(0, bytes.size())] ^= static_cast<char>(*rc::gen::inRange(1, 256));
  }
  auto m = ClusterMap::Decode(bytes);
  if (m.ok()) RC_ASSERT(m->CheckInvariants().ok());
  auto c = DecodeCommand(bytes);
  if (c.ok()) RC_ASSERT(DecodeCommand(EncodeCommand(*c)).ok());
  (void)DecodeHeartbeat(bytes);
}

// Random command sequences: the maintained loads always match the placement, a refused
// command changes nothing, an applied one bumps the version by one, and the map always
// survives an encode/decode round trip.
RC_GTEST_PROP(ClusterMapProps, RandomCommandsKeepInvariants, ()) {
  ClusterMap map = MakeCluster(3, 3, 12);
  const int steps = *rc::gen::inRange(1, 200);
  for (int i = 0; i < steps; ++i) {
    const uint32_t shard = *rc::gen::inRange<uint32_t>(0, 13);
    const RegionId region = *rc::gen::inRange<uint32_t>(0, 4);
    const NodeId node = IdOf(*rc::gen::inRange<uint32_t>(0, 3), *rc::gen::inRange<uint32_t>(0, 4));
    const NodeId other = IdOf(*rc::gen::inRange<uint32_t>(0, 3), *rc::gen::inRange<uint32_t>(0, 4));
    const uint64_t epoch = shard < 12 ? map.shards()[shard].epoch + *rc::gen::inRange(-1, 2) : 1;
    Command c;
    switch (*rc::gen::inRange(0, 8)) {
      case 0: c = SetNodeState{node, static_cast<NodeState>(*rc::gen::inRange(0, 6))}; break;
      case 1: c = ReportLoad{node, {{shard, *rc::gen::inRange<uint64_t>(0, 1u << 30)}}}; break;
      case 2: c = BeginMove{shard, epoch, region, shard < 12 && region < 3 ? map.ReplicaOf(shard, region) : node, other}; break;
      case 3: c = FinishMove{shard, epoch}; break;
      case 4: c = AbortMove{shard, epoch}; break;
      case 5: c = SetLeader{shard, epoch, region}; break;
      case 6: c = SetPreferredLeader{shard, region}; break;
      default: c = AddNode{node, region, "tcp://n:1", "tcp://n:2"}; break;
    }
    const std::string before = map.Encode();
    const uint64_t version = map.version();
    const Status checked = map.Check(c);
    const Status s = map.Apply(c);
    RC_ASSERT(s.code() == checked.code());
    if (s.ok()) {
      RC_ASSERT(map.version() == version || map.version() == version + 1);
    } else {
      RC_ASSERT(map.version() == version);
      RC_ASSERT(map.Encode() == before);
    }
    RC_ASSERT(map.CheckInvariants().ok());
    // Decoding a command and applying it is the same as applying it.
    auto again = DecodeCommand(EncodeCommand(c));
    RC_ASSERT(again.ok());
  }
  auto decoded = ClusterMap::Decode(map.Encode());
  RC_ASSERT(decoded.ok());
  RC_ASSERT(*decoded == map);
}

}  // namespace
}  // namespace geokv::placement
