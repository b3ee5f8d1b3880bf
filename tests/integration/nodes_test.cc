// Several nodes per region on real processes: three regions of two geokvd each, eight strong
// shards whose replica in each region the cluster map places on one of the region's two
// nodes. Clients bound to every node, the second nodes of the regions (3..5) included, do
// strong put / cas / get (a node that holds no replica of a key's shard proxies it to its
// region's holder), recorded for Porcupine, and counter / set / lww writes. Node 4 (the
// second node of eu-west) is SIGKILLed under that load and started again on its data
// directory. Then: the history is linearizable, every node reads every acknowledged strong
// write, the CRDTs converge on every node, and `geokv status` and the map list six nodes.
// Every wait is bounded; nothing asserts how long anything takes.
#include <sys/wait.h>

#include <cstdio>
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

// One key per shard ("nn/<k>", the first k that lands on it), so that the strong load
// reaches every shard, hence every node's replicas.
std::vector<std::string> OneKeyPerShard(const placement::ClusterMap& map) {
  std::vector<std::string> keys(kShards);
  int covered = 0;
  for (int k = 0; covered < kShards && k < 100000; ++k) {
    const std::string key = "nn/" + std::to_string(k);
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
  for (size_t i = 0; i < cluster.size(); ++i) {
    if (i == kVictim) continue;
    clients.push_back(cluster.ClientFor(i, 2000));
    ASSERT_TRUE(clients.back());
    workers.threads.emplace_back(RegisterWorker, std::ref(*clients.back()), static_cast<int>(i),
                                 static_cast<int>(cluster.region_index(i)), 9000 + i, keys, 30, std::ref(rec),
                                 std::cref(workers.stop));
  }
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
  ASSERT_TRUE(WaitFor(
      [&] {
        map = MapFrom(cluster, 0);
        if (!map) return false;
        for (const auto& shard : map->shards()) {
          if (shard.change) return false;
        }
        return map->FindNode(kVictim)->load.shards == 0;
      },
      seconds(120), milliseconds(500)))
      << "node " << kVictim << " still holds replicas";
  uint32_t moved_ids = 0;  // replica ids beyond the genesis ones: one per move
  for (const auto& shard : map->shards()) moved_ids += shard.next_replica_id - static_cast<uint32_t>(options.regions.size());
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

}  // namespace
}  // namespace geokv::integration
