// Several nodes per region on real processes: three regions of two geokvd each, eight strong
// shards whose replica in each region the cluster map places on one of the region's two
// nodes. Clients bound to every node, the second nodes of the regions (3..5) included, do
// strong put / cas / get (a node that holds no replica of a key's shard proxies it to its
// region's holder), recorded for Porcupine, and counter / set / lww writes. Node 4 (the
// second node of eu-west) is SIGKILLed under that load and started again on its data
// directory. Then: the history is linearizable, every node reads every acknowledged strong
// write, the CRDTs converge on every node, and `geokv status` and the map list six nodes.
// Also: a drain under load, growth, replacement, CURVE, and a client routing by the map
// through a drain (ClientsRouteByTheMapAndFollowADrain).
// Every wait is bounded; nothing asserts how long anything takes.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/engine/cluster_map.h"
#include "tests/integration/checks.h"
#include "tests/integration/curve_helpers.h"
#include "tests/integration/harness.h"
#include "tests/integration/history.h"

namespace geokv::integration {
namespace {

constexpr int kPerRegion = 2;
constexpr int kShards = 8;
constexpr size_t kVictim = 4;  // eu-west's second node

const EventualKeys& Eventual() {
  static const EventualKeys keys{"counter/nodes", "set/nodes", {"lww/nodes-0", "lww/nodes-1"}};
  return keys;
}

// The cluster map node `at` applied; nullopt when it does not answer or the map does not
// decode.
std::optional<placement::ClusterMap> MapFrom(LocalCluster& cluster, size_t at) {
  auto client = cluster.ClientFor(at, 2000);
  if (!client) return std::nullopt;
  Request r;
  r.op = Op::kClusterMap;
  Response resp = client->Call(r);
  if (!resp.status.ok()) return std::nullopt;
  auto map = placement::ClusterMap::Decode(resp.value);
  if (!map.ok()) return std::nullopt;
  return std::move(map).value();
}

// Whether `map` lists `nodes` nodes, every one up, and places every shard's replicas.
bool AllUpAndPlaced(const placement::ClusterMap& map, size_t nodes) {
  if (map.nodes().size() != nodes || map.shards().size() != static_cast<size_t>(kShards)) return false;
  for (const auto& [id, node] : map.nodes()) {
    if (node.state != placement::NodeState::kUp) return false;
  }
  for (const auto& shard : map.shards()) {
    for (auto node : shard.replicas) {
      if (node == placement::kNoNode) return false;
    }
  }
  return true;
}

// One key per shard ("<prefix><k>", the first k that lands on it), so that the strong load
// reaches every shard, hence every node's replicas.
std::vector<std::string> OneKeyPerShard(const placement::ClusterMap& map, const std::string& prefix = "nn/") {
  std::vector<std::string> keys(kShards);
  int covered = 0;
  for (int k = 0; covered < kShards && k < 100000; ++k) {
    const std::string key = prefix + std::to_string(k);
    std::string& slot = keys[map.ShardOf(key)];
    if (slot.empty()) {
      slot = key;
      covered++;
    }
  }
  return keys;
}

// The shards whose replica node `at` holds, as its status lists them ("shard 3: ...").
std::set<int> ShardsListed(const std::vector<std::string>& status) {
  std::set<int> out;
  for (const auto& line : status) {
    int shard = -1;
    if (std::sscanf(line.c_str(), "shard %d:", &shard) == 1) out.insert(shard);
  }
  return out;
}

// Strong writes (put / cas, definite outcome) recorded for client `client` since `from_us`.
size_t AckedWritesBy(const Recorder& rec, int client, int64_t from_us) {
  size_t n = 0;
  for (const auto& op : rec.Snapshot()) {
    if (op.client == client && op.op != "get" && !op.unknown && op.call_us >= from_us) n++;
  }
  return n;
}

// Strong workers (recorded in `rec`) through every node of `cluster` but `skip`, seeded
// from `seed`; their clients go to `clients`.
void StartStrongWorkers(LocalCluster& cluster, const std::vector<std::string>& keys, size_t skip, uint64_t seed,
                        Recorder& rec, std::vector<std::unique_ptr<Client>>& clients, Workers& workers) {
  for (size_t i = 0; i < cluster.size(); ++i) {
    if (i == skip) continue;
    clients.push_back(cluster.ClientFor(i, 2000));
    ASSERT_TRUE(clients.back());
    workers.threads.emplace_back(RegisterWorker, std::ref(*clients.back()), static_cast<int>(i),
                                 static_cast<int>(cluster.region_index(i)), seed + i, keys, 30, std::ref(rec),
                                 std::cref(workers.stop));
  }
}

// Waits until node 0's map has no move in flight and node `node` holds no replica; the map
// goes to *map. False at the deadline.
bool WaitDrained(LocalCluster& cluster, size_t node, std::optional<placement::ClusterMap>* map) {
  return WaitFor(
      [&] {
        *map = MapFrom(cluster, 0);
        if (!*map) return false;
        for (const auto& shard : (*map)->shards()) {
          if (shard.change) return false;
        }
        return (*map)->FindNode(static_cast<uint32_t>(node))->load.shards == 0;
      },
      seconds(120), milliseconds(500));
}

// Replica moves so far: replica ids beyond the genesis ones, one per move.
uint32_t MovesSoFar(const placement::ClusterMap& map, size_t regions) {
  uint32_t moves = 0;
  for (const auto& shard : map.shards()) moves += shard.next_replica_id - static_cast<uint32_t>(regions);
  return moves;
}

TEST(Nodes, TwoNodesPerRegionServeEveryKeyAndSurviveAKill) {
  ReplayNote note{"Nodes.*", ""};
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ClusterOptions options;  // us-east, eu-west, ap-south
  options.nodes_per_region = kPerRegion;
  options.shards = kShards;
  for (int s = 0; s < kShards; ++s) options.preferred_leader.push_back(options.regions[s % options.regions.size()]);
  LocalCluster cluster(dir.path(), options);
  const size_t regions = options.regions.size();
  ASSERT_EQ(cluster.size(), regions * kPerRegion);
  ASSERT_EQ(cluster.region_count(), regions);
  for (size_t i = 0; i < cluster.size(); ++i) ASSERT_EQ(cluster.region(i), options.regions[i % regions]) << i;
  ASSERT_EQ(cluster.StartAll(), "");

  // The map, as the last node (a learner of the metadata group) applied it: six nodes up,
  // in their regions, each shard with one replica per region, spread evenly in a region.
  std::optional<placement::ClusterMap> map;
  ASSERT_TRUE(WaitFor([&] { return (map = MapFrom(cluster, cluster.size() - 1)) && AllUpAndPlaced(*map, cluster.size()); },
                      seconds(60)))
      << "the map never listed " << cluster.size() << " nodes up with every shard placed";
  ASSERT_EQ(map->regions().size(), regions);
  for (size_t r = 0; r < regions; ++r) EXPECT_EQ(map->regions()[r].name, options.regions[r]);
  std::map<uint32_t, std::set<int>> held;  // node -> shards it holds a replica of
  for (size_t i = 0; i < cluster.size(); ++i) {
    const placement::Node* n = map->FindNode(static_cast<uint32_t>(i));
    ASSERT_NE(n, nullptr) << "node " << i;
    EXPECT_EQ(n->region, cluster.region_index(i)) << "node " << i;
    EXPECT_EQ(n->client_address, cluster.client_endpoint(i)) << "node " << i;
  }
  for (int s = 0; s < kShards; ++s) {
    const auto& p = map->shards()[static_cast<size_t>(s)];
    ASSERT_EQ(p.replicas.size(), regions) << "shard " << s;
    for (size_t r = 0; r < regions; ++r) {
      ASSERT_LT(p.replicas[r], cluster.size()) << "shard " << s;
      EXPECT_EQ(cluster.region_index(p.replicas[r]), r) << "shard " << s << "'s replica in region " << r;
      held[p.replicas[r]].insert(s);
    }
  }
  for (size_t r = 0; r < regions; ++r) {
    const size_t a = held[static_cast<uint32_t>(r)].size(), b = held[static_cast<uint32_t>(r + regions)].size();
    EXPECT_LE(a > b ? a - b : b - a, 1u) << "region " << r << ": replicas not spread evenly (" << a << " and " << b << ")";
  }
  ASSERT_FALSE(held[kVictim].empty()) << "node " << kVictim << " holds no replica: killing it would test nothing";
  std::printf("[nodes] replicas per node:");
  for (size_t i = 0; i < cluster.size(); ++i) std::printf(" %zu:%zu", i, held[static_cast<uint32_t>(i)].size());
  std::printf("\n");

  // `geokv status` of a second node: the first line, and only the shards it holds.
  {
    std::string out;
    auto st = RunProgram({GeokvCliPath(), "-e", cluster.client_endpoint(3), "status"}, seconds(30), &out);
    ASSERT_TRUE(st.has_value() && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << out;
    EXPECT_EQ(out.rfind("node 3 of 6 nodes in 3 regions, this one in us-east; 8 shards\n", 0), 0u) << out;
    std::vector<std::string> lines;
    for (size_t at = 0, end; at < out.size(); at = end + 1) {
      end = out.find('\n', at);
      if (end == std::string::npos) end = out.size();
      lines.push_back(out.substr(at, end - at));
    }
    EXPECT_EQ(ShardsListed(lines), held[3]) << out;
  }

  // Every node serves every key before any load: a read of one key per shard from each.
  const std::vector<std::string> keys = OneKeyPerShard(*map);
  for (const auto& key : keys) ASSERT_FALSE(key.empty()) << "no key found for some shard";
  for (size_t i = 0; i < cluster.size(); ++i) {
    auto c = cluster.ClientFor(i, 3000);
    ASSERT_TRUE(c);
    for (const auto& key : keys) {
      const Response r = CallUntilAccepted(*c, Get(key), seconds(60));
      EXPECT_TRUE(r.status.IsNotFound()) << "node " << i << " get " << key << ": " << r.status.ToString();
    }
  }

  Recorder rec;
  EventualTally tally;
  std::vector<std::unique_ptr<Client>> clients;
  Workers workers;
  for (size_t i = 0; i < cluster.size(); ++i) {
    const int node = static_cast<int>(i);
    clients.push_back(cluster.ClientFor(i, 2000));
    ASSERT_TRUE(clients.back());
    workers.threads.emplace_back(RegisterWorker, std::ref(*clients.back()), node,
                                 static_cast<int>(cluster.region_index(i)), 7000 + static_cast<uint64_t>(node), keys,
                                 30, std::ref(rec), std::cref(workers.stop));
    clients.push_back(cluster.ClientFor(i, 2000));
    ASSERT_TRUE(clients.back());
    workers.threads.emplace_back(EventualWorker, std::ref(*clients.back()), node, std::cref(Eventual()),
                                 std::ref(tally), std::cref(workers.stop));
  }
  // Writes flow through every node, the second ones included.
  ASSERT_TRUE(WaitFor(
      [&] {
        for (size_t i = 0; i < cluster.size(); ++i) {
          if (AckedWritesBy(rec, static_cast<int>(i), 0) < 5) return false;
        }
        return rec.AckedWritesSince(0) >= 100;
      },
      seconds(60)))
      << "some node's client had fewer than 5 strong writes acknowledged";
  std::printf("[nodes] %.1f s: %zu strong writes acknowledged, at least 5 through each node\n", rec.NowUs() / 1e6,
              rec.AckedWritesSince(0));

  // SIGKILL node 4 under the load; the others go on.
  cluster.KillNode(kVictim);
  const int64_t killed_us = rec.NowUs();
  std::printf("[nodes] %.1f s: SIGKILL node %zu\n", rec.NowUs() / 1e6, kVictim);
  ASSERT_TRUE(WaitFor(
      [&] {
        for (size_t i = 0; i < cluster.size(); ++i) {
          if (i != kVictim && AckedWritesBy(rec, static_cast<int>(i), killed_us) < 3) return false;
        }
        return rec.AckedWritesSince(killed_us) >= 30;
      },
      seconds(60)))
      << "without node " << kVictim << ": " << rec.AckedWritesSince(killed_us)
      << " strong writes acknowledged; node 1 (its region's other node): " << AckedWritesBy(rec, 1, killed_us);
  std::printf("[nodes] %.1f s: %zu strong writes acknowledged without node %zu; per node (acknowledged/unknown):",
              rec.NowUs() / 1e6, rec.AckedWritesSince(killed_us), kVictim);
  {
    std::map<int, std::pair<size_t, size_t>> outage;
    for (const auto& op : rec.Snapshot()) {
      if (op.op == "get" || op.call_us < killed_us) continue;
      (op.unknown ? outage[op.client].second : outage[op.client].first)++;
    }
    for (const auto& [node, n] : outage) std::printf(" %d:%zu/%zu", node, n.first, n.second);
    std::printf("\n");
  }

  // Started again on the same data directory: it serves again.
  ASSERT_TRUE(cluster.StartNode(kVictim));
  ASSERT_EQ(cluster.WaitServing(kVictim), "");
  const int64_t restarted_us = rec.NowUs();
  ASSERT_TRUE(WaitFor([&] { return AckedWritesBy(rec, static_cast<int>(kVictim), restarted_us) >= 5; }, seconds(60)))
      << "the restarted node " << kVictim << " acknowledged " << AckedWritesBy(rec, static_cast<int>(kVictim), restarted_us)
      << " strong writes";
  ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(restarted_us) >= 30; }, seconds(60)));
  std::printf("[nodes] %.1f s: node %zu restarted; %zu strong writes acknowledged since, %zu through it\n",
              rec.NowUs() / 1e6, kVictim, rec.AckedWritesSince(restarted_us),
              AckedWritesBy(rec, static_cast<int>(kVictim), restarted_us));
  workers.Join();

