#include "core/engine/placement_driver.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

namespace geokv::placement {

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

namespace {

// One plan's working state: nodes by dense index, their projected loads (in-flight changes
// counted as done), and the commands chosen so far.
class Planner {
 public:
  Planner(const ClusterMap& map, const DriverOptions& options)
      : options_(options), shards_(map.shards()), regions_(map.regions().size()) {
    for (const auto& [id, node] : map.nodes()) {
      index_[id] = static_cast<uint32_t>(ids_.size());
      ids_.push_back(id);
      state_.push_back(node.state);
      proj_.push_back(Projected{node.load.shards, static_cast<double>(node.load.bytes), node.load.leaders, 0});
    }
    replica_.resize(shards_.size() * regions_);
    for (uint32_t i = 0; i < shards_.size(); ++i) {
      for (RegionId r = 0; r < regions_; ++r) replica_[i * regions_ + r] = index_.at(shards_[i].replicas[r]);
    }
    touched_.assign(shards_.size(), false);
    up_.resize(regions_);
    for (uint32_t n = 0; n < ids_.size(); ++n) {
      if (state_[n] == NodeState::kUp) up_[map.FindNode(ids_[n])->region].push_back(n);
    }
    double total = 0;
    for (const ShardPlacement& s : shards_) total += static_cast<double>(s.bytes);
    unit_ = total > 0 ? total / static_cast<double>(shards_.size()) : 1.0;
    for (const ShardPlacement& s : shards_) {
      if (!s.change) continue;
      ++in_flight_;
      Shift(s, s.change->region, index_.at(s.change->from), index_.at(s.change->to));
    }
  }

  std::vector<Command> Run() {
    Leaders();
    Evacuate(NodeState::kDown);
    Evacuate(NodeState::kDraining);
    Rebalance();
    return std::move(out_);
  }

 private:
  struct Projected {
    int64_t shards = 0;
    double bytes = 0;
    int64_t leaders = 0;
    uint32_t moves = 0;  // replica changes in flight involving the node
  };

  uint32_t Replica(uint32_t shard, RegionId r) const { return replica_[shard * regions_ + r]; }
  bool Up(uint32_t n) const { return state_[n] == NodeState::kUp; }
  bool Free(uint32_t n, uint32_t slots = 1) const { return proj_[n].moves + slots <= options_.node_moves_max; }
  bool Budget(uint32_t moves = 1) const { return in_flight_ + moves <= options_.moves_in_flight_max; }

  // Counts shard `s`'s replica in region `r` as moved from node d to node t.
  void Shift(const ShardPlacement& s, RegionId r, uint32_t d, uint32_t t) {
    Projected& pd = proj_[d];
    Projected& pt = proj_[t];
    ++pd.moves;
    ++pt.moves;
    --pd.shards;
    ++pt.shards;
    pd.bytes -= static_cast<double>(s.bytes);
    pt.bytes += static_cast<double>(s.bytes);
    if (s.leader_region == r) {
      --pd.leaders;
      ++pt.leaders;
    }
  }

  void Begin(uint32_t i, RegionId r, uint32_t t) {
    const ShardPlacement& s = shards_[i];
    out_.push_back(BeginMove{i, s.epoch, r, s.replicas[r], ids_[t]});
    touched_[i] = true;
    ++in_flight_;
    Shift(s, r, Replica(i, r), t);
  }

  // The change of the potential (the weighted sums of squares of leaders and bytes) when a
  // net `leaders` and `units` (bytes in mean shard sizes) go from node d to node t.
  double Gain(uint32_t d, uint32_t t, double leaders, double units) const {
    const Projected& pd = proj_[d];
    const Projected& pt = proj_[t];
    const double dl = 2.0 * leaders * (static_cast<double>(pt.leaders - pd.leaders) + leaders);
    const double db = 2.0 * units * ((pt.bytes - pd.bytes) / unit_ + units);
    return options_.leader_weight * dl + options_.bytes_weight * db;
  }
  // The full change when shard i's replica in r moves from d to t; *shards gets the shard
  // count part.
  double MoveDelta(uint32_t i, RegionId r, uint32_t d, uint32_t t, double* shards) const {
    const ShardPlacement& s = shards_[i];
    *shards = 2.0 * static_cast<double>(proj_[t].shards - proj_[d].shards + 1);
    return *shards + Gain(d, t, s.leader_region == r ? 1 : 0, static_cast<double>(s.bytes) / unit_);
  }

