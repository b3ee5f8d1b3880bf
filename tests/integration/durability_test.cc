// Restart durability: acknowledged strong writes, counter increments and set elements
// survive a graceful stop (SIGTERM), a kill -9 of one node right after its acknowledgement,
// and a kill -9 of every node at once.
#include <signal.h>
#include <sys/wait.h>

#include <map>
#include <set>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace geokv::integration {
namespace {

constexpr char kCounter[] = "counter/d";
constexpr char kSet[] = "set/d";


class Durability : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    cluster_ = std::make_unique<LocalCluster>(dir_.path(), ClusterOptions{});
    ASSERT_EQ(cluster_->StartAll(), "");
    Reconnect();
    ASSERT_TRUE(WaitFor([&] { return clients_[0]->Call(Put("warm/up", "1")).status.ok(); }, seconds(60),
                        milliseconds(200)))
        << "no strong write committed after startup";
    ASSERT_TRUE(cluster_->WaitLeader(0, 0)) << "node 0 (preferred) never led shard 0";
  }
  void Reconnect() {
    clients_.clear();
    for (size_t i = 0; i < cluster_->size(); ++i) clients_.push_back(cluster_->ClientFor(i, 3000));
  }
  // Strong keys: every acknowledged value must read back from every region.
  void ExpectStrong(const std::map<std::string, std::string>& acked, const char* when) {
    for (size_t i = 0; i < cluster_->size(); ++i) {
      for (const auto& [key, value] : acked) {
        Response r;
        EXPECT_TRUE(WaitFor([&] { return (r = clients_[i]->Call(Get(key))).status.code() != Code::kUnavailable &&
                                         r.status.code() != Code::kTimeout; },
                            seconds(30), milliseconds(200)))
            << when << ": region " << i << " cannot read " << key << ": " << r.status.ToString();
        EXPECT_TRUE(r.status.ok()) << when << ": region " << i << " " << key << ": " << r.status.ToString();
        EXPECT_EQ(r.value, value) << when << ": region " << i << " " << key;
      }
    }
  }
  void ExpectConverged(int64_t sum, const std::set<std::string>& set, const char* when) {
    for (size_t i = 0; i < cluster_->size(); ++i) {
      std::optional<int64_t> c;
      std::optional<std::set<std::string>> s;
      EXPECT_TRUE(WaitFor(
          [&] {
            c = ReadCounter(*clients_[i], kCounter);
            s = ReadSet(*clients_[i], kSet);
            return c == sum && s == set;
          },
          seconds(60)))
          << when << ": region " << i << " counter " << c.value_or(-1) << " (expected " << sum << "), set size "
          << (s ? static_cast<int64_t>(s->size()) : -1) << " (expected " << set.size() << ")";
    }
  }

  TempDir dir_;
  std::unique_ptr<LocalCluster> cluster_;
  std::vector<std::unique_ptr<Client>> clients_;
};