  // Strong keys: final reads from all six nodes (recorded), agreement, nothing acknowledged
  // lost, Porcupine. FinalChecks' own catch-up check expects every node to hold every
  // shard; shards = 0 leaves it out, and the holders are checked below instead.
  std::string verdict = "not run";
  FinalChecks(cluster, rec, keys, /*shards=*/0, "nodes", &verdict);
  EXPECT_EQ(verdict, "");
  std::printf("[nodes] Porcupine: %s\n", verdict.empty() ? "linearizable" : verdict.c_str());

  // Every shard's replicas, as the nodes' status lists them, are the three the map places,
  // and they apply the same prefix of the log.
  map = MapFrom(cluster, 0);
  ASSERT_TRUE(map.has_value());
  std::string last;
  EXPECT_TRUE(WaitFor(
      [&] {
        last.clear();
        std::vector<std::vector<std::string>> status(cluster.size());
        for (size_t i = 0; i < cluster.size(); ++i) status[i] = cluster.Status(i);
        for (int s = 0; s < kShards; ++s) {
          std::set<uint32_t> listing, placed;
          for (auto node : map->shards()[static_cast<size_t>(s)].replicas) placed.insert(node);
          std::optional<uint64_t> applied;
          for (size_t i = 0; i < cluster.size(); ++i) {
            auto p = ShardProgress(status[i], s);
            if (!p) continue;
            listing.insert(static_cast<uint32_t>(i));
            last += " shard" + std::to_string(s) + "/node" + std::to_string(i) + ":commit=" + std::to_string(p->first) +
                    ",applied=" + std::to_string(p->second);
            if (p->first != p->second || (applied && *applied != p->second)) return false;
            applied = p->second;
          }
          if (listing != placed) {
            last += " shard" + std::to_string(s) + " listed by nodes other than the map's";
            return false;
          }
        }
        return true;
      },
      seconds(30), milliseconds(200)))
      << "replicas did not converge:" << last;

