// Backups on real processes (docs/operations.md, "Backups"): `geokv backup` of a serving
// three-region cluster (strong keys in four shards; lww, counter and set keys), checked
// files, `geokv restore` into a second, new cluster, and every key compared; a damaged file
// and a cluster already holding keys are refused. And a backup taken while a writer runs
// holds every write acknowledged before it started. Every wait is bounded; nothing asserts
// how long anything takes.
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/engine/cluster_map.h"
#include "replication/crdt/codec.h"
#include "tests/integration/harness.h"

namespace geokv::integration {
namespace {

constexpr int kShards = 4;

std::string Joined(const std::vector<std::string>& endpoints) {
  std::string out;
  for (const auto& e : endpoints) out += (out.empty() ? "" : ",") + e;
  return out;
}

ClusterOptions Options() {
  ClusterOptions options;  // us-east, eu-west, ap-south; counter/, set/, lww/ eventual
  options.shards = kShards;
  return options;
}

// Runs the CLI against `cluster`, asking node `first` first; its exit status (-1 when it
// did not exit normally in time) and output.
int RunCli(LocalCluster& cluster, const std::vector<std::string>& args, std::string* out, size_t first = 0) {
  std::vector<std::string> endpoints = cluster.client_endpoints();
  std::rotate(endpoints.begin(), endpoints.begin() + static_cast<std::ptrdiff_t>(first), endpoints.end());
  std::vector<std::string> argv = {GeokvCliPath(), "-e", Joined(endpoints), "-t", "5000"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto st = RunProgram(argv, seconds(300), out);
  return st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
}

// Waits until every shard of `cluster` has a leader that serves a read (a get of a key of
// each shard reaches its leader; the key is absent), so that what follows meets no election.
void WaitShardsServe(LocalCluster& cluster, Client& client) {
  Request r;
  r.op = Op::kClusterMap;
  Response resp = CallUntilAccepted(client, r);
  ASSERT_TRUE(resp.status.ok()) << resp.status.ToString();
  auto map = placement::ClusterMap::Decode(resp.value);
  ASSERT_TRUE(map.ok());
  std::set<uint32_t> served;
  for (int k = 0; served.size() < kShards && k < 10000; ++k) {
    const std::string key = "probe/" + std::to_string(k);
    if (served.count(map->ShardOf(key)) != 0) continue;
    const Response got = CallUntilAccepted(client, Get(key), seconds(60));
    ASSERT_TRUE(got.status.IsNotFound()) << key << ": " << got.status.ToString() << " (" << cluster.LogTail(0) << ")";
    served.insert(map->ShardOf(key));
  }
}

// The strong rows of the backup in `dir`, shard files decoded (Engine::SnapshotOf format).
std::map<std::string, std::string> BackedUpRows(const std::string& dir) {
  std::map<std::string, std::string> rows;
  for (int s = 0; s < kShards; ++s) {
    const std::string bytes = ReadFile(dir + "/shard-" + std::to_string(s) + ".snap");
    crdt::Decoder dec(bytes);
    uint64_t n = 0;
    EXPECT_TRUE(dec.GetVarint(&n).ok()) << "shard " << s;
    for (uint64_t i = 0; i < n; ++i) {
      std::string_view k, v;
      EXPECT_TRUE(dec.GetBytes(bytes.size(), &k, "key").ok() && dec.GetBytes(bytes.size(), &v, "value").ok());
      rows[std::string(k)] = std::string(v);
    }
    EXPECT_TRUE(dec.Finish().ok()) << "shard " << s;
  }
  return rows;
}

TEST(Backup, RestoresEveryKeyIntoANewCluster) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::filesystem::create_directories(dir.path() + "/a");
  std::filesystem::create_directories(dir.path() + "/b");
  LocalCluster source(dir.path() + "/a", Options());
  ASSERT_EQ(source.StartAll(), "");
  auto client = source.ClientFor(0, 3000);
  ASSERT_TRUE(client);
  WaitShardsServe(source, *client);

  std::map<std::string, std::string> strong, lww;
  std::map<std::string, int64_t> counters;
  std::map<std::string, std::set<std::string>> sets;
  for (int k = 0; k < 300; ++k) {
    const std::string key = "k/" + std::to_string(k);
    strong[key] = "value of " + key + std::string(static_cast<size_t>(k % 50), 'x');
    ASSERT_TRUE(CallUntilAccepted(*client, Put(key, strong[key])).status.ok()) << key;
  }
  for (int k = 0; k < 20; ++k) {
    const std::string key = "lww/" + std::to_string(k);
    lww[key] = "lww value " + std::to_string(k);
    ASSERT_TRUE(CallUntilAccepted(*client, Put(key, lww[key])).status.ok()) << key;
  }
  for (int k = 0; k < 10; ++k) {
    const std::string key = "counter/" + std::to_string(k);
    counters[key] = 0;
    for (int64_t delta : {int64_t{k + 1}, int64_t{-3}, int64_t{100}}) {
      ASSERT_TRUE(client->Call(Add(key, delta)).status.ok()) << key;  // one node, no resend
      counters[key] += delta;
    }
  }
  for (int k = 0; k < 5; ++k) {
    const std::string key = "set/" + std::to_string(k);
    for (int m = 0; m < k + 3; ++m) {
      ASSERT_TRUE(CallUntilAccepted(*client, SetAdd(key, "m" + std::to_string(m))).status.ok());
      sets[key].insert("m" + std::to_string(m));
    }
    ASSERT_TRUE(CallUntilAccepted(*client, SetRemove(key, "m0")).status.ok());
    sets[key].erase("m0");
  }
  // A deleted strong key and a deleted lww key are not in the backup.
  Request del = Get("k/0");
  del.op = Op::kDelete;
  ASSERT_TRUE(CallUntilAccepted(*client, del).status.ok());
  strong.erase("k/0");
  del.key = "lww/0";
  ASSERT_TRUE(CallUntilAccepted(*client, del).status.ok());
  lww.erase("lww/0");

  const std::string backup = dir.path() + "/backup";
  std::string out;
  ASSERT_EQ(RunCli(source, {"backup", backup}, &out), 0) << out;
  std::printf("[backup] %s", out.c_str());
  EXPECT_NE(out.find("shard 4/4:"), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(backup + "/manifest"));
  EXPECT_EQ(BackedUpRows(backup), strong);
  // A second backup into the same directory is refused: it holds one.
  EXPECT_EQ(RunCli(source, {"backup", backup}, &out), 2) << out;
  EXPECT_NE(out.find("already holds a backup"), std::string::npos) << out;

  LocalCluster target(dir.path() + "/b", Options());
  ASSERT_EQ(target.StartAll(), "");
  auto target_client = target.ClientFor(0, 3000);
  ASSERT_TRUE(target_client);
  WaitShardsServe(target, *target_client);

  // A damaged copy is refused before anything is written.
  const std::string damaged = dir.path() + "/damaged";
  std::filesystem::copy(backup, damaged);
  {
    std::fstream f(damaged + "/shard-1.snap", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1);
    f.put('\x7f');
  }
  EXPECT_EQ(RunCli(target, {"restore", damaged}, &out), 2) << out;
  EXPECT_NE(out.find("shard-1.snap is damaged"), std::string::npos) << out;

  ASSERT_EQ(RunCli(target, {"restore", backup}, &out), 0) << out;
  std::printf("[restore] %s", out.c_str());
  EXPECT_NE(out.find("restored " + std::to_string(strong.size()) + " strong keys in 4 shards and " +
                     std::to_string(lww.size() + counters.size() + sets.size()) + " eventual keys"),
            std::string::npos)
      << out;

  // Every key, at every node of the new cluster (eventual keys once they arrived).
  for (size_t at = 0; at < target.size(); ++at) {
    auto c = target.ClientFor(at, 3000);
    ASSERT_TRUE(c);
    for (const auto& [key, value] : strong) {
      const Response r = CallUntilAccepted(*c, Get(key));
      ASSERT_TRUE(r.status.ok() && r.value == value) << "node " << at << ", " << key << ": " << r.status.ToString();
    }
    EXPECT_TRUE(CallUntilAccepted(*c, Get("k/0")).status.IsNotFound());
    EXPECT_TRUE(WaitFor(
        [&] {
          for (const auto& [key, value] : lww) {
            const Response r = c->Call(Get(key));
            if (!r.status.ok() || r.value != value) return false;
          }
          for (const auto& [key, value] : counters) {
            if (ReadCounter(*c, key) != value) return false;
          }
          for (const auto& [key, members] : sets) {
            if (ReadSet(*c, key) != members) return false;
          }
          return c->Call(Get("lww/0")).status.IsNotFound();
        },
        seconds(30)))
        << "node " << at << " never held every eventual key as backed up";
  }

  // The target now holds keys: a second restore is refused.
  EXPECT_EQ(RunCli(target, {"restore", backup}, &out), 2) << out;
  EXPECT_NE(out.find("already holds keys in shard"), std::string::npos) << out;
}

TEST(Backup, HoldsEveryWriteAcknowledgedBeforeItStarted) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  LocalCluster cluster(dir.path(), Options());
  ASSERT_EQ(cluster.StartAll(), "");
  auto setup = cluster.ClientFor(0, 3000);
  ASSERT_TRUE(setup);
  WaitShardsServe(cluster, *setup);

