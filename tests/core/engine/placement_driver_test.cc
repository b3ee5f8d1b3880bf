// The placement driver: initial placement, convergence to balance, draining, replacement of
// down nodes, rate limits, one change per shard, determinism; the load reporter.
#include "core/engine/placement_driver.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <random>

#include "tests/core/engine/placement_testing.h"

namespace geokv::placement {
namespace {

using testing::AddUpNode;
using testing::Drive;
using testing::IdOf;
using testing::MakeCluster;

// Random shard sizes: most small, a few large (log-uniform over 1 MiB .. 1 GiB).
void ReportRandomSizes(ClusterMap& map, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> exponent(20, 30);
  for (uint32_t s = 0; s < map.shards().size(); ++s) {
    const uint64_t bytes = static_cast<uint64_t>(std::pow(2.0, exponent(rng)));
    ASSERT_TRUE(map.Apply(ReportLoad{map.ReplicaOf(s, 0), {{s, bytes}}}).ok());
  }
}

void ExpectShardsBalanced(const ClusterMap& map, double spread_max = 1) {
  for (const RegionBalance& b : Balance(map)) {
    EXPECT_LE(b.shards.max - b.shards.min, spread_max) << "region " << b.region;
  }
}

void ExpectPreferredLeadersRespected(const ClusterMap& map) {
  for (uint32_t i = 0; i < map.shards().size(); ++i) {
    const ShardPlacement& s = map.shards()[i];
    if (!s.preferred_leader) continue;
    if (map.FindNode(s.replicas[*s.preferred_leader])->state != NodeState::kUp) continue;
    EXPECT_EQ(s.leader_region, *s.preferred_leader) << "shard " << i;
  }
}

TEST(PlacementDriver, InitialPlacementIsBalanced) {
  ClusterMap map = MakeCluster(5, 20, 1024);
  ExpectShardsBalanced(map);
  for (const RegionBalance& b : Balance(map)) {
    EXPECT_EQ(b.nodes, 20u);
    EXPECT_LE(b.leaders.max - b.leaders.min, 1) << "region " << b.region;
  }
  ExpectPreferredLeadersRespected(map);
  // Nothing to do on a fresh, empty cluster.
  EXPECT_TRUE(Plan(map).empty());
}

TEST(PlacementDriver, InitialPlacementErrors) {
  ClusterMap map;
  EXPECT_EQ(InitialPlacement(map, 4, {}).status().code(), Code::kInvalidArgument);
  ASSERT_TRUE(map.Apply(AddRegion{"a"}).ok());
  EXPECT_EQ(InitialPlacement(map, 4, {}).status().code(), Code::kInvalidArgument);  // no up node
  AddUpNode(map, 0, 0);
  EXPECT_EQ(InitialPlacement(map, 0, {}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(InitialPlacement(map, 4, {std::nullopt}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(InitialPlacement(map, 1, {RegionId{3}}).status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(InitialPlacement(map, 1, {RegionId{0}}).ok());
}

TEST(PlacementDriver, NewNodesFillUp) {
  ClusterMap map = MakeCluster(3, 8, 256);
  ReportRandomSizes(map, 1);
  for (RegionId r = 0; r < 3; ++r) {
    for (uint32_t i = 8; i < 10 + r; ++i) AddUpNode(map, r, i);
  }
  DriverOptions options;
  const int rounds = Drive(map, options);
  ASSERT_GT(rounds, 0);
  ASSERT_LT(rounds, 10'000);
  ExpectShardsBalanced(map);
  ExpectPreferredLeadersRespected(map);
  for (const RegionBalance& b : Balance(map)) {
    EXPECT_LE(b.leaders.max - b.leaders.min, 2) << "region " << b.region;
    EXPECT_LE(b.bytes.max, 1.1 * b.bytes.mean) << "region " << b.region;
    EXPECT_GE(b.bytes.min, 0.9 * b.bytes.mean) << "region " << b.region;
  }
}

TEST(PlacementDriver, UnevenStartConverges) {
  // All of a region's shards on one node, then nine empty nodes join.
  ClusterMap map = MakeCluster(2, 1, 100);
  for (uint32_t i = 1; i < 10; ++i) AddUpNode(map, 1, i);
  DriverOptions options;
  options.moves_in_flight_max = 3;
  options.node_moves_max = 1;
  ASSERT_GT(Drive(map, options), 0);
  ExpectShardsBalanced(map);
  EXPECT_EQ(Balance(map)[1].shards.max, 10);
}

TEST(PlacementDriver, DrainingEmptiesANode) {
  ClusterMap map = MakeCluster(3, 5, 120);
  ReportRandomSizes(map, 2);
  const NodeId drained = IdOf(1, 2);
  ASSERT_GT(map.FindNode(drained)->load.leaders, 0u);
  ASSERT_TRUE(map.Apply(SetNodeState{drained, NodeState::kDraining}).ok());
  ASSERT_GT(Drive(map, DriverOptions{}), 0);
  EXPECT_EQ(map.FindNode(drained)->load, NodeLoad{});
  ASSERT_TRUE(map.Apply(SetNodeState{drained, NodeState::kRemoved}).ok());
  ExpectShardsBalanced(map);
  ExpectPreferredLeadersRespected(map);
}

TEST(PlacementDriver, DownNodesAreReplacedLeadersFirst) {
  ClusterMap map = MakeCluster(3, 4, 60);
  const NodeId dead = IdOf(0, 1);
  ASSERT_GT(map.FindNode(dead)->load.leaders, 0u);
  ASSERT_TRUE(map.Apply(SetNodeState{dead, NodeState::kSuspect}).ok());
  // Suspect: leaderships move, replicas stay.
  std::vector<Command> plan = Plan(map);
  for (const Command& c : plan) {
    if (auto* m = std::get_if<BeginMove>(&c)) { EXPECT_NE(m->from, dead); }
    ASSERT_TRUE(map.Apply(c).ok());
  }
  EXPECT_EQ(map.FindNode(dead)->load.leaders, 0u);
  EXPECT_GT(map.FindNode(dead)->load.shards, 0u);
  ASSERT_TRUE(map.Apply(SetNodeState{dead, NodeState::kDown}).ok());
  ASSERT_GT(Drive(map, DriverOptions{}), 0);
  EXPECT_EQ(map.FindNode(dead)->load, NodeLoad{});
  ExpectShardsBalanced(map);
  // It comes back: it fills up again.
  ASSERT_TRUE(map.Apply(SetNodeState{dead, NodeState::kUp}).ok());
  ASSERT_GT(Drive(map, DriverOptions{}), 0);
  ExpectShardsBalanced(map);
  ExpectPreferredLeadersRespected(map);
}

TEST(PlacementDriver, NodesThatAreNotUpAreNeitherSourcesNorTargets) {
  ClusterMap map = MakeCluster(1, 4, 40);
  AddUpNode(map, 0, 4);  // empty
  ASSERT_TRUE(map.Apply(AddNode{IdOf(0, 5), 0, "tcp://j:1", "tcp://j:2"}).ok());  // joining
  ASSERT_TRUE(map.Apply(SetNodeState{IdOf(0, 1), NodeState::kSuspect}).ok());
  for (int round = 0; round < 50; ++round) {
    std::vector<Command> plan = Plan(map);
    for (const Command& c : plan) {
      if (auto* m = std::get_if<BeginMove>(&c)) {
        EXPECT_NE(m->to, IdOf(0, 5));
        EXPECT_NE(m->to, IdOf(0, 1));
        EXPECT_NE(m->from, IdOf(0, 1));
      }
      ASSERT_TRUE(map.Apply(c).ok());
    }
    for (uint32_t i = 0; i < map.shards().size(); ++i) {
      if (map.shards()[i].change) { ASSERT_TRUE(map.Apply(FinishMove{i, map.shards()[i].epoch}).ok()); }
    }
  }
  EXPECT_EQ(map.FindNode(IdOf(0, 5))->load.shards, 0u);
  EXPECT_EQ(map.FindNode(IdOf(0, 1))->load.shards, 10u);
}

TEST(PlacementDriver, RateLimitsAndOneChangePerShard) {
  ClusterMap map = MakeCluster(2, 2, 64);
  for (uint32_t i = 2; i < 8; ++i) AddUpNode(map, 0, i);
  DriverOptions options;
  options.moves_in_flight_max = 5;
  options.node_moves_max = 3;
  std::vector<Command> plan = Plan(map, options);
  std::set<uint32_t> shards;
  uint32_t moves = 0;
  for (const Command& c : plan) {
    if (auto* m = std::get_if<BeginMove>(&c)) {
      ++moves;
      EXPECT_TRUE(shards.insert(m->shard).second) << "two changes for shard " << m->shard;
    }
    ASSERT_TRUE(map.Apply(c).ok());
  }
  EXPECT_EQ(moves, 5u);
  // Those in flight count: nothing more until one finishes.
  EXPECT_TRUE(Plan(map, options).empty());
  for (uint32_t i = 0; i < map.shards().size(); ++i) {
    if (map.shards()[i].change) {
      ASSERT_TRUE(map.Apply(FinishMove{i, map.shards()[i].epoch}).ok());
      break;
    }
  }
  plan = Plan(map, options);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_TRUE(map.Apply(plan[0]).ok());
}

TEST(PlacementDriver, Deterministic) {
  auto run = [] {
    ClusterMap map = MakeCluster(3, 6, 200);
    ReportRandomSizes(map, 9);
    for (RegionId r = 0; r < 3; ++r) AddUpNode(map, r, 6);
    EXPECT_TRUE(map.Apply(SetNodeState{IdOf(2, 3), NodeState::kDraining}).ok());
    std::string trace;
    for (int round = 0; round < 200; ++round) {
      for (const Command& c : Plan(map)) {
        trace += EncodeCommand(c);
        EXPECT_TRUE(map.Apply(c).ok());
      }
      for (uint32_t i = 0; i < map.shards().size(); ++i) {
        if (map.shards()[i].change && (i + round) % 2 == 0) { EXPECT_TRUE(map.Apply(FinishMove{i, map.shards()[i].epoch}).ok()); }
      }
    }
    return trace + map.Encode();
  };
  EXPECT_EQ(run(), run());
}

// The shards `node` leads, at the sizes the map holds plus `grown` bytes each.
std::vector<ShardBytes> LedSizes(const ClusterMap& map, NodeId node, int64_t grown = 0) {
  std::vector<ShardBytes> out;
  for (uint32_t s = 0; s < map.shards().size(); ++s) {
    if (map.LeaderOf(s) != node) continue;
    out.push_back(ShardBytes{s, static_cast<uint64_t>(static_cast<int64_t>(map.shards()[s].bytes) + grown)});
  }
  return out;
}

std::vector<uint32_t> ShardsOf(const std::optional<ReportLoad>& report) {
  std::vector<uint32_t> out;
  if (report) {
    for (const ShardBytes& b : report->shards) out.push_back(b.shard);
  }
  return out;
}

TEST(LoadReporter, CommitsOnlyMaterialChangesAndBoundsTheAge) {
  constexpr uint64_t kGiB = 1u << 30;
  constexpr int64_t kMinute = 60'000'000;
  ClusterMap map = MakeCluster(2, 2, 12);
  const NodeId node = IdOf(0, 0);
  LoadReporter reporter(node, ReportOptions{.bytes_change_min = 0.025, .report_age_max_us = 10 * kMinute});
  // First: every shard it leads is due (the map's sizes are unknown to be fresh), and the
  // report applies.
  std::vector<ShardBytes> sizes = LedSizes(map, node);
  ASSERT_GE(sizes.size(), 3u);
  for (ShardBytes& b : sizes) b.bytes = kGiB;
  std::optional<ReportLoad> report = reporter.Report(map, 0, sizes);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->node, node);
  EXPECT_EQ(report->shards, sizes);
  ASSERT_TRUE(map.Apply(*report).ok());
  for (uint32_t s = 0; s < map.shards().size(); ++s) {
    if (map.LeaderOf(s) != node) { ASSERT_TRUE(map.Apply(ReportLoad{map.LeaderOf(s), {{s, kGiB}}}).ok()); }
  }
  // The mean shard is 1 GiB: 2.5% of it is 25.6 MiB. Unchanged, or changed by less: nothing.
  EXPECT_FALSE(reporter.Report(map, kMinute, LedSizes(map, node)).has_value());
  EXPECT_FALSE(reporter.Report(map, kMinute, LedSizes(map, node, 25 << 20)).has_value());
  EXPECT_FALSE(reporter.Report(map, kMinute, LedSizes(map, node, -(25 << 20))).has_value());
  // One shard grows (or shrinks) past the threshold: it alone is reported; another half-way
  // there rides along; one below half stays out.
  sizes = LedSizes(map, node);
  sizes[0].bytes += 26 << 20;
  sizes[1].bytes -= 13 << 20;
  sizes[2].bytes += 12 << 20;
  report = reporter.Report(map, 2 * kMinute, sizes);
  EXPECT_EQ(ShardsOf(report), (std::vector<uint32_t>{sizes[0].shard, sizes[1].shard}));
  sizes = LedSizes(map, node);
  sizes[0].bytes -= 26 << 20;
  EXPECT_EQ(ShardsOf(reporter.Report(map, 2 * kMinute, sizes)), (std::vector<uint32_t>{sizes[0].shard}));
  // Sizes not committed stay due: the check is against the map, not against what was sent.
  EXPECT_EQ(ShardsOf(reporter.Report(map, 3 * kMinute, sizes)), (std::vector<uint32_t>{sizes[0].shard}));
  // Age: 10 minutes after its last report a shard is due, even unchanged (sizes[2], last
  // reported at 0); the others, reported at 2 and 3 minutes, are past half the age and
  // ride along.
  EXPECT_FALSE(reporter.Report(map, 10 * kMinute - 1, LedSizes(map, node)).has_value());
  const std::vector<uint32_t> led = ShardsOf(ReportLoad{node, LedSizes(map, node)});
  EXPECT_EQ(ShardsOf(reporter.Report(map, 10 * kMinute, LedSizes(map, node))), led);
  EXPECT_FALSE(reporter.Report(map, 15 * kMinute - 1, LedSizes(map, node)).has_value());
  EXPECT_EQ(ShardsOf(reporter.Report(map, 20 * kMinute, LedSizes(map, node))), led);
}

TEST(LoadReporter, SkipsShardsNotHeldAndForgetsShardsNoLongerLed) {
  ClusterMap map = MakeCluster(2, 2, 8);
  const NodeId node = IdOf(0, 0);
  LoadReporter reporter(node);
  std::vector<ShardBytes> sizes = LedSizes(map, node, 1000);
  ASSERT_GE(sizes.size(), 2u);
  ASSERT_TRUE(map.Apply(*reporter.Report(map, 0, sizes)).ok());
  // A shard the map says the node does not hold (and one out of range) would make ReportLoad
  // refuse the whole report: skipped.
  uint32_t other = 0;
  while (map.ReplicaOf(other, 0) == node) ++other;
  std::vector<ShardBytes> with_others = sizes;
  with_others.push_back(ShardBytes{other, 1u << 30});
  with_others.push_back(ShardBytes{100, 1u << 30});
  EXPECT_FALSE(reporter.Report(map, 1, with_others).has_value());
  with_others[0].bytes += 1u << 30;
  std::optional<ReportLoad> report = reporter.Report(map, 2, with_others);
  EXPECT_EQ(ShardsOf(report), (std::vector<uint32_t>{sizes[0].shard}));
  ASSERT_TRUE(map.Apply(*report).ok());
  // A shard left out (the node no longer leads it) is forgotten: when it comes back, it is
  // due at once, since the node does not know how old the map's size is.
  sizes = LedSizes(map, node);
  const ShardBytes back = sizes.back();
  sizes.pop_back();
  EXPECT_FALSE(reporter.Report(map, 3, sizes).has_value());
  sizes.push_back(back);
  EXPECT_EQ(ShardsOf(reporter.Report(map, 4, sizes)), (std::vector<uint32_t>{back.shard}));
  // An unknown node reports nothing.
  EXPECT_FALSE(LoadReporter(9999).Report(map, 0, sizes).has_value());
}

// Random clusters and events (nodes joining, draining, going down and coming back, sizes
// changing), with moves finishing or aborting at random: every planned command applies, the
// limits hold, and once every node is up (or gone) and the driver has quiesced, each region's
// shard counts are within one.
RC_GTEST_PROP(PlacementDriverProps, RandomEventsThenBalance, ()) {
  const uint32_t regions = *rc::gen::inRange(1, 4);
  const uint32_t nodes = *rc::gen::inRange(1, 7);
  const uint32_t shard_count = *rc::gen::inRange(1, 100);
  ClusterMap map = MakeCluster(regions, nodes, shard_count);
  std::vector<uint32_t> next(regions, nodes);
  DriverOptions options;
  options.moves_in_flight_max = *rc::gen::inRange(1, 10);
  options.node_moves_max = *rc::gen::inRange(1, 4);
  const int steps = *rc::gen::inRange(0, 60);
  for (int step = 0; step < steps; ++step) {
    const RegionId r = *rc::gen::inRange<uint32_t>(0, regions);
    const NodeId n = IdOf(r, *rc::gen::inRange<uint32_t>(0, next[r]));
    switch (*rc::gen::inRange(0, 6)) {
      case 0: AddUpNode(map, r, next[r]++); break;
      case 1: (void)map.Apply(SetNodeState{n, NodeState::kDraining}); break;
      case 2: (void)map.Apply(SetNodeState{n, NodeState::kDown}); break;
      case 3: (void)map.Apply(SetNodeState{n, NodeState::kUp}); break;
      case 4: {
        const uint32_t s = *rc::gen::inRange<uint32_t>(0, shard_count);
        (void)map.Apply(ReportLoad{map.ReplicaOf(s, r), {{s, *rc::gen::inRange<uint64_t>(0, 1u << 30)}}});
        break;
      }
      default: break;
    }
    for (const Command& c : Plan(map, options)) RC_ASSERT(map.Apply(c).ok());
    uint32_t in_flight = 0;
    for (uint32_t i = 0; i < shard_count; ++i) {
      const ShardPlacement& s = map.shards()[i];
      if (!s.change) continue;
      ++in_flight;
      const int fate = *rc::gen::inRange(0, 3);
      if (fate == 0) (void)map.Apply(FinishMove{i, s.epoch});
      if (fate == 1) RC_ASSERT(map.Apply(AbortMove{i, s.epoch}).ok());
    }
    RC_ASSERT(in_flight <= options.moves_in_flight_max);
    RC_ASSERT(map.CheckInvariants().ok());
  }
  // Heal: every down node comes back or stays down, draining ones are emptied.
  for (int round = 0; round < 5000; ++round) {
    for (uint32_t i = 0; i < shard_count; ++i) {
      const ShardPlacement& s = map.shards()[i];
      if (s.change && !map.Apply(FinishMove{i, s.epoch}).ok()) RC_ASSERT(map.Apply(AbortMove{i, s.epoch}).ok());
    }
    std::vector<Command> plan = Plan(map, options);
    if (plan.empty()) break;
    for (const Command& c : plan) RC_ASSERT(map.Apply(c).ok());
  }
  RC_ASSERT(Plan(map, options).empty());
  for (const RegionBalance& b : Balance(map)) RC_ASSERT(b.nodes == 0 || b.shards.max - b.shards.min <= 1);
  // Nothing remains on a draining or down node that has an up peer in its region.
  for (const auto& [id, node] : map.nodes()) {
    if (node.state != NodeState::kDraining && node.state != NodeState::kDown) continue;
    if (Balance(map)[node.region].nodes == 0) continue;
    RC_ASSERT(node.load.shards == 0u);
  }
}

}  // namespace
}  // namespace geokv::placement