  // Eventual keys: every node converges to one state holding every acknowledged increment,
  // element and a value that was written; every node acknowledged some.
  ExpectEventualConverged(cluster, Eventual(), tally, "nodes");
  for (size_t i = 0; i < cluster.size(); ++i) {
    EXPECT_GT(tally.acked_by_node[static_cast<int>(i)], 0u) << "node " << i << " acknowledged no eventual write";
  }

  // Six nodes, up, in status (the restarted node's own view too) and in the map.
  EXPECT_TRUE(WaitFor([&] { return (map = MapFrom(cluster, kVictim)) && AllUpAndPlaced(*map, cluster.size()); },
                      seconds(30)))
      << "node " << kVictim << "'s map does not list six nodes up";
  std::string out;
  auto st = RunProgram({GeokvCliPath(), "-e", cluster.client_endpoint(kVictim), "status"}, seconds(30), &out);
  ASSERT_TRUE(st.has_value() && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << out;
  EXPECT_EQ(out.rfind("node 4 of 6 nodes in 3 regions, this one in eu-west; 8 shards\n", 0), 0u) << out;
  EXPECT_NE(out.find(", 6 nodes, 8 shards"), std::string::npos) << out;
  for (size_t i = 0; i < cluster.size(); ++i) {
    const std::string line = "node " + std::to_string(i) + " (" + cluster.region(i) + "): up,";
    EXPECT_NE(out.find("\n" + line), std::string::npos) << line << " missing from\n" << out;
  }
}

// Drain and remove a node under strong load: node 4's replicas move to node 1 (eu-west's
// other node), each move a learner that catches up and a membership change in the shard's
// log, while clients on the five other nodes write. Then node 4 is removed and stopped, and
// the history is linearizable with nothing acknowledged lost.
TEST(Nodes, DrainMovesEveryReplicaAwayThenTheNodeIsRemovedUnderLoad) {
  ReplayNote note{"Nodes.*", ""};
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ClusterOptions options;
  options.nodes_per_region = kPerRegion;
  options.shards = kShards;
  LocalCluster cluster(dir.path(), options);
  ASSERT_EQ(cluster.StartAll(), "");
  std::optional<placement::ClusterMap> map;
  ASSERT_TRUE(WaitFor([&] { return (map = MapFrom(cluster, 0)) && AllUpAndPlaced(*map, cluster.size()); }, seconds(60)));
  const uint32_t before = map->FindNode(kVictim)->load.shards;
  ASSERT_GT(before, 0u);
  const std::vector<std::string> keys = OneKeyPerShard(*map);

  Recorder rec;
  std::vector<std::unique_ptr<Client>> clients;
  Workers workers;
  StartStrongWorkers(cluster, keys, kVictim, 9000, rec, clients, workers);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(0) >= 50; }, seconds(60)));

  // Drain: the placement driver moves node 4's replicas to node 1, a few at a time.
  auto admin = cluster.ClientFor(0, 5000);
  ASSERT_TRUE(admin);
  auto set_state = [&](const std::string& state) {
    Request r;
    r.op = Op::kNodeState;
    r.key = std::to_string(kVictim);
    r.value = state;
    return admin->Call(r);
  };
  ASSERT_TRUE(WaitFor([&] { return set_state("draining").status.ok(); }, seconds(30)));
  const int64_t drained_us = rec.NowUs();
  ASSERT_TRUE(WaitDrained(cluster, kVictim, &map)) << "node " << kVictim << " still holds replicas";
  const uint32_t moved_ids = MovesSoFar(*map, options.regions.size());
  EXPECT_GE(moved_ids, before);
  EXPECT_EQ(map->FindNode(1)->load.shards, static_cast<uint32_t>(kShards));
  const size_t during = rec.AckedWritesSince(drained_us);
  std::printf("[drain] %.1f s: node %zu's %u replicas moved to node 1 (%u moves); %zu strong writes acknowledged meanwhile\n",
              rec.NowUs() / 1e6, kVictim, before, moved_ids, during);

  // Holding nothing, it is removed and stopped; the others go on.
  ASSERT_TRUE(WaitFor([&] { return set_state("removed").status.ok(); }, seconds(30)));
  cluster.KillNode(kVictim);
  const int64_t removed_us = rec.NowUs();
  ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(removed_us) >= 30; }, seconds(60)));
  workers.Join();
  ASSERT_TRUE(WaitFor([&] { return (map = MapFrom(cluster, 5)) && map->FindNode(kVictim)->state == placement::NodeState::kRemoved; },
                      seconds(30)));
  std::string verdict = "not run";
  FinalChecks(cluster, rec, keys, /*shards=*/0, "drain", &verdict, /*outside=*/{kVictim});
  EXPECT_EQ(verdict, "");
  // Node 1 lists every shard now.
  EXPECT_EQ(ShardsListed(cluster.Status(1)).size(), static_cast<size_t>(kShards));
}

// ---- a running cluster grows, and a dead node is replaced on an empty disk ---------------

const EventualKeys& Grown() {
  static const EventualKeys keys{"counter/grow", "set/grow", {"lww/grow-0", "lww/grow-1"}};
  return keys;
}

