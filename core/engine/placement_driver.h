// The placement driver: what the metadata leader proposes to keep the shards' replicas and
// leaderships spread evenly over the nodes of each region (issue 12). A pure function of the
// ClusterMap: the same map and options give the same commands, in the same order.
//
// Rules (docs/placement.md):
//  * Leadership. A shard's leader should be its preferred region's replica when that node is
//    `up`; otherwise its current region's when that node is up; otherwise the up replica
//    whose node leads fewest shards. A SetLeader is proposed to get there (at most
//    leader_transfers_max per plan). Nodes that are not up (suspect, down, draining) lose
//    their leaderships first, before their replicas move.
//  * Evacuation. A replica on a `down` or `draining` node moves to an `up` node of the same
//    region (down first: it is redundancy lost). A leader's replica waits until leadership
//    has moved away, unless no other replica is up to take it.
//  * Balance. Within each region, among `up` nodes only: while the shard counts of two nodes
//    differ by more than one, a replica moves from a fuller node to an emptier one; once they
//    are within one and while some node's bytes stray more than bytes_tolerance from its
//    region's mean (or leaders differ by more than one), a move is proposed only when it
//    lowers the imbalance of leaders and bytes (sum of squares, weighted; bytes in mean
//    shard sizes) by at least min_gain without widening the shard counts, and when no single move does, an exchange of two replicas
//    between the region's most and least loaded nodes (by bytes, then by leaders). Each
//    change lowers that potential, so the driver never oscillates.
//  * Rate limits. At most moves_in_flight_max replica changes in flight cluster-wide, at
//    most node_moves_max involving any one node (a down node, which serves nothing, is not
//    held to it as a source), one per shard (ClusterMap refuses a second);
//    the plan counts those already in flight in the map.
// Nodes that are joining, suspect or removed are neither sources nor targets; the driver never
// moves a replica to a node that is not up.
//
// Pure functions of their arguments (no I/O, clock or randomness): safe to call from any
// thread on a map no one modifies meanwhile. The engine uses InitialPlacement for its
// genesis map, the leadership rules of Plan on the metadata leader, and a LoadReporter per
// node (docs/placement.md).
#ifndef GEOKV_CORE_ENGINE_PLACEMENT_DRIVER_H_
#define GEOKV_CORE_ENGINE_PLACEMENT_DRIVER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "core/engine/cluster_map.h"

namespace geokv::placement {

struct DriverOptions {
  uint32_t moves_in_flight_max = 8;   // replica changes in flight, cluster-wide
  uint32_t node_moves_max = 2;        // replica changes in flight involving one up or draining node
  uint32_t leader_transfers_max = 32; // SetLeader commands per plan
  double leader_weight = 1.0;         // imbalance weights (shard count weighs 1)
  double bytes_weight = 1.0;          // bytes are measured in mean shard sizes
  double min_gain = 0.5;              // a balancing move must lower the potential this much
  // Once shard counts are within one, moves for bytes and leaders are made only while a
  // node's bytes stray from its region's mean by more than this fraction, or its leaders
  // from another's by more than one.
  double bytes_tolerance = 0.05;
};

// The shards of a new cluster: every shard gets one replica on an `up` node of each region,
// spread greedily so that shard counts per node differ by at most one and leaders nearly so;
// a shard's leader is its preferred region (preferred[shard]; empty vector: none preferred),
// else region shard % regions. kInvalidArgument when a region has no up node, the count is
// out of range or `preferred` has the wrong size or a bad region.
StatusOr<InitShards> InitialPlacement(const ClusterMap& map, uint32_t shards,
                                      const std::vector<std::optional<RegionId>>& preferred);

// The next commands to propose (SetLeader and BeginMove), each valid against `map` as it
// stands (they touch distinct shards). Empty when the placement is balanced and nothing
// needs to move, or the rate limits are reached.
std::vector<Command> Plan(const ClusterMap& map, const DriverOptions& options = {});

// Per region: the spread of shards, bytes and leaders over its `up` nodes.
struct Spread {
  double min = 0, max = 0, mean = 0, stddev = 0;
};
struct RegionBalance {
  RegionId region = 0;
  uint32_t nodes = 0;  // up nodes counted
  Spread shards, bytes, leaders;
};
std::vector<RegionBalance> Balance(const ClusterMap& map);

// Load reporting: which shard sizes a node commits (ReportLoad) so that the driver plans on
// sizes close to the truth without every node committing every size every few seconds.
// A size is due once it differs from the size the map holds by more than bytes_change_min
// mean shard sizes (the driver's unit of bytes), or once this node has not reported it for
// report_age_max_us (a shard it has not reported since it began leading it is due at once).
// A report carries every due size and, since it is committed anyway, the sizes half-way
// there (more than half the change, or older than half the age); nothing is committed when
// nothing is due.
//
// Why these defaults: the driver moves replicas for bytes only while a node strays more
// than bytes_tolerance (5%) from its region's mean. A node holds about (its bytes / mean
// shard size) shards, so sizes each within half a tolerance (2.5%) of a mean shard keep the
// map's bytes of every node within 2.5% of the truth, whatever its shard count: once the
// driver is done, no node strays more than 7.5% from the mean of what the shards really
// hold while they only grow (10% if some shrink as much). The age bound is a backstop (the change rule already bounds the error; a report
// that did not commit is simply due again): every size at most 10 minutes old, which costs
// about one entry per shard per 10 minutes, most of them riding along in reports that go
// out anyway.
struct ReportOptions {
  double bytes_change_min = 0.025;          // in mean shard sizes
  int64_t report_age_max_us = 600'000'000;  // 10 minutes
};

// One node's load reporter, run by the node each time it measures the shards it leads.
// Time enters as a value. Value type; thread-compatible.
class LoadReporter {
 public:
  explicit LoadReporter(NodeId node, ReportOptions options = {}) : node_(node), options_(options) {}

  // `sizes`: the current sizes of the shards the node leads (others are forgotten; a shard
  // the map says the node does not hold is skipped, since ReportLoad would refuse it).
  // Returns the ReportLoad to commit now, or nothing; the sizes it carries count as reported
  // at now_us.
  std::optional<ReportLoad> Report(const ClusterMap& map, int64_t now_us, const std::vector<ShardBytes>& sizes);

 private:
  NodeId node_;
  ReportOptions options_;
  std::map<uint32_t, int64_t> reported_at_us_;  // shard -> when this node last reported it
};

}  // namespace geokv::placement

#endif  // GEOKV_CORE_ENGINE_PLACEMENT_DRIVER_H_
