// Fail-stop on a real process: a geokvd whose disk starts failing every fsync (EIO, through a
// preload library, tests/integration/fail_sync.c) logs the cause and exits non-zero instead
// of lingering as a zombie; the other regions keep serving; restarted on a working disk, it
// recovers, and no acknowledged write is lost anywhere. Issue 8, defect 7.
#include <sys/wait.h>

#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace geokv::integration {
namespace {

TEST(FailStop, NodeWhoseFsyncFailsExitsAndRecoversOnRestart) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string trigger = dir.path() + "/disk-fails";
  ClusterOptions options;
  options.env = {{"LD_PRELOAD=" GEOKV_FAIL_SYNC_LIBRARY, "GEOKV_FAIL_SYNC_FILE=" + trigger}, {}, {}};
  LocalCluster cluster(dir.path(), options);
  ASSERT_EQ(cluster.StartAll(), "");
  ASSERT_TRUE(cluster.WaitLeader(0, 0)) << "node 0 (preferred) never led shard 0";
  auto c0 = cluster.ClientFor(0, 3000);
  auto c1 = cluster.ClientFor(1, 3000);

  std::map<std::string, std::string> acked;
  for (int i = 0; i < 20; ++i) {
    const std::string key = "fs/" + std::to_string(i);
    ASSERT_TRUE(WaitFor([&] { return c0->Call(Put(key, "v" + std::to_string(i))).status.ok(); }, seconds(30),
                        milliseconds(100)));
    acked[key] = "v" + std::to_string(i);
  }

  // The disk of node 0 (the leader) dies. Its next synced commit fails: it must stop.
  std::ofstream(trigger) << "1";
  for (int i = 0; i < 50 && cluster.running(0); ++i) (void)c0->Call(Put("fs/after", "x"));
  ASSERT_TRUE(WaitFor([&] { return !cluster.running(0); }, seconds(30), milliseconds(100)))
      << "node 0 kept running on a disk whose fsyncs fail";
  EXPECT_EQ(cluster.DescribeExit(0), "exited with status 3");
  EXPECT_NE(cluster.LogTail(0, 200).find("node stops"), std::string::npos) << cluster.LogTail(0, 200);

  // The other regions elect a leader and keep taking strong writes.
  ASSERT_TRUE(WaitFor([&] { return c1->Call(Put("fs/survivor", "1")).status.ok(); }, seconds(60), milliseconds(200)))
      << "regions 1 and 2 took no strong write after node 0 stopped";
  acked["fs/survivor"] = "1";

  // The supervisor restarts it on a working disk: recovery replays the journal, nothing
  // acknowledged is lost, and it serves again.
  std::remove(trigger.c_str());
  ASSERT_TRUE(cluster.StartNode(0));
  ASSERT_EQ(cluster.WaitServing(0), "");
  c0 = cluster.ClientFor(0, 3000);
  for (const auto& [key, value] : acked) {
    Response r;
    ASSERT_TRUE(WaitFor([&] { return (r = c0->Call(Get(key))).status.ok(); }, seconds(60), milliseconds(200)))
        << key << ": " << r.status.ToString();
    EXPECT_EQ(r.value, value) << key;
  }
}

}  // namespace
}  // namespace geokv::integration
