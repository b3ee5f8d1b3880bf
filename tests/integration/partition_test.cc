// Partition one region (admin op on every node): strong keys keep working on the majority
// side and fail (UNAVAILABLE or TIMEOUT, never OK) on the minority side; counter and set
// keys keep working on both sides; after healing, every region converges to the sum of the
// acknowledged increments and the same set.
#include <cstdio>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace geokv::integration {
namespace {

constexpr char kCounter[] = "counter/visits";
constexpr char kSet[] = "set/tags";


std::string Describe(const std::set<std::string>& s) {
  std::string out = "{";
  for (const auto& e : s) out += (out.size() > 1 ? "," : "") + e;
  return out + "}";
}

// Retries a put of the same value (idempotent) until it is acknowledged or the deadline.
bool PutEventually(Client& c, const std::string& key, const std::string& value, milliseconds deadline) {
  return WaitFor([&] { return c.Call(Put(key, value)).status.ok(); }, deadline, milliseconds(200));
}

bool IsUnavailableOrTimeout(const Status& s) {
  return s.code() == Code::kUnavailable || s.code() == Code::kTimeout;
}

TEST(Partition, MinorityFailsStrongCrdtKeysWorkEverywhereAndConverge) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ClusterOptions options;
  LocalCluster cluster(dir.path(), options);
  ASSERT_EQ(cluster.StartAll(), "");
  const size_t n = cluster.size();
  std::vector<std::unique_ptr<Client>> clients;
  for (size_t i = 0; i < n; ++i) {
    clients.push_back(cluster.ClientFor(i, 3000));
    ASSERT_TRUE(clients.back());
  }
  ASSERT_TRUE(PutEventually(*clients[0], "p/warm", "1", seconds(60))) << "no strong write committed after startup";

  // The leader settles on the preferred region (node 0); the minority is the last region.
  ASSERT_TRUE(cluster.WaitLeader(0, 0)) << "node 0 (preferred) never led shard 0";
  const size_t minority = n - 1;
  std::vector<size_t> majority;
  for (size_t i = 0; i < n; ++i) {
    if (i != minority) majority.push_back(i);
  }

  // Before the partition: one increment and one element from each region, converged.
  int64_t acked_sum = 0;
  std::set<std::string> expected_set;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(clients[i]->Call(Add(kCounter, 1)).status.ok());
    acked_sum += 1;
    const std::string e = "pre-" + std::to_string(i);
    ASSERT_TRUE(clients[i]->Call(SetAdd(kSet, e)).status.ok());
    expected_set.insert(e);
  }
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(WaitFor([&] { return ReadCounter(*clients[i], kCounter) == acked_sum && ReadSet(*clients[i], kSet) == expected_set; },
                        seconds(30)))
        << "region " << i << " did not converge before the partition";
  }
  const int64_t before = acked_sum;

  // Cut the minority region off (every node drops its traffic across the cut).
  ASSERT_TRUE(cluster.PartitionRegion(cluster.region(minority), true));

  // Majority side: strong keys keep working (put, read back, cas, add).
  for (size_t i : majority) {
    const std::string key = "p/major-" + std::to_string(i);
    ASSERT_TRUE(PutEventually(*clients[i], key, "100", seconds(30))) << "majority region " << i << " cannot write";
    Response r = CallUntilAccepted(*clients[i], Get(key));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.value, "100");
    r = CallUntilAccepted(*clients[i], Cas(key, std::string("100"), "200"));
    EXPECT_TRUE(r.status.ok()) << "cas on the majority side: " << r.status.ToString();
    r = CallUntilAccepted(*clients[i], Add(key, 5));
    ASSERT_TRUE(r.status.ok()) << "add on the majority side: " << r.status.ToString();
    EXPECT_EQ(r.number, 205);
  }

  // Minority side: every strong operation fails, with UNAVAILABLE or TIMEOUT.
  {
    Client& c = *clients[minority];
    const std::string key = "p/major-" + std::to_string(majority[0]);
    for (const Request& req : {Put("p/minor", "1"), Get(key), Cas(key, std::string("205"), "300"), Add(key, 1)}) {
      Response r = c.Call(req);
      std::printf("[partition] minority %s -> %s\n", std::string(OpName(req.op)).c_str(), r.status.ToString().c_str());
      EXPECT_FALSE(r.status.ok()) << OpName(req.op) << " succeeded on the minority side";
      EXPECT_TRUE(IsUnavailableOrTimeout(r.status))
          << OpName(req.op) << " on the minority side: " << r.status.ToString();
    }
  }

  // CRDT keys: writable everywhere; each region adds its own increments and elements, and
  // removes some of its own.
  std::vector<int64_t> own(n, 0);
  for (size_t i = 0; i < n; ++i) {
    for (int k = 0; k < 8; ++k) {
      const int64_t delta = static_cast<int64_t>(i + 1) * 10 + k;
      Response r = clients[i]->Call(Add(kCounter, delta));
      ASSERT_TRUE(r.status.ok()) << "counter add in region " << i << ": " << r.status.ToString();
      own[i] += delta;
      acked_sum += delta;
      const std::string e = "r" + std::to_string(i) + "-" + std::to_string(k);
      r = clients[i]->Call(SetAdd(kSet, e));
      ASSERT_TRUE(r.status.ok()) << "set add in region " << i << ": " << r.status.ToString();
      expected_set.insert(e);
      if (k % 2 == 0) {
        r = clients[i]->Call(SetRemove(kSet, e));
        ASSERT_TRUE(r.status.ok()) << "set remove in region " << i << ": " << r.status.ToString();
        expected_set.erase(e);
      }
    }
  }
  // The majority regions see each other's increments; the minority sees only its own.
  const int64_t majority_total = before + own[majority[0]] + own[majority[1]];
  for (size_t i : majority) {
    EXPECT_TRUE(WaitFor([&] { return ReadCounter(*clients[i], kCounter) == majority_total; }, seconds(30)))
        << "majority region " << i << " reads " << ReadCounter(*clients[i], kCounter).value_or(-1) << ", expected "
        << majority_total;
  }
  EXPECT_EQ(ReadCounter(*clients[minority], kCounter), before + own[minority]) << "the minority region saw across the cut";

  // Heal, then everything converges to the acknowledged sum and the same set.
  ASSERT_TRUE(cluster.HealAll());
  for (size_t i = 0; i < n; ++i) {
    std::optional<int64_t> counter;
    std::optional<std::set<std::string>> set;
    EXPECT_TRUE(WaitFor(
        [&] {
          counter = ReadCounter(*clients[i], kCounter);
          set = ReadSet(*clients[i], kSet);
          return counter == acked_sum && set == expected_set;
        },
        seconds(60)))
        << "region " << i << " after healing: counter " << counter.value_or(-1) << " (expected " << acked_sum
        << "), set " << (set ? Describe(*set) : "?") << " (expected " << Describe(expected_set) << ")";
  }
  // The former minority serves strong keys again.
  EXPECT_TRUE(PutEventually(*clients[minority], "p/after-heal", "7", seconds(30)));
  Response r = CallUntilAccepted(*clients[minority], Get("p/major-" + std::to_string(majority[0])));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.value, "205");
}

}  // namespace
}  // namespace geokv::integration