  void Leaders() {
    uint32_t transfers = 0;
    for (uint32_t i = 0; i < shards_.size() && transfers < options_.leader_transfers_max; ++i) {
      const ShardPlacement& s = shards_[i];
      if (s.change) continue;
      std::optional<RegionId> want;
      if (s.preferred_leader && Up(Replica(i, *s.preferred_leader))) {
        want = s.preferred_leader;
      } else if (Up(Replica(i, s.leader_region))) {
        want = s.leader_region;
      } else {
        for (RegionId r = 0; r < regions_; ++r) {
          if (!Up(Replica(i, r))) continue;
          if (!want || proj_[Replica(i, r)].leaders < proj_[Replica(i, *want)].leaders) want = r;
        }
      }
      if (!want || *want == s.leader_region) continue;
      --proj_[Replica(i, s.leader_region)].leaders;
      ++proj_[Replica(i, *want)].leaders;
      out_.push_back(SetLeader{i, s.epoch, *want});
      touched_[i] = true;
      ++transfers;
    }
  }

  void Evacuate(NodeState leaving) {
    for (uint32_t i = 0; i < shards_.size() && Budget(); ++i) {
      const ShardPlacement& s = shards_[i];
      if (s.change || touched_[i]) continue;
      // Leadership moves off a leaving node first, unless no other replica can lead.
      bool another_can_lead = false;
      for (RegionId r = 0; r < regions_; ++r) another_can_lead |= r != s.leader_region && Up(Replica(i, r));
      for (RegionId r = 0; r < regions_; ++r) {
        const uint32_t d = Replica(i, r);
        if (state_[d] != leaving || (r == s.leader_region && another_can_lead)) continue;
        // A down node serves nothing: only the target's budget counts.
        if (leaving == NodeState::kDraining && !Free(d)) continue;
        uint32_t best = UINT32_MAX;
        double best_total = 0;
        for (uint32_t t : up_[r]) {
          if (!Free(t)) continue;
          double ds = 0;
          const double total = MoveDelta(i, r, d, t, &ds);
          if (best == UINT32_MAX || total < best_total) {
            best = t;
            best_total = total;
          }
        }
        if (best == UINT32_MAX) continue;  // nowhere to go in this region; maybe in another
        Begin(i, r, best);
        break;  // one change per shard
      }
    }
  }

  // The best single move in region r: while counts differ by more than one, any move from a
  // fuller to an emptier node (the best for leaders and bytes); then only moves that keep the
  // counts and gain at least min_gain. False when there is none.
  bool BestMove(RegionId r, bool count_phase) {
    uint32_t best_shard = 0, best_to = UINT32_MAX;
    double best_total = count_phase ? std::numeric_limits<double>::infinity() : -options_.min_gain;
    for (uint32_t i = 0; i < shards_.size(); ++i) {
      if (shards_[i].change || touched_[i]) continue;
      const uint32_t d = Replica(i, r);
      if (!Up(d) || !Free(d)) continue;
      for (uint32_t t : up_[r]) {
        if (t == d || !Free(t)) continue;
        double ds = 0;
        const double total = MoveDelta(i, r, d, t, &ds);
        if (count_phase ? ds >= 0 : ds > 0) continue;
        if (total < best_total) {
          best_total = total;
          best_shard = i;
          best_to = t;
        }
      }
    }
    if (best_to == UINT32_MAX) return false;
    Begin(best_shard, r, best_to);
    return true;
  }

  // Shard counts within one leave no single move for bytes or leaders between nodes of equal
  // count: exchange two replicas between the most and the least loaded nodes (by bytes, then
  // by leaders). Both moves are planned together.
  bool BestSwap(RegionId r) {
    if (!Budget(2) || up_[r].size() < 2) return false;
    std::vector<std::pair<uint32_t, uint32_t>> pairs;
    auto extreme = [&](auto key) {
      uint32_t lo = UINT32_MAX, hi = UINT32_MAX;
      for (uint32_t n : up_[r]) {
        if (!Free(n, 2)) continue;
        if (lo == UINT32_MAX || key(n) < key(lo)) lo = n;
        if (hi == UINT32_MAX || key(n) > key(hi)) hi = n;
      }
      if (lo != UINT32_MAX && lo != hi) pairs.emplace_back(hi, lo);
    };
    extreme([&](uint32_t n) { return proj_[n].bytes; });
    extreme([&](uint32_t n) { return static_cast<double>(proj_[n].leaders); });
    for (auto [d, t] : pairs) {
      std::vector<uint32_t> on_d, on_t;
      for (uint32_t i = 0; i < shards_.size(); ++i) {
        if (shards_[i].change || touched_[i]) continue;
        if (Replica(i, r) == d) on_d.push_back(i);
        if (Replica(i, r) == t) on_t.push_back(i);
      }
      uint32_t best_a = 0, best_b = 0;
      double best_total = -options_.min_gain;
      bool found = false;
      for (uint32_t a : on_d) {
        for (uint32_t b : on_t) {
          const double leaders = (shards_[a].leader_region == r ? 1.0 : 0.0) - (shards_[b].leader_region == r ? 1.0 : 0.0);
          const double units = (static_cast<double>(shards_[a].bytes) - static_cast<double>(shards_[b].bytes)) / unit_;
          const double total = Gain(d, t, leaders, units);
          if (total < best_total) {
            best_total = total;
            best_a = a;
            best_b = b;
            found = true;
          }
        }
      }
      if (!found) continue;
      Begin(best_a, r, t);
      Begin(best_b, r, d);
      return true;
    }
    return false;
  }

