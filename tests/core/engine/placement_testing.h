// Test helpers for the placement model: a cluster of R regions x N up nodes with S shards,
// and a driver loop that applies every planned command and finishes the moves.
#ifndef GEOKV_TESTS_CORE_ENGINE_PLACEMENT_TESTING_H_
#define GEOKV_TESTS_CORE_ENGINE_PLACEMENT_TESTING_H_

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/engine/cluster_map.h"
#include "core/engine/placement_driver.h"

namespace geokv::placement::testing {

// Node ids: region * 1000 + index.
inline NodeId IdOf(RegionId region, uint32_t index) { return region * 1000 + index; }

inline void AddUpNode(ClusterMap& map, RegionId region, uint32_t index) {
  const NodeId id = IdOf(region, index);
  const std::string host = "tcp://r" + std::to_string(region) + "n" + std::to_string(index);
  ASSERT_TRUE(map.Apply(AddNode{id, region, host + ":7000", host + ":7001"}).ok());
  ASSERT_TRUE(map.Apply(SetNodeState{id, NodeState::kUp}).ok());
}

// Every third shard has no preferred leader region; the others prefer shard % regions.
inline std::vector<std::optional<RegionId>> Preferences(uint32_t regions, uint32_t shards) {
  std::vector<std::optional<RegionId>> out(shards);
  for (uint32_t s = 0; s < shards; ++s) {
    if (s % 3 != 0) out[s] = s % regions;
  }
  return out;
}

inline ClusterMap MakeCluster(uint32_t regions, uint32_t nodes_per_region, uint32_t shards) {
  ClusterMap map;
  for (RegionId r = 0; r < regions; ++r) {
    EXPECT_TRUE(map.Apply(AddRegion{"region-" + std::to_string(r)}).ok());
  }
  for (RegionId r = 0; r < regions; ++r) {
    for (uint32_t i = 0; i < nodes_per_region; ++i) AddUpNode(map, r, i);
  }
  auto init = InitialPlacement(map, shards, Preferences(regions, shards));
  EXPECT_TRUE(init.ok()) << init.status().ToString();
  EXPECT_TRUE(map.Apply(*init).ok());
  return map;
}

// Plans, applies, and finishes every move, until the plan is empty (or `rounds_max`).
// Checks the rate limits and that every planned command applies. Returns the rounds used.
inline int Drive(ClusterMap& map, const DriverOptions& options, int rounds_max = 10'000) {
  for (int round = 0; round < rounds_max; ++round) {
    std::vector<Command> plan = Plan(map, options);
    if (plan.empty()) return round;
    for (const Command& c : plan) {
      Status s = map.Apply(c);
      EXPECT_TRUE(s.ok()) << CommandName(c) << ": " << s.ToString();
      if (!s.ok()) return -1;
    }
    uint32_t in_flight = 0;
    std::map<NodeId, uint32_t> per_node;
    for (const ShardPlacement& s : map.shards()) {
      if (!s.change) continue;
      ++in_flight;
      // A down source serves nothing and is not held to the limit.
      if (map.FindNode(s.change->from)->state != NodeState::kDown) ++per_node[s.change->from];
      ++per_node[s.change->to];
    }
    EXPECT_LE(in_flight, options.moves_in_flight_max);
    for (const auto& [node, n] : per_node) { EXPECT_LE(n, options.node_moves_max) << "node " << node; }
    for (uint32_t i = 0; i < map.shards().size(); ++i) {
      const ShardPlacement& s = map.shards()[i];
      if (s.change) { EXPECT_TRUE(map.Apply(FinishMove{i, s.epoch}).ok()); }
    }
    EXPECT_TRUE(map.CheckInvariants().ok()) << map.CheckInvariants().ToString();
  }
  return rounds_max;
}

}  // namespace geokv::placement::testing

#endif  // GEOKV_TESTS_CORE_ENGINE_PLACEMENT_TESTING_H_
