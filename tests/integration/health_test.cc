// Node health and operator states on real processes, under strong writes from every region:
//  * a rolling restart done right: `node drain` the node that leads every shard, wait until
//    it leads none, SIGTERM it, start it again, `node undrain` it, and it leads its
//    preferred shards again;
//  * SIGSTOP a node: every node's status (and the metrics) shows it suspect, then down;
//    SIGCONT: up again;
//  * a node back on an empty data directory is ignored by its peers and refuses its clients;
// and the whole history is linearizable (Porcupine), nothing acknowledged is lost, every
// region agrees (FinalChecks). Every wait is bounded.
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/engine/cluster_map.h"
#include "tests/integration/checks.h"
#include "tests/integration/harness.h"
#include "tests/integration/history.h"

namespace geokv::integration {
namespace {

constexpr int kShards = 2;

std::vector<std::string> Keys() { return {"hl/0", "hl/1", "hl/2", "hl/3"}; }

// The line of node `id` in `at`'s status ("node 2 (ap-south): up, replicas=2, ...").
std::string NodeLine(LocalCluster& cluster, size_t at, int id) {
  const std::string prefix = "node " + std::to_string(id) + " (";
  for (const auto& line : cluster.Status(at)) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

bool NodeIs(LocalCluster& cluster, size_t at, int id, const std::string& state) {
  return NodeLine(cluster, at, id).find("): " + state + ",") != std::string::npos;
}

Response SetNodeState(Client& admin, int id, const std::string& state) {
  Request r;
  r.op = Op::kNodeState;
  r.key = std::to_string(id);
  r.value = state;
  return admin.Call(r);
}

TEST(Health, DrainedRollingRestartAndStoppedNodeUnderStrongWrites) {
  ReplayNote note{"Health.*", ""};
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ClusterOptions options;
  options.shards = kShards;
  options.preferred_leader = {options.regions[0], options.regions[0]};
  options.metrics = true;
  LocalCluster cluster(dir.path(), options);
  ASSERT_EQ(cluster.StartAll(), "");
  for (int s = 0; s < kShards; ++s) ASSERT_TRUE(cluster.WaitLeader(s, 0)) << "node 0 never led shard " << s;
  // Loopback clients are admins when CURVE is off (docs/security.md).
  auto admin = cluster.ClientFor(1, 3000);
  ASSERT_TRUE(admin);
  ASSERT_TRUE(WaitFor([&] { return NodeIs(cluster, 1, 2, "up"); }, seconds(30))) << NodeLine(cluster, 1, 2);
  // Any node hands out the cluster map: every node's client address, for routing.
  {
    Request get_map;
    get_map.op = Op::kClusterMap;
    Response r = admin->Call(get_map);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    auto map = placement::ClusterMap::Decode(r.value);
    ASSERT_TRUE(map.ok()) << map.status().ToString();
    EXPECT_EQ(static_cast<int64_t>(map->version()), r.number);
    ASSERT_EQ(map->nodes().size(), cluster.size());
    for (size_t i = 0; i < cluster.size(); ++i) {
      EXPECT_EQ(map->FindNode(static_cast<uint32_t>(i))->client_address, cluster.client_endpoint(i));
      EXPECT_EQ(map->regions()[i].name, cluster.region(i));
    }
    EXPECT_EQ(map->shards().size(), static_cast<size_t>(kShards));
  }

  Recorder rec;
  std::vector<std::unique_ptr<Client>> clients;
  Workers workers;
  for (int id = 0; id < 6; ++id) {
    const int region = id % 3;
    clients.push_back(cluster.ClientFor(static_cast<size_t>(region), 2000));
    ASSERT_TRUE(clients.back());
    workers.threads.emplace_back(RegisterWorker, std::ref(*clients.back()), id, region, 4000 + static_cast<uint64_t>(id),
                                 Keys(), 30, std::ref(rec), std::cref(workers.stop));
  }
  ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(0) >= 30; }, seconds(60)));