  // Whether region r's leaders differ by more than one per node, or a node's bytes stray
  // from the region's mean by more than the tolerance: only then is a move made for them
  // (each copies a shard; chasing growing shards to the last byte would copy without end).
  bool OutOfBand(RegionId r) const {
    double sum = 0;
    int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
    for (uint32_t n : up_[r]) {
      sum += proj_[n].bytes;
      lo = std::min(lo, proj_[n].leaders);
      hi = std::max(hi, proj_[n].leaders);
    }
    if (hi - lo > 1) return true;
    const double mean = sum / static_cast<double>(up_[r].size());
    const double band = options_.bytes_tolerance * mean;
    for (uint32_t n : up_[r]) {
      if (std::abs(proj_[n].bytes - mean) > band) return true;
    }
    return false;
  }

  // One change per region in turn, so that every region progresses under the budget.
  void Rebalance() {
    std::vector<bool> done(regions_, false);
    bool any = true;
    while (any && Budget()) {
      any = false;
      for (RegionId r = 0; r < regions_ && Budget(); ++r) {
        if (done[r] || up_[r].size() < 2) continue;
        int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
        for (uint32_t n : up_[r]) {
          lo = std::min(lo, proj_[n].shards);
          hi = std::max(hi, proj_[n].shards);
        }
        const bool count_phase = hi - lo > 1;
        if (!count_phase && !OutOfBand(r)) {
          done[r] = true;
          continue;
        }
        if (BestMove(r, count_phase) || (!count_phase && BestSwap(r))) {
          any = true;
        } else {
          done[r] = true;
        }
      }
    }
  }

  const DriverOptions& options_;
  const std::vector<ShardPlacement>& shards_;
  const size_t regions_;
  std::map<NodeId, uint32_t> index_;
  std::vector<NodeId> ids_;
  std::vector<NodeState> state_;
  std::vector<Projected> proj_;
  std::vector<uint32_t> replica_;  // shard * regions + region -> node index
  std::vector<bool> touched_;      // shards this plan changes already
  std::vector<std::vector<uint32_t>> up_;  // per region, the up nodes' indexes
  double unit_ = 1.0;              // the mean shard size: the unit of bytes in the potential
  uint32_t in_flight_ = 0;
  std::vector<Command> out_;
};

}  // namespace

std::vector<Command> Plan(const ClusterMap& map, const DriverOptions& options) {
  if (map.shards().empty()) return {};
  return Planner(map, options).Run();
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

std::optional<ReportLoad> LoadReporter::Report(const ClusterMap& map, int64_t now_us,
                                               const std::vector<ShardBytes>& sizes) {
  const Node* node = map.FindNode(node_);
  if (node == nullptr) return std::nullopt;
  double total = 0;
  for (const ShardPlacement& s : map.shards()) total += static_cast<double>(s.bytes);
  const double unit = map.shards().empty() ? 0 : total / static_cast<double>(map.shards().size());
  const double change_min = options_.bytes_change_min * unit;
  std::map<uint32_t, int64_t> reported_at_us;
  ReportLoad due{node_, {}}, soon{node_, {}};
  for (const ShardBytes& size : sizes) {
    if (size.shard >= map.shards().size()) continue;
    const ShardPlacement& s = map.shards()[size.shard];
    if (node->region >= s.replicas.size() || s.replicas[node->region] != node_) continue;
    const auto at = reported_at_us_.find(size.shard);
    const int64_t age_us = at == reported_at_us_.end() ? std::numeric_limits<int64_t>::max() : now_us - at->second;
    if (at != reported_at_us_.end()) reported_at_us[size.shard] = at->second;
    const double change = std::abs(static_cast<double>(size.bytes) - static_cast<double>(s.bytes));
    if (change > change_min || age_us >= options_.report_age_max_us) {
      due.shards.push_back(size);
    } else if (change > change_min / 2 || age_us >= options_.report_age_max_us / 2) {
      soon.shards.push_back(size);
    }
  }
  reported_at_us_ = std::move(reported_at_us);
  if (due.shards.empty()) return std::nullopt;
  due.shards.insert(due.shards.end(), soon.shards.begin(), soon.shards.end());
  std::sort(due.shards.begin(), due.shards.end(),
            [](const ShardBytes& a, const ShardBytes& b) { return a.shard < b.shard; });
  for (const ShardBytes& size : due.shards) reported_at_us_[size.shard] = now_us;
  return due;
}

}  // namespace geokv::placement
