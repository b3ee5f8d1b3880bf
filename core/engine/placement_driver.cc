#include "core/engine/placement_driver.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

namespace geokv::placement {

namespace {

struct Projected {
  int64_t shards = 0;
  double bytes = 0;
  int64_t leaders = 0;
  uint32_t moves = 0;  // replica changes in flight involving the node
};

bool IsUp(const ClusterMap& map, NodeId id) {
  const Node* n = map.FindNode(id);
  return n != nullptr && n->state == NodeState::kUp;
}

}  // namespace

StatusOr<InitShards> InitialPlacement(const ClusterMap& map, uint32_t shards,
                                      const std::vector<std::optional<RegionId>>& preferred) {
  const size_t regions = map.regions().size();
  if (regions == 0) return InvalidArgument("no regions");
  if (shards == 0 || shards > kShardsMax) return InvalidArgument("shard count must be 1.." + std::to_string(kShardsMax));
  if (!preferred.empty() && preferred.size() != shards) return InvalidArgument("one preferred region per shard");
  std::vector<std::vector<NodeId>> up(regions);
  for (const auto& [id, node] : map.nodes()) {
    if (node.state == NodeState::kUp) up[node.region].push_back(id);
  }
  for (RegionId r = 0; r < regions; ++r) {
    if (up[r].empty()) return InvalidArgument("region " + map.regions()[r].name + " has no up node");
  }
  InitShards out;
  out.shards.resize(shards);
  for (uint32_t s = 0; s < shards; ++s) {
    ShardPlacement& p = out.shards[s];
    if (!preferred.empty() && preferred[s]) {
      if (*preferred[s] >= regions) return InvalidArgument("shard " + std::to_string(s) + ": no preferred region");
      p.preferred_leader = preferred[s];
    }
    p.leader_region = p.preferred_leader.value_or(s % regions);
    p.replicas.assign(regions, kNoNode);
  }
  // Per region: the shards led there go round-robin over its nodes (leaders within one),
  // then the others each to the emptiest node (shard counts within one).
  for (RegionId r = 0; r < regions; ++r) {
    std::vector<uint32_t> count(up[r].size(), 0);
    size_t next = 0;
    for (ShardPlacement& p : out.shards) {
      if (p.leader_region != r) continue;
      p.replicas[r] = up[r][next];
      ++count[next];
      next = (next + 1) % up[r].size();
    }
    for (ShardPlacement& p : out.shards) {
      if (p.leader_region == r) continue;
      const size_t i = std::min_element(count.begin(), count.end()) - count.begin();
      p.replicas[r] = up[r][i];
      ++count[i];
    }
  }
  return out;
}

std::vector<Command> Plan(const ClusterMap& map, const DriverOptions& options) {
  std::vector<Command> out;
  const auto& shards = map.shards();
  const size_t regions = map.regions().size();
  if (shards.empty()) return out;

  std::map<NodeId, Projected> proj;
  for (const auto& [id, node] : map.nodes()) {
    proj[id] = Projected{node.load.shards, static_cast<double>(node.load.bytes), node.load.leaders, 0};
  }
  uint32_t in_flight = 0;
  for (const ShardPlacement& s : shards) {
    if (!s.change) continue;
    ++in_flight;
    Projected& from = proj[s.change->from];
    Projected& to = proj[s.change->to];
    ++from.moves;
    ++to.moves;
    --from.shards;
    ++to.shards;
    from.bytes -= static_cast<double>(s.bytes);
    to.bytes += static_cast<double>(s.bytes);
    if (s.change->region == s.leader_region) {
      --from.leaders;
      ++to.leaders;
    }
  }
  std::vector<bool> touched(shards.size(), false);

  // Leadership.
  uint32_t transfers = 0;
  for (uint32_t i = 0; i < shards.size() && transfers < options.leader_transfers_max; ++i) {
    const ShardPlacement& s = shards[i];
    if (s.change) continue;
    auto eligible = [&](RegionId r) { return IsUp(map, s.replicas[r]); };
    std::optional<RegionId> want;
    if (s.preferred_leader && eligible(*s.preferred_leader)) {
      want = s.preferred_leader;
    } else if (eligible(s.leader_region)) {
      want = s.leader_region;
    } else {
      for (RegionId r = 0; r < regions; ++r) {
        if (!eligible(r)) continue;
        if (!want || proj[s.replicas[r]].leaders < proj[s.replicas[*want]].leaders) want = r;
      }
    }
    if (!want || *want == s.leader_region) continue;
    --proj[s.replicas[s.leader_region]].leaders;
    ++proj[s.replicas[*want]].leaders;
    out.push_back(SetLeader{i, s.epoch, *want});
    touched[i] = true;
    ++transfers;
  }

  // Region-wide quantities: the up nodes, and the mean shard size (the unit of bytes).
  std::vector<std::vector<NodeId>> up(regions);
  std::vector<double> unit(regions, 1.0);
  for (const auto& [id, node] : map.nodes()) {
    if (node.state == NodeState::kUp) up[node.region].push_back(id);
  }
  {
    double total = 0;
    for (const ShardPlacement& s : shards) total += static_cast<double>(s.bytes);
    if (total > 0) std::fill(unit.begin(), unit.end(), total / static_cast<double>(shards.size()));
  }

  // The change in the weighted sum of squares when shard `s` moves from `d` to `t` in `r`.
  auto delta = [&](const ShardPlacement& s, RegionId r, NodeId d, NodeId t, double* d_shards) {
    const Projected& pd = proj[d];
    const Projected& pt = proj[t];
    *d_shards = 2.0 * static_cast<double>(pt.shards - pd.shards + 1);
    double dl = 0;
    if (s.leader_region == r) dl = 2.0 * static_cast<double>(pt.leaders - pd.leaders + 1);
    const double b = static_cast<double>(s.bytes) / unit[r];
    const double db = 2.0 * b * ((pt.bytes - pd.bytes) / unit[r] + b);
    return options.leader_weight * dl + options.bytes_weight * db;
  };
  auto begin = [&](uint32_t i, RegionId r, NodeId to) {
    const ShardPlacement& s = shards[i];
    const NodeId from = s.replicas[r];
    out.push_back(BeginMove{i, s.epoch, r, from, to});
    touched[i] = true;
    ++in_flight;
    Projected& pf = proj[from];
    Projected& pt = proj[to];
    ++pf.moves;
    ++pt.moves;
    --pf.shards;
    ++pt.shards;
    pf.bytes -= static_cast<double>(s.bytes);
    pt.bytes += static_cast<double>(s.bytes);
    if (s.leader_region == r) {
      --pf.leaders;
      ++pt.leaders;
    }
  };

  // Evacuation: down nodes first, then draining ones.
  for (NodeState leaving : {NodeState::kDown, NodeState::kDraining}) {
    for (uint32_t i = 0; i < shards.size() && in_flight < options.moves_in_flight_max; ++i) {
      const ShardPlacement& s = shards[i];
      if (s.change || touched[i]) continue;
      // Leadership moves off a leaving node first, unless no other replica can lead.
      bool another_can_lead = false;
      for (RegionId r = 0; r < regions; ++r) another_can_lead |= r != s.leader_region && IsUp(map, s.replicas[r]);
      for (RegionId r = 0; r < regions; ++r) {
        const Node* node = map.FindNode(s.replicas[r]);
        if (node->state != leaving || (r == s.leader_region && another_can_lead)) continue;
        // A down node serves nothing: only the target's budget counts.
        if (leaving == NodeState::kDraining && proj[node->id].moves >= options.node_moves_max) continue;
        NodeId best = kNoNode;
        double best_cost = 0;
        for (NodeId t : up[r]) {
          if (proj[t].moves >= options.node_moves_max) continue;
          double ds = 0;
          const double rest = delta(s, r, node->id, t, &ds);
          const double total = ds + rest;
          if (best == kNoNode || total < best_cost) {
            best = t;
            best_cost = total;
          }
        }
        if (best == kNoNode) continue;  // nowhere to go in this region; maybe in another
        begin(i, r, best);
        break;  // one change per shard
      }
    }
  }

  // Balance, one move per region in turn so that every region progresses.
  std::vector<bool> done(regions, false);
  while (in_flight < options.moves_in_flight_max) {
    bool any = false;
    for (RegionId r = 0; r < regions && in_flight < options.moves_in_flight_max; ++r) {
      if (done[r] || up[r].size() < 2) continue;
      int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
      for (NodeId n : up[r]) {
        lo = std::min(lo, proj[n].shards);
        hi = std::max(hi, proj[n].shards);
      }
      const bool count_phase = hi - lo > 1;
      std::set<NodeId> up_set(up[r].begin(), up[r].end());
      uint32_t best_shard = 0;
      NodeId best_to = kNoNode;
      double best_total = count_phase ? 0 : -options.min_gain;
      for (uint32_t i = 0; i < shards.size(); ++i) {
        const ShardPlacement& s = shards[i];
        if (s.change || touched[i]) continue;
        const NodeId d = s.replicas[r];
        if (up_set.count(d) == 0 || proj[d].moves >= options.node_moves_max) continue;
        for (NodeId t : up[r]) {
          if (t == d || proj[t].moves >= options.node_moves_max) continue;
          double ds = 0;
          const double rest = delta(s, r, d, t, &ds);
          if (count_phase ? ds >= 0 : ds > 0) continue;
          const double total = ds + rest;
          if (total < best_total) {
            best_total = total;
            best_shard = i;
            best_to = t;
          }
        }
      }
      if (best_to == kNoNode) {
        done[r] = true;
        continue;
      }
      begin(best_shard, r, best_to);
      any = true;
    }
    if (!any) break;
  }
  return out;
}

std::vector<RegionBalance> Balance(const ClusterMap& map) {
  std::vector<RegionBalance> out;
  for (RegionId r = 0; r < map.regions().size(); ++r) {
    std::vector<const Node*> nodes;
    for (const auto& [id, node] : map.nodes()) {
      if (node.region == r && node.state == NodeState::kUp) nodes.push_back(&node);
    }
    RegionBalance b;
    b.region = r;
    b.nodes = static_cast<uint32_t>(nodes.size());
    auto spread = [&](auto get) {
      Spread s;
      if (nodes.empty()) return s;
      s.min = std::numeric_limits<double>::max();
      s.max = std::numeric_limits<double>::lowest();
      double sum = 0, squares = 0;
      for (const Node* n : nodes) {
        const double v = get(*n);
        s.min = std::min(s.min, v);
        s.max = std::max(s.max, v);
        sum += v;
        squares += v * v;
      }
      const double k = static_cast<double>(nodes.size());
      s.mean = sum / k;
      s.stddev = std::sqrt(std::max(0.0, squares / k - s.mean * s.mean));
      return s;
    };
    b.shards = spread([](const Node& n) { return static_cast<double>(n.load.shards); });
    b.bytes = spread([](const Node& n) { return static_cast<double>(n.load.bytes); });
    b.leaders = spread([](const Node& n) { return static_cast<double>(n.load.leaders); });
    out.push_back(b);
  }
  return out;
}

}  // namespace geokv::placement