  // Rolling restart of node 0, drained first.
  ASSERT_TRUE(WaitFor([&] { return SetNodeState(*admin, 0, "draining").status.ok(); }, seconds(30)));
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int s = 0; s < kShards; ++s) {
          if (cluster.FindLeader(static_cast<size_t>(s)) == 0) return false;
        }
        return NodeIs(cluster, 2, 0, "draining");
      },
      seconds(30)))
      << "node 0 still leads after the drain: " << NodeLine(cluster, 2, 0);
  std::printf("[health] %.1f s: node 0 drained: %s\n", rec.NowUs() / 1e6, NodeLine(cluster, 2, 0).c_str());
  const auto code = cluster.TerminateNode(0);
  ASSERT_TRUE(code.has_value() && *code == 0) << cluster.DescribeExit(0);
  const int64_t stopped_us = rec.NowUs();
  ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(stopped_us) >= 10; }, seconds(60)))
      << "the two other regions acknowledged no writes while node 0 was stopped";
  ASSERT_TRUE(cluster.StartNode(0));
  ASSERT_EQ(cluster.WaitServing(0), "");
  // Still draining after the restart (the state is in the map, not in the process).
  EXPECT_TRUE(NodeIs(cluster, 0, 0, "draining")) << NodeLine(cluster, 0, 0);
  ASSERT_TRUE(WaitFor([&] { return SetNodeState(*admin, 0, "up").status.ok(); }, seconds(30)));
  for (int s = 0; s < kShards; ++s) {
    EXPECT_TRUE(cluster.WaitLeader(s, 0, seconds(30))) << "node 0 did not take its preferred shard " << s << " back";
  }
  std::printf("[health] %.1f s: node 0 restarted and undrained\n", rec.NowUs() / 1e6);

  // A stopped process: suspect, then down, then up when it resumes.
  cluster.PauseNode(2);
  const int64_t paused_us = rec.NowUs();
  EXPECT_TRUE(WaitFor([&] { return NodeIs(cluster, 0, 2, "suspect") || NodeIs(cluster, 0, 2, "down"); }, seconds(30)))
      << NodeLine(cluster, 0, 2);
  std::printf("[health] %.1f s: stopped node 2 suspected after %.1f s\n", rec.NowUs() / 1e6,
              (rec.NowUs() - paused_us) / 1e6);
  EXPECT_TRUE(WaitFor([&] { return NodeIs(cluster, 1, 2, "down"); }, seconds(40))) << NodeLine(cluster, 1, 2);
  std::printf("[health] %.1f s: down after %.1f s\n", rec.NowUs() / 1e6, (rec.NowUs() - paused_us) / 1e6);
  // The metrics say so too (they are refreshed periodically).
  std::string metrics;
  EXPECT_TRUE(WaitFor(
      [&] {
        metrics = ScrapeMetrics(cluster.metrics_port(0));
        return metrics.find("geokv_node_state{node=\"2\",region=\"ap-south\",state=\"down\"} 1") != std::string::npos;
      },
      seconds(10)))
      << metrics.substr(0, 2000);
  cluster.ResumeNode(2);
  EXPECT_TRUE(WaitFor([&] { return NodeIs(cluster, 0, 2, "up") && NodeIs(cluster, 2, 2, "up"); }, seconds(30)))
      << NodeLine(cluster, 0, 2);
  // Nodes that ran throughout were never condemned.
  EXPECT_TRUE(NodeIs(cluster, 0, 1, "up")) << NodeLine(cluster, 0, 1);

  workers.Join();
  FinalChecks(cluster, rec, Keys(), kShards, "health");
}