// `geokv ARGS...` against node `at`; true when it exited 0. Its output goes to *out.
bool RunCli(LocalCluster& cluster, size_t at, const std::vector<std::string>& args, std::string* out,
            milliseconds timeout = seconds(60)) {
  std::vector<std::string> argv = {GeokvCliPath(), "-e", cluster.client_endpoint(at)};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto st = RunProgram(argv, timeout, out);
  return st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0;
}

// `geokv node add` of node `id` (its region and endpoints) through node 0, until the map
// lists it: a call that timed out may have taken effect, and a repeat is then refused (the
// id is taken). False at the deadline; *out holds the last answer.
bool AddThroughCli(LocalCluster& cluster, size_t id, std::string* out) {
  return WaitFor(
      [&] {
        if (RunCli(cluster, 0, {"node", "add", std::to_string(id), "--region", cluster.region(id), "--peer-endpoint",
                                cluster.peer_endpoint(id), "--client-endpoint", cluster.client_endpoint(id)},
                   out)) {
          return true;
        }
        auto map = MapFrom(cluster, 0);
        const placement::Node* n = map ? map->FindNode(static_cast<uint32_t>(id)) : nullptr;
        return n != nullptr && n->peer_address == cluster.peer_endpoint(id);
      },
      seconds(60), milliseconds(500));
}

// Whether every node of `nodes` is up and holds a replica, every region's up nodes hold
// shard counts within one of each other (the driver's balance), and no move is in flight;
// else *why says what is missing.
bool JoinedAndBalanced(const placement::ClusterMap& map, const std::vector<size_t>& nodes, std::string* why) {
  for (size_t id : nodes) {
    const placement::Node* n = map.FindNode(static_cast<uint32_t>(id));
    if (n == nullptr || n->state != placement::NodeState::kUp || n->load.shards == 0) {
      *why = "node " + std::to_string(id) +
             (n == nullptr ? std::string(" not in the map")
                           : ": " + std::string(placement::NodeStateName(n->state)) + ", " +
                                 std::to_string(n->load.shards) + " replicas");
      return false;
    }
  }
  for (size_t s = 0; s < map.shards().size(); ++s) {
    if (map.shards()[s].change) {
      *why = "shard " + std::to_string(s) + " has a move in flight";
      return false;
    }
  }
  std::map<uint32_t, std::pair<uint32_t, uint32_t>> range;  // region -> (fewest, most) replicas
  for (const auto& [id, n] : map.nodes()) {
    if (n.state != placement::NodeState::kUp) continue;
    auto it = range.emplace(n.region, std::make_pair(n.load.shards, n.load.shards)).first;
    it->second = {std::min(it->second.first, n.load.shards), std::max(it->second.second, n.load.shards)};
  }
  for (const auto& [region, r] : range) {
    if (r.second > r.first + 1) {
      *why = "region " + map.RegionName(region) + " is not balanced (" + std::to_string(r.first) + " to " +
             std::to_string(r.second) + " replicas per node)";
      return false;
    }
  }
  return true;
}

std::string ReplicasPerNode(const placement::ClusterMap& map) {
  std::string out;
  for (const auto& [id, n] : map.nodes()) {
    out += " " + std::to_string(id) + ":" + std::to_string(n.load.shards) + "(" +
           std::string(placement::NodeStateName(n.state)) + ")";
  }
  return out;
}

// A cluster of three regions of one node each, grown to two nodes per region under load.
// Members are destroyed in reverse: the workers stop before their clients go, and those
// before the cluster.
struct Growth {
  TempDir dir;
  std::unique_ptr<LocalCluster> cluster;
  std::vector<std::string> keys;  // strong, one per shard
  Recorder rec;
  EventualTally tally;
  // The eventual writes through `doomed` (a node whose disk the test gives up), apart: those
  // it acknowledged but had not shipped when it died are lost with its disk
  // (docs/operations.md, "A lost data directory"), so they count as unknown in the end.
  std::optional<size_t> doomed;
  EventualTally doomed_tally;
  std::vector<std::unique_ptr<Client>> clients;
  Workers workers;
};

// Waits (60 s at most) until every node but `outside` reads the same counter and set: with
// writes of unknown outcome, a node can be within the tally's bounds before it applied all
// that the others did, and ExpectEventualConverged takes the first node's state as the one.
// *last: what each node read the last time.
bool WaitSameEventualState(LocalCluster& cluster, const EventualKeys& keys, size_t outside, std::string* last) {
  return WaitFor(
      [&] {
        last->clear();
        bool same = true;
        std::optional<std::pair<int64_t, std::set<std::string>>> first;
        for (size_t i = 0; i < cluster.size(); ++i) {
          if (i == outside) continue;
          auto c = cluster.ClientFor(i, 2000);
          if (!c) return false;
          const Response r = c->Call(Get(keys.counter));
          auto set = ReadSet(*c, keys.set);
          *last += " node " + std::to_string(i) + ": counter " +
                   (r.status.ok() ? std::to_string(r.number) : r.status.ToString()) + ", set of " +
                   (set ? std::to_string(set->size()) : std::string("?")) + ";";
          if (!r.status.ok() || !set) {
            same = false;
            continue;
          }
          if (!first) first.emplace(r.number, *set);
          same = same && first->first == r.number && first->second == *set;
        }
        return same;
      },
      seconds(60), milliseconds(500));
}

// The test's counts: definite strong operations, replica moves, losses, Porcupine's verdict.
void PrintCounts(const std::string& name, const Recorder& rec, const placement::ClusterMap& map, size_t regions,
                 const std::string& verdict) {
  size_t definite = 0;
  for (const auto& op : rec.Snapshot()) definite += op.unknown ? 0 : 1;
  std::printf("[%s] %zu definite strong ops, %u replica moves in all, %s; Porcupine: %s\n", name.c_str(), definite,
              MovesSoFar(map, regions),
              ::testing::Test::HasFailure() ? "see the failures above" : "0 acknowledged writes lost",
              verdict.empty() ? "linearizable" : verdict.c_str());
}

// Folds g.doomed_tally into g.tally as unknown writes (after the workers stopped), and so
// the writes the doomed node served for the other nodes' clients (proxied to it).
void FoldDoomed(Growth& g) {
  if (g.doomed) ServedByALostNode(g.tally, static_cast<uint32_t>(*g.doomed));
  EventualTally& d = g.doomed_tally;
  g.tally.unknown += d.acked + d.unknown;
  g.tally.unknown_elements.insert(d.acked_elements.begin(), d.acked_elements.end());
  g.tally.unknown_elements.insert(d.unknown_elements.begin(), d.unknown_elements.end());
  for (const auto& [key, values] : d.lww_sent) g.tally.lww_sent[key].insert(values.begin(), values.end());
  for (const auto& [node, n] : d.acked_by_node) g.tally.acked_by_node[node] += n;
  g.tally.unexpected.insert(g.tally.unexpected.end(), d.unexpected.begin(), d.unexpected.end());
}