  // One writer per region: new keys, and one key overwritten with increasing values.
  std::mutex mu;
  std::map<std::string, std::string> acked;  // key -> value acknowledged last
  std::map<std::string, int64_t> hot_acked;  // hot key -> highest value acknowledged
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  std::vector<std::unique_ptr<Client>> clients;
  // However the test ends, the writers stop before their clients go.
  struct JoinWriters {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~JoinWriters() {
      stop = true;
      for (auto& t : threads) t.join();
    }
  } join_writers{stop, writers};
  for (size_t w = 0; w < cluster.size(); ++w) {
    clients.push_back(cluster.ClientFor(w, 3000));
    ASSERT_TRUE(clients.back());
    writers.emplace_back([&, w, c = clients.back().get()] {
      const std::string hot = "hot/" + std::to_string(w);
      for (int64_t n = 0; !stop; ++n) {
        const std::string key = "w/" + std::to_string(w) + "/" + std::to_string(n);
        const bool ok = c->Call(Put(key, std::to_string(n))).status.ok();
        const bool hot_ok = c->Call(Put(hot, std::to_string(n))).status.ok();
        std::lock_guard lock(mu);
        if (ok) acked[key] = std::to_string(n);
        if (hot_ok) hot_acked[hot] = n;
      }
    });
  }
  // Three backups under the load, asked of ap-south's node (the farthest from the shards'
  // leaders in us-east: what it holds itself may lag behind what they acknowledged).
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(WaitFor(
        [&] {
          std::lock_guard lock(mu);
          return acked.size() >= static_cast<size_t>(100 * (round + 1));
        },
        seconds(60)));
    std::map<std::string, std::string> before;
    std::map<std::string, int64_t> hot_before;
    {
      std::lock_guard lock(mu);
      before = acked;
      hot_before = hot_acked;
    }
    const std::string backup = dir.path() + "/backup-" + std::to_string(round);
    std::string out;
    ASSERT_EQ(RunCli(cluster, {"backup", backup}, &out, /*first=*/2), 0) << out;
    size_t after;
    {
      std::lock_guard lock(mu);
      after = acked.size();
    }
    std::printf("[backup %d] %zu writes acknowledged before it started, %zu by its end\n%s", round, before.size(),
                after, out.c_str());

    const auto rows = BackedUpRows(backup);
    for (const auto& [key, value] : before) {
      auto it = rows.find(key);
      ASSERT_TRUE(it != rows.end()) << key << " was acknowledged before backup " << round << " started and is not in it";
      EXPECT_EQ(it->second, value) << key;
    }
    for (const auto& [hot, n] : hot_before) {
      auto it = rows.find(hot);
      ASSERT_TRUE(it != rows.end()) << hot;
      EXPECT_GE(std::stoll(it->second), n) << hot << " holds a value older than one acknowledged before backup " << round;
    }
  }
}

}  // namespace
}  // namespace geokv::integration