TEST_F(Durability, AcknowledgedWritesSurviveSigtermAndSigkill) {
  LocalCluster& cluster = *cluster_;
  const size_t n = cluster.size();
  std::map<std::string, std::string> strong;  // acknowledged strong values
  int64_t sum = 0;
  std::set<std::string> members;

  // Strong keys through every region (retrying the same value is idempotent).
  for (int k = 0; k < 12; ++k) {
    const std::string key = "d/" + std::to_string(k), value = "v" + std::to_string(k * 7 + 1);
    Client& c = *clients_[static_cast<size_t>(k) % n];
    ASSERT_TRUE(WaitFor([&] { return c.Call(Put(key, value)).status.ok(); }, seconds(30), milliseconds(200)))
        << "put " << key;
    strong[key] = value;
  }
  {
    // cas and add too.
    Response r = CallUntilAccepted(*clients_[1], Cas("d/0", std::string("v1"), "v1-cas"));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    strong["d/0"] = "v1-cas";
    r = CallUntilAccepted(*clients_[2], Add("d/n", 41));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    strong["d/n"] = "41";
  }

  // 1. Eventual writes acknowledged by a node that is cut off from the others, then kill -9
  //    right away: the node's own disk is the only copy.
  const size_t victim = n - 1;
  ASSERT_TRUE(cluster.PartitionRegion(cluster.region(victim), true));
  int64_t victim_sum = 0;
  std::set<std::string> victim_members;
  for (int k = 0; k < 10; ++k) {
    Response r = clients_[victim]->Call(Add(kCounter, k + 1));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    victim_sum += k + 1;
    const std::string e = "victim-" + std::to_string(k);
    r = clients_[victim]->Call(SetAdd(kSet, e));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    victim_members.insert(e);
  }
  cluster.KillNode(victim);
  sum += victim_sum;
  members.insert(victim_members.begin(), victim_members.end());
  ASSERT_TRUE(cluster.StartNode(victim));
  ASSERT_EQ(cluster.WaitServing(victim), "");
  Reconnect();
  // The others still drop everything towards it, so what it reads is what it had on disk.
  EXPECT_EQ(ReadCounter(*clients_[victim], kCounter), victim_sum);
  EXPECT_EQ(ReadSet(*clients_[victim], kSet), victim_members);
  ASSERT_TRUE(cluster.HealAll());

  // More eventual writes from every region, converged.
  for (size_t i = 0; i < n; ++i) {
    for (int k = 0; k < 5; ++k) {
      Response r = clients_[i]->Call(Add(kCounter, 100 * static_cast<int64_t>(i + 1)));
      ASSERT_TRUE(r.status.ok()) << r.status.ToString();
      sum += 100 * static_cast<int64_t>(i + 1);
      const std::string e = "n" + std::to_string(i) + "-" + std::to_string(k);
      r = clients_[i]->Call(SetAdd(kSet, e));
      ASSERT_TRUE(r.status.ok()) << r.status.ToString();
      members.insert(e);
    }
  }
  ExpectConverged(sum, members, "before SIGTERM");

  // 2. Graceful stop of node 0 (SIGTERM): exits 0; restarted, it has everything.
  {
    auto st = cluster.TerminateNode(0);
    ASSERT_TRUE(st.has_value()) << "geokvd did not exit after SIGTERM";
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "wait status " << *st;
    ASSERT_TRUE(cluster.StartNode(0));
    ASSERT_EQ(cluster.WaitServing(0), "");
    Reconnect();
    EXPECT_EQ(ReadCounter(*clients_[0], kCounter), sum) << "node 0 after SIGTERM and restart";
    EXPECT_EQ(ReadSet(*clients_[0], kSet), members) << "node 0 after SIGTERM and restart";
    ExpectStrong(strong, "after SIGTERM of node 0");
  }

  // 3. Acknowledged, then kill -9 of every node at once, restart all.
  {
    Response r = CallUntilAccepted(*clients_[0], Put("d/last", "final"));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    strong["d/last"] = "final";
    r = clients_[1]->Call(Add(kCounter, 7));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    sum += 7;
    r = clients_[2]->Call(SetAdd(kSet, "last"));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    members.insert("last");
    for (size_t i = 0; i < n; ++i) cluster.KillNode(i);
    ASSERT_EQ(cluster.StartAll(), "");
    Reconnect();
    ExpectStrong(strong, "after kill -9 of every node");
    ExpectConverged(sum, members, "after kill -9 of every node");
  }

  // The CLI reads the same data.
  std::string out;
  auto st = RunProgram({GeokvCliPath(), "--endpoints", cluster.client_endpoint(1), "get", "d/last"}, seconds(30), &out);
  ASSERT_TRUE(st.has_value()) << out;
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << out;
  EXPECT_NE(out.find("final"), std::string::npos) << out;
}

}  // namespace
}  // namespace geokv::integration