// Strong (recorded) and eventual workers through node `node`.
void StartWorkers(Growth& g, size_t node) {
  const int id = static_cast<int>(node);
  g.clients.push_back(g.cluster->ClientFor(node, 2000));
  ASSERT_TRUE(g.clients.back());
  g.workers.threads.emplace_back(RegisterWorker, std::ref(*g.clients.back()), id,
                                 static_cast<int>(g.cluster->region_index(node)), 11000 + static_cast<uint64_t>(node),
                                 g.keys, 30, std::ref(g.rec), std::cref(g.workers.stop));
  g.clients.push_back(g.cluster->ClientFor(node, 2000));
  ASSERT_TRUE(g.clients.back());
  g.workers.threads.emplace_back(EventualWorker, std::ref(*g.clients.back()), id, std::cref(Grown()),
                                 std::ref(g.doomed == node ? g.doomed_tally : g.tally), std::cref(g.workers.stop));
}

// Starts nodes 0..2 (us-east, eu-west, ap-south), with workers on each; adds nodes 3, 4, 5
// (region i % 3) through `geokv node add`, starts them on empty disks, and waits until each
// is up and holds replicas (the placement driver balancing the regions), then puts workers
// on them too. Fatal failures through gtest.
void Grow(Growth& g, const std::string& name) {
  ASSERT_FALSE(g.dir.path().empty());
  ClusterOptions options;  // us-east, eu-west, ap-south; one node each
  options.shards = kShards;
  for (int s = 0; s < kShards; ++s) options.preferred_leader.push_back(options.regions[s % options.regions.size()]);
  g.cluster = std::make_unique<LocalCluster>(g.dir.path(), options);
  LocalCluster& cluster = *g.cluster;
  const size_t regions = cluster.region_count();
  ASSERT_EQ(cluster.StartAll(), "");
  std::optional<placement::ClusterMap> map;
  ASSERT_TRUE(WaitFor([&] { return (map = MapFrom(cluster, 0)) && AllUpAndPlaced(*map, regions); }, seconds(60)))
      << "the map never listed " << regions << " nodes up with every shard placed";
  g.keys = OneKeyPerShard(*map, "grow/");
  for (size_t i = 0; i < regions; ++i) {
    StartWorkers(g, i);
    if (::testing::Test::HasFatalFailure()) return;
  }
  ASSERT_TRUE(WaitFor([&] { return g.rec.AckedWritesSince(0) >= 50; }, seconds(60)));
  std::printf("[%s] %.1f s: %zu strong writes acknowledged on %zu nodes\n", name.c_str(), g.rec.NowUs() / 1e6,
              g.rec.AckedWritesSince(0), regions);

  // Announced through the CLI, then started: no other node restarts or changes its config.
  std::vector<size_t> added;
  for (size_t r = 0; r < regions; ++r) {
    const size_t id = cluster.AddNode(r);
    ASSERT_EQ(id, regions + r);
    std::string out;
    ASSERT_TRUE(AddThroughCli(cluster, id, &out)) << "geokv node add " << id << ": " << out;
    added.push_back(id);
  }
  std::printf("[%s] %.1f s: geokv node add 3, 4, 5\n", name.c_str(), g.rec.NowUs() / 1e6);
  for (size_t id : added) ASSERT_TRUE(cluster.StartNode(id)) << "node " << id;
  for (size_t id : added) ASSERT_EQ(cluster.WaitServing(id, seconds(120)), "");
  const int64_t started_us = g.rec.NowUs();
  std::string why;
  ASSERT_TRUE(WaitFor(
      [&] {
        map = MapFrom(cluster, 0);
        if (!map) {
          why = "node 0 did not answer with a map";
          return false;
        }
        return map->nodes().size() == cluster.size() && JoinedAndBalanced(*map, added, &why);
      },
      seconds(240), milliseconds(500)))
      << "the added nodes are not up with replicas, balanced: " << why << "; map:" << (map ? ReplicasPerNode(*map) : "");
  std::printf("[%s] %.1f s: nodes 3, 4, 5 up after %.1f s; %u replica moves; replicas per node:%s\n", name.c_str(),
              g.rec.NowUs() / 1e6, (g.rec.NowUs() - started_us) / 1e6, MovesSoFar(*map, regions),
              ReplicasPerNode(*map).c_str());

  for (size_t id : added) {
    StartWorkers(g, id);
    if (::testing::Test::HasFatalFailure()) return;
  }
  const int64_t workers_us = g.rec.NowUs();
  ASSERT_TRUE(WaitFor(
      [&] {
        for (size_t id : added) {
          if (AckedWritesBy(g.rec, static_cast<int>(id), workers_us) < 5) return false;
        }
        return true;
      },
      seconds(60)))
      << "some added node's client had fewer than 5 strong writes acknowledged";
  std::printf("[%s] %.1f s: %zu strong writes acknowledged, at least 5 through each added node\n", name.c_str(),
              g.rec.NowUs() / 1e6, g.rec.AckedWritesSince(0));
}

// Three regions of one node each grow to two nodes per region under strong and eventual
// load: `geokv node add` 3, 4, 5, each started on an empty disk with `added = true`; the
// placement driver moves replicas onto them. Then every node (the new ones included) reads
// every key, the history is linearizable with nothing acknowledged lost, and the CRDTs
// converge on all six. Last, node 5 is drained and removed under a fresh strong load.
TEST(Nodes, GrowFromOneToTwoNodesPerRegionUnderLoad) {
  ReplayNote note{"Nodes.GrowFromOneToTwoNodesPerRegionUnderLoad", ""};
  Growth g;
  Grow(g, "grow");
  if (HasFatalFailure()) return;
  LocalCluster& cluster = *g.cluster;
  g.workers.Join();

  std::string verdict = "not run";
  FinalChecks(cluster, g.rec, g.keys, /*shards=*/0, "grow", &verdict);
  EXPECT_EQ(verdict, "");
  ExpectEventualConverged(cluster, Grown(), g.tally, "grow");
  for (size_t i = 0; i < cluster.size(); ++i) {
    EXPECT_GT(g.tally.acked_by_node[static_cast<int>(i)], 0u) << "node " << i << " acknowledged no eventual write";
  }
  auto map = MapFrom(cluster, 0);
  ASSERT_TRUE(map.has_value());
  PrintCounts("grow", g.rec, *map, cluster.region_count(), verdict);

  // Drain node 5 under a fresh strong load on other keys (so the new history starts from
  // absent keys); once it holds nothing, remove it and stop it.
  constexpr size_t kDrained = 5;
  Recorder rec;
  const std::vector<std::string> keys = OneKeyPerShard(*map, "drain5/");
  std::vector<std::unique_ptr<Client>> clients;
  Workers workers;
  StartStrongWorkers(cluster, keys, kDrained, 12000, rec, clients, workers);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(0) >= 30; }, seconds(60)));
  const uint32_t before = map->FindNode(kDrained)->load.shards;
  const uint32_t moves_before = MovesSoFar(*map, cluster.region_count());
  std::string out;
  ASSERT_TRUE(WaitFor([&] { return RunCli(cluster, 0, {"node", "drain", std::to_string(kDrained)}, &out); }, seconds(30)))
      << out;
  const int64_t drained_us = rec.NowUs();
  ASSERT_TRUE(WaitDrained(cluster, kDrained, &map))
      << "node " << kDrained << " still holds replicas:" << (map ? ReplicasPerNode(*map) : "");
  std::printf("[grow] %.1f s: node %zu's %u replicas moved (%u moves); %zu strong writes acknowledged meanwhile\n",
              rec.NowUs() / 1e6, kDrained, before, MovesSoFar(*map, cluster.region_count()) - moves_before,
              rec.AckedWritesSince(drained_us));
  ASSERT_TRUE(WaitFor([&] { return RunCli(cluster, 0, {"node", "remove", std::to_string(kDrained)}, &out); }, seconds(30)))
      << out;
  cluster.KillNode(kDrained);
  const int64_t removed_us = rec.NowUs();
  ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(removed_us) >= 30; }, seconds(60)));
  workers.Join();
  ASSERT_TRUE(WaitFor([&] { return (map = MapFrom(cluster, 3)) && map->FindNode(kDrained)->state == placement::NodeState::kRemoved; },
                      seconds(30)));
  verdict = "not run";
  FinalChecks(cluster, rec, keys, /*shards=*/0, "grow-drain", &verdict, /*outside=*/{kDrained});
  EXPECT_EQ(verdict, "");
}