// A node whose data directory is lost (SIGKILL, the directory emptied, started again, as a
// replaced disk would be): its peers ignore it, and it knows it: it refuses its clients with
// UNAVAILABLE and says why, in status and metrics too, also after another restart. The two
// other regions go on with strong writes throughout; the history is linearizable and
// nothing acknowledged is lost.
TEST(Health, LostDataDirectoryIsIgnoredWhileTheOthersGoOn) {
  ReplayNote note{"Health.LostDataDirectoryIsIgnoredWhileTheOthersGoOn", ""};
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ClusterOptions options;
  options.shards = kShards;
  options.metrics = true;
  LocalCluster cluster(dir.path(), options);
  ASSERT_EQ(cluster.StartAll(), "");
  auto at2 = cluster.ClientFor(2, 3000);
  ASSERT_TRUE(at2);
  // Acknowledged by node 2 before it loses its disk: an eventual and a strong key.
  Request put;
  put.op = Op::kPut;
  put.key = "lww/before";
  put.value = "1";
  ASSERT_TRUE(WaitFor([&] { return at2->Call(put).status.ok(); }, seconds(30)));
  put.key = "hl/0";
  put.value = "100";  // a value no worker writes (workers write (id + 1) * 10^9 + n)
  Response strong;
  ASSERT_TRUE(WaitFor([&] { return (strong = at2->Call(put)).status.ok(); }, seconds(30))) << strong.status.ToString();

  Recorder rec;
  std::vector<std::unique_ptr<Client>> clients;
  Workers workers;
  for (int id = 0; id < 4; ++id) {
    const int region = id % 2;  // regions 0 and 1: node 2 will not serve
    clients.push_back(cluster.ClientFor(static_cast<size_t>(region), 2000));
    ASSERT_TRUE(clients.back());
    workers.threads.emplace_back(RegisterWorker, std::ref(*clients.back()), id, region, 5000 + static_cast<uint64_t>(id),
                                 Keys(), 30, std::ref(rec), std::cref(workers.stop));
  }
  ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(0) >= 20; }, seconds(60)));

  cluster.KillNode(2);
  std::error_code ec;
  std::filesystem::remove_all(cluster.data_dir(2), ec);
  ASSERT_FALSE(ec) << ec.message();
  std::filesystem::create_directories(cluster.data_dir(2), ec);
  ASSERT_TRUE(cluster.StartNode(2));
  ASSERT_EQ(cluster.WaitServing(2), "");
  const int64_t wiped_us = rec.NowUs();
  auto lost_line = [&](size_t at) {
    for (const auto& line : cluster.Status(at)) {
      if (line.rfind("data directory: disk", 0) == 0) return line;
    }
    return std::string();
  };
  EXPECT_TRUE(WaitFor([&] { return lost_line(2).find("LOST") != std::string::npos; }, seconds(30))) << lost_line(2);
  std::printf("[health] %.1f s: node 2 back on an empty directory: %s\n", rec.NowUs() / 1e6, lost_line(2).c_str());
  // Everything but status is refused, with the reason.
  at2 = cluster.ClientFor(2, 3000);
  ASSERT_TRUE(at2);
  for (const std::string& key : {std::string("lww/before"), std::string("hl/0")}) {
    Request get;
    get.op = Op::kGet;
    get.key = key;
    Response r = at2->Call(get);
    EXPECT_EQ(r.status.code(), Code::kUnavailable) << key << ": " << r.status.ToString();
    EXPECT_NE(r.status.message().find("data directory is not the one its peers know"), std::string::npos)
        << r.status.ToString();
  }
  put.key = "lww/after";
  EXPECT_EQ(at2->Call(put).status.code(), Code::kUnavailable);
  // The peers name it, and count what they drop; the metrics say so too.
  EXPECT_TRUE(WaitFor(
      [&] {
        for (const auto& line : cluster.Status(0)) {
          if (line.rfind("node 2 sends from disk", 0) == 0) return true;
        }
        return false;
      },
      seconds(10)));
  std::string metrics;
  EXPECT_TRUE(WaitFor(
      [&] {
        metrics = ScrapeMetrics(cluster.metrics_port(2));
        return metrics.find("geokv_data_directory_lost 1") != std::string::npos;
      },
      seconds(10)))
      << metrics.substr(0, 2000);
  EXPECT_TRUE(WaitFor(
      [&] {
        metrics = ScrapeMetrics(cluster.metrics_port(0));
        return metrics.find("geokv_foreign_disk_messages_total ") != std::string::npos &&
               metrics.find("geokv_foreign_disk_messages_total 0\n") == std::string::npos;
      },
      seconds(10)))
      << metrics.substr(0, 2000);
  // The others go on, and still hold what node 2 acknowledged before.
  EXPECT_TRUE(WaitFor([&] { return rec.AckedWritesSince(wiped_us) >= 10; }, seconds(60)))
      << "regions 0 and 1 acknowledged no writes after node 2 lost its directory";
  auto at1 = cluster.ClientFor(1, 3000);
  ASSERT_TRUE(at1);
  Request get;
  get.op = Op::kGet;
  get.key = "lww/before";
  Response before = at1->Call(get);
  EXPECT_TRUE(before.status.ok() && before.value == "1") << before.status.ToString();
  // Ignored across its own restarts: its peers remember the directory they knew.
  const auto code = cluster.TerminateNode(2);
  ASSERT_TRUE(code.has_value() && *code == 0) << cluster.DescribeExit(2);
  ASSERT_TRUE(cluster.StartNode(2));
  ASSERT_EQ(cluster.WaitServing(2), "");
  EXPECT_TRUE(WaitFor([&] { return lost_line(2).find("LOST") != std::string::npos; }, seconds(30))) << lost_line(2);

  workers.Join();
  FinalChecks(cluster, rec, Keys(), kShards, "lost-directory", nullptr, {2});
}

}  // namespace
}  // namespace geokv::integration