// Grown as above, node `kDead` of eu-west is SIGKILLed and its disk given up: `geokv node
// replace` adds node 6 on its address with an empty data directory, marks it down, waits
// until the placement driver moved its replicas (to 6 and the region's other node) and
// removes it, all under load. Then node 6 is up with replicas, the history is linearizable
// with nothing acknowledged lost, and the CRDTs converge on the live nodes.
void ReplaceAKilledNode(size_t kDead, const char* test) {
  ReplayNote note{test, ""};
  Growth g;
  g.doomed = kDead;
  Grow(g, "replace");
  if (::testing::Test::HasFatalFailure()) return;
  LocalCluster& cluster = *g.cluster;
  auto map = MapFrom(cluster, 0);
  ASSERT_TRUE(map.has_value());
  const uint32_t held = map->FindNode(kDead)->load.shards;
  const uint32_t moves_before = MovesSoFar(*map, cluster.region_count());

  // Its clients' calls time out from now on (recorded as unknown): the node is gone.
  cluster.KillNode(kDead);
  const int64_t killed_us = g.rec.NowUs();
  std::printf("[replace] %.1f s: SIGKILL node %zu (%u replicas)\n", g.rec.NowUs() / 1e6, kDead, held);
  const size_t fresh = cluster.AddReplacement(kDead);
  ASSERT_EQ(fresh, 6u);
  ASSERT_EQ(cluster.peer_endpoint(fresh), cluster.peer_endpoint(kDead));

  // The CLI waits in the background while node 6 starts.
  TempDir cli_dir;
  const std::string cli_log = cli_dir.path() + "/replace.log";
  Child cli;
  ASSERT_TRUE(cli.Start({GeokvCliPath(), "-e", cluster.client_endpoint(0), "node", "replace", std::to_string(kDead),
                         std::to_string(fresh), "--peer-endpoint", cluster.peer_endpoint(fresh), "--client-endpoint",
                         cluster.client_endpoint(fresh), "--wait", "120"},
                        cli_log));
  ASSERT_TRUE(WaitFor([&] { return (map = MapFrom(cluster, 0)) && map->FindNode(static_cast<uint32_t>(fresh)) != nullptr; },
                      seconds(30)))
      << "node " << fresh << " never appeared in the map; geokv node replace says:\n" << ReadFile(cli_log);
  ASSERT_TRUE(cluster.StartNode(fresh));
  ASSERT_EQ(cluster.WaitServing(fresh, seconds(120)), "");
  ASSERT_TRUE(cli.Wait(seconds(150))) << "geokv node replace --wait 120 did not exit:\n" << ReadFile(cli_log);
  const std::string replace_out = ReadFile(cli_log);
  std::printf("[replace] geokv node replace %zu %zu --wait 120:\n%s", kDead, fresh, replace_out.c_str());
  if (!WIFEXITED(cli.wait_status()) || WEXITSTATUS(cli.wait_status()) != 0) {
    // What was left, as the map and the nodes of the dead node's region see it.
    std::string diagnosis, out;
    RunCli(cluster, 0, {"map"}, &out);
    diagnosis += "geokv map (node 0):\n" + out;
    for (size_t i : {size_t{0}, kDead == 1 ? size_t{4} : size_t{1}, fresh}) {
      RunCli(cluster, i, {"status"}, &out);
      diagnosis += "geokv status (node " + std::to_string(i) + "):\n" + out;
    }
    FAIL() << "geokv node replace failed:\n" << replace_out << diagnosis;
  }

  std::string why;
  ASSERT_TRUE(WaitFor(
      [&] {
        map = MapFrom(cluster, 0);
        if (!map) return false;
        const placement::Node* dead = map->FindNode(kDead);
        if (dead == nullptr || dead->state != placement::NodeState::kRemoved) {
          why = "node " + std::to_string(kDead) + " is not removed";
          return false;
        }
        return JoinedAndBalanced(*map, {fresh}, &why);
      },
      seconds(120), milliseconds(500)))
      << why << "; map:" << (map ? ReplicasPerNode(*map) : "");
  std::printf("[replace] %.1f s: node %zu removed, node %zu up; %u replica moves since the kill; replicas per node:%s\n",
              g.rec.NowUs() / 1e6, kDead, fresh, MovesSoFar(*map, cluster.region_count()) - moves_before,
              ReplicasPerNode(*map).c_str());

  // The load goes on through the live nodes.
  const int64_t replaced_us = g.rec.NowUs();
  ASSERT_TRUE(WaitFor([&] { return g.rec.AckedWritesSince(replaced_us) >= 30; }, seconds(60)));
  std::printf("[replace] %zu strong writes acknowledged since the kill\n", g.rec.AckedWritesSince(killed_us));
  g.workers.Join();

  std::string verdict = "not run";
  FinalChecks(cluster, g.rec, g.keys, /*shards=*/0, "replace", &verdict, /*outside=*/{kDead});
  EXPECT_EQ(verdict, "");
  // Node 4's clients go on through node 6 at its address; all their writes count as unknown.
  std::printf("[replace] eventual writes through the dead node's address: %lld acknowledged (unknown from here on)\n",
              static_cast<long long>(g.doomed_tally.acked));
  FoldDoomed(g);
  std::string eventual_state;
  if (!WaitSameEventualState(cluster, Grown(), kDead, &eventual_state)) {
    std::string status;
    for (const auto& line : cluster.Status(fresh)) status += line + "\n";
    ADD_FAILURE() << "the live nodes do not agree on the eventual keys:" << eventual_state << "\nnode " << fresh
                  << "'s status:\n" << status;
  }
  ExpectEventualConverged(cluster, Grown(), g.tally, "replace", /*outside=*/{kDead});
  PrintCounts("replace", g.rec, *map, cluster.region_count(), verdict);
  // Node 6 serves on the dead node's address: status names it.
  const auto status = cluster.Status(fresh);
  ASSERT_FALSE(status.empty());
  EXPECT_EQ(status[0].rfind("node 6 of ", 0), 0u) << status[0];
  // The metadata group's voters: one per region, the dead node not among them.
  std::string voters;
  for (const auto& line : cluster.Status(0)) {
    if (line.rfind("metadata voters: ", 0) == 0) voters = line;
  }
  const std::string expected = kDead == 1 ? "metadata voters: nodes [0,2,4]" : "metadata voters: nodes [0,1,2]";
  const std::string expected_alt = "metadata voters: nodes [0,2,6]";  // node 6 may take the vote instead of 4
  EXPECT_TRUE(voters == expected || (kDead == 1 && voters == expected_alt)) << voters;
}

// Node 4, an added node.
TEST(Nodes, ReplaceAKilledNodeOnAnEmptyDisk) { ReplaceAKilledNode(4, "Nodes.ReplaceAKilledNodeOnAnEmptyDisk"); }

// Node 1, the region's first node: its metadata voter. Once it is down, the metadata leader
// promotes the region's other up node (a learner of the group, caught up) and removes node
// 1's vote; the removal of node 1 is refused (CONFLICT) until then, so `replace` finishing
// means the vote moved.
TEST(Nodes, ReplaceAKilledMetadataVoterOnAnEmptyDisk) {
  ReplaceAKilledNode(1, "Nodes.ReplaceAKilledMetadataVoterOnAnEmptyDisk");
}

// With CURVE a node reaches an added node only with its key from the config. Node 3 is added
// to a CURVE cluster whose configs do not list it: each of nodes 0..2 logs once that it is
// not connected and why. Their configs then list node 3 with its key, and a key reload
// (SIGHUP) connects them to it: node 3 joins, turns up and takes replicas.
TEST(Nodes, WithCurveAnAddedNodeIsReachedOnceItsKeyIsReloaded) {
  ReplayNote note{"Nodes.WithCurveAnAddedNodeIsReachedOnceItsKeyIsReloaded", ""};
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string key_dir = dir.path() + "/keys";
  std::filesystem::create_directories(key_dir);
  std::vector<KeyFiles> node_keys;
  for (int i = 0; i < 4; ++i) node_keys.push_back(MakeKeys(key_dir, "node" + std::to_string(i)));
  const KeyFiles admin = MakeKeys(key_dir, "admin");
  const std::string allow = key_dir + "/allow.txt", admins = key_dir + "/admins.txt";
  std::string allowed;
  for (const auto& k : node_keys) allowed += k.pair.public_z85 + "\n";
  WriteFile(allow, allowed);
  WriteFile(admins, admin.pair.public_z85 + "\n");
  ClusterOptions options;  // us-east, eu-west, ap-south; one node each
  options.shards = kShards;
  options.curve = NodeCurve({node_keys.begin(), node_keys.begin() + 3}, {allow});
  LocalCluster cluster(dir.path(), options);
  // [curve] comes last in the harness's configs: the admin allowlist goes there.
  auto write_config = [&](size_t i) {
    cluster.RewriteConfig(i);
    WriteFile(cluster.config_path(i), ReadFile(cluster.config_path(i)) + "admin_keys_file = \"" + admins + "\"\n");
  };
  auto admin_call = [&](size_t i, const Request& r) {
    const ClientOptions o = CurveClient(node_keys[i].pair.public_z85, admin.pair);
    auto c = cluster.ClientFor(i, 3000, &o);
    return c ? CallUntilAccepted(*c, r, seconds(30)) : Response{};
  };
  auto map_from = [&](size_t i) -> std::optional<placement::ClusterMap> {
    Request r;
    r.op = Op::kClusterMap;
    const Response resp = admin_call(i, r);
    if (!resp.status.ok()) return std::nullopt;
    auto map = placement::ClusterMap::Decode(resp.value);
    return map.ok() ? std::optional<placement::ClusterMap>(std::move(map).value()) : std::nullopt;
  };
  auto log_has = [&](size_t i, const std::string& text) { return ReadFile(cluster.log_path(i)).find(text) != std::string::npos; };
  for (size_t i = 0; i < cluster.size(); ++i) {
    write_config(i);
    ASSERT_TRUE(cluster.StartNode(i));
  }
  std::optional<placement::ClusterMap> map;
  ASSERT_TRUE(WaitFor([&] { return (map = map_from(0)) && AllUpAndPlaced(*map, 3); }, seconds(60)));

  const size_t added = cluster.AddNode(1, ClusterOptions::CurveNode{node_keys[3].secret_file, node_keys[3].public_file,
                                                                      node_keys[3].pair.public_z85, allow});
  ASSERT_EQ(added, 3u);
  write_config(added);
  Request add;
  add.op = Op::kNodeAdd;
  add.key = "3";
  add.value = cluster.region(added) + " " + cluster.peer_endpoint(added) + " " + cluster.client_endpoint(added);
  const Response added_answer = admin_call(0, add);
  ASSERT_TRUE(added_answer.status.ok()) << added_answer.status.ToString();
  const std::string skipped = "node 3 (peer address " + cluster.peer_endpoint(added) +
                              ") is in the cluster map but not in this node's config, and CURVE is on: not connected; "
                              "add its key to the config and reload keys";
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(WaitFor([&] { return log_has(i, skipped); }, seconds(30))) << "node " << i << " log:\n" << cluster.LogTail(i);
  }
  ASSERT_TRUE(cluster.StartNode(added));

  // The others learn its key: appended to their configs, then a reload.
  for (size_t i = 0; i < 3; ++i) {
    write_config(i);
    ASSERT_TRUE(cluster.SignalNode(i, SIGHUP));
  }
  const std::string connected = "reloading keys: node 3 (" + cluster.peer_endpoint(added) + ") connected with key " +
                                node_keys[3].pair.public_z85;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(WaitFor([&] { return log_has(i, connected); }, seconds(30))) << "node " << i << " log:\n" << cluster.LogTail(i);
  }
  std::string why;
  ASSERT_TRUE(WaitFor(
      [&] {
        map = map_from(0);
        if (!map) return false;
        return JoinedAndBalanced(*map, {added}, &why);
      },
      seconds(180), milliseconds(500)))
      << why << "; map:" << (map ? ReplicasPerNode(*map) : "");
  std::printf("[curve-add] node 3 up; replicas per node:%s\n", ReplicasPerNode(*map).c_str());
  // It serves: a write through node 0 reads back through node 3.
  ASSERT_TRUE(admin_call(0, Put("curve-add/k", "v")).status.ok());
  const Response read = admin_call(added, Get("curve-add/k"));
  ASSERT_TRUE(read.status.ok()) << read.status.ToString();
  EXPECT_EQ(read.value, "v");
}

// ---- routing by the cluster map (issue 12) -------------------------------------------------

// Requests proxied so far by all nodes (geokv_proxied_total); nullopt when a node's metrics
// cannot be read.
std::optional<double> ProxiedTotal(LocalCluster& cluster) {
  double sum = 0;
  for (size_t i = 0; i < cluster.size(); ++i) {
    const auto v = MetricValue(ScrapeMetrics(cluster.metrics_port(i)), "geokv_proxied_total");
    if (!v) return std::nullopt;
    sum += *v;
  }
  return sum;
}

// A client connected to node 0 only (us-east) routes by the map: each strong request goes to
// the us-east holder of its key's shard, node 0 or node 3, and the nodes proxy next to
// nothing (without routing, node 0 would proxy every request for node 3's shards). Then node
// 3 is drained under that load: its replicas move to node 0; node 3 serves what the client
// still sends it by proxy, with a redirect, and the client fetches the map again. Every
// request succeeds and reads back throughout.
TEST(Nodes, ClientsRouteByTheMapAndFollowADrain) {
  ReplayNote note{"Nodes.*", ""};
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ClusterOptions options;
  options.nodes_per_region = kPerRegion;
  options.shards = kShards;
  options.metrics = true;
  LocalCluster cluster(dir.path(), options);
  ASSERT_EQ(cluster.StartAll(), "");
  constexpr size_t kOther = 3;  // us-east's second node
  ASSERT_EQ(cluster.region_index(kOther), 0u);
  std::optional<placement::ClusterMap> map;
  ASSERT_TRUE(WaitFor([&] { return (map = MapFrom(cluster, 0)) && AllUpAndPlaced(*map, cluster.size()); }, seconds(60)));
  constexpr int kKeys = 200;
  std::vector<std::string> keys;
  size_t on_other = 0;  // keys whose us-east replica is on node 3
  for (int k = 0; k < kKeys; ++k) {
    keys.push_back("route/" + std::to_string(k));
    if (map->ReplicaOf(map->ShardOf(keys.back()), 0) == kOther) on_other++;
  }
  ASSERT_GT(on_other, 0u) << "no key on node " << kOther << ": routing to it would go untested";

  ClientOptions co;  // routing by the map is the default
  co.endpoints = {cluster.client_endpoint(0)};
  co.timeout_ms = 5000;
  auto connected = Client::Connect(co);
  ASSERT_TRUE(connected.ok()) << connected.status().ToString();
  Client& client = **connected;
  // Every key written (value tagged with `round`), then read back; every call succeeds. A
  // leadership change under the drain can leave a write's outcome unknown (kTimeout: a
  // forward the leader refused may still commit; not a matter of routing, the same happens
  // without it): such a put is sent again, which a put of the same value may always be.
  size_t unknown = 0;
  auto call = [&](const Request& request) {
    Response r = CallUntilAccepted(client, request);
    for (int again = 0; again < 5 && r.status.code() == Code::kTimeout; ++again) {
      unknown++;
      r = CallUntilAccepted(client, request);
    }
    return r;
  };
  auto write_and_read = [&](const std::string& round) {
    for (const auto& key : keys) {
      const Response w = call(Put(key, round + ":" + key));
      ASSERT_TRUE(w.status.ok()) << "put " << key << " (" << round << "): " << w.status.ToString();
    }
    for (const auto& key : keys) {
      const Response r = call(Get(key));
      ASSERT_TRUE(r.status.ok()) << "get " << key << " (" << round << "): " << r.status.ToString();
      EXPECT_EQ(r.value, round + ":" + key);
    }
  };

  // The first keyed request fetches the map; from then on the nodes proxy next to nothing.
  {
    const Response first = call(Put(keys[0], "first"));
    ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  }
  ASSERT_GE(client.counters().map_fetches, 1u);
  const std::optional<double> proxied_before = ProxiedTotal(cluster);
  ASSERT_TRUE(proxied_before.has_value());
  write_and_read("before");
  if (HasFatalFailure()) return;
  const std::optional<double> proxied_after = ProxiedTotal(cluster);
  ASSERT_TRUE(proxied_after.has_value());
  const ClientCounters routed = client.counters();
  std::printf("[route] %d keys (%zu on node %zu): %llu requests routed, %.0f proxied by the nodes, map version %llu, "
              "%zu outcomes unknown (sent again)\n",
              kKeys, on_other, kOther, static_cast<unsigned long long>(routed.routed), *proxied_after - *proxied_before,
              static_cast<unsigned long long>(routed.map_version), unknown);
  EXPECT_GE(routed.routed, static_cast<uint64_t>(2 * kKeys));
  EXPECT_LE(*proxied_after - *proxied_before, 5.0) << "requests were proxied although the client had the map";

  // Drain node 3 while the client goes on: its replicas move to node 0.
  auto admin = cluster.ClientFor(0, 5000);
  ASSERT_TRUE(admin);
  Request drain;
  drain.op = Op::kNodeState;
  drain.key = std::to_string(kOther);
  drain.value = "draining";
  ASSERT_TRUE(WaitFor([&] { return admin->Call(drain).status.ok(); }, seconds(30)));
  bool drained = false;
  int round = 0;
  const auto end = Clock::now() + seconds(180);
  while (!drained && Clock::now() < end) {
    write_and_read("drain" + std::to_string(++round));
    if (HasFatalFailure()) return;
    map = MapFrom(cluster, 0);
    drained = map && map->FindNode(kOther)->load.shards == 0 &&
              std::none_of(map->shards().begin(), map->shards().end(), [](const auto& s) { return s.change.has_value(); });
  }
  ASSERT_TRUE(drained) << "node " << kOther << " still holds replicas after " << round << " rounds";
  // Once more with every move done, then once to measure: the client has followed the map.
  write_and_read("after");
  if (HasFatalFailure()) return;
  const std::optional<double> proxied_settled = ProxiedTotal(cluster);
  ASSERT_TRUE(proxied_settled.has_value());
  write_and_read("settled");
  if (HasFatalFailure()) return;
  const std::optional<double> proxied_end = ProxiedTotal(cluster);
  ASSERT_TRUE(proxied_end.has_value());
  const ClientCounters followed = client.counters();
  std::printf("[route] drained in %d rounds (%zu outcomes unknown, sent again): %llu redirects, %llu map refreshes, map "
              "version %llu; %.0f proxied in the last round\n",
              round, unknown, static_cast<unsigned long long>(followed.redirects - routed.redirects),
              static_cast<unsigned long long>(followed.map_refreshes - routed.map_refreshes),
              static_cast<unsigned long long>(followed.map_version), *proxied_end - *proxied_settled);
  EXPECT_GT(followed.redirects, routed.redirects) << "node " << kOther << " never redirected the client";
  EXPECT_GT(followed.map_refreshes, routed.map_refreshes) << "the client never fetched the map again";
  EXPECT_GT(followed.map_version, routed.map_version);
  EXPECT_GT(followed.routed, routed.routed);
  EXPECT_LE(*proxied_end - *proxied_settled, 5.0) << "requests were still proxied after the drain";
}

}  // namespace
}  // namespace geokv::integration
