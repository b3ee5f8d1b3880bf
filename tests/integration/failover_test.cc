// Kill -9 the shard leader's geokvd during a stream of strong writes from every region,
// keep writing, restart it with the same config and data: the history of every client is
// linearizable (Porcupine), no acknowledged write is lost, every region reads the same
// final values and the restarted replica catches up. A second, seeded test mixes kills of
// leaders and followers, SIGTERM and partitions over three shards with CRDT traffic.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <map>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/checks.h"
#include "tests/integration/harness.h"
#include "tests/integration/history.h"

namespace geokv::integration {
namespace {

constexpr int kKeys = 3;
constexpr int kWorkersPerRegion = 2;
constexpr int kRounds = 2;  // kill -9 of the leader, restart

std::string KeyName(int k) { return "ha/" + std::to_string(k); }

std::vector<std::string> KeyNames(int keys) {
  std::vector<std::string> out;
  for (int k = 0; k < keys; ++k) out.push_back(KeyName(k));
  return out;
}

// One client's loop: random put / cas / add / get on the strong keys through its region's
// node only.
void Worker(Client& client, int id, int region, uint64_t seed, int keys, Recorder& rec,
            const std::atomic<bool>& stop) {
  std::mt19937_64 rng(seed);
  int64_t next_value = 0;
  std::map<int, int64_t> seen;  // last value this client observed per key (0: absent)
  while (!stop.load()) {
    const int k = static_cast<int>(rng() % static_cast<uint64_t>(keys));
    const std::string key = KeyName(k);
    const int dice = static_cast<int>(rng() % 10);
    // Unique positive values: (client id + 1) * 10^9 + counter.
    const int64_t value = (static_cast<int64_t>(id) + 1) * 1'000'000'000 + ++next_value;
    Request req;
    if (dice < 3) {
      req = Put(key, std::to_string(value));
    } else if (dice < 5) {
      const int64_t expected = seen[k];
      req = Cas(key, expected == 0 ? std::nullopt : std::optional<std::string>(std::to_string(expected)),
                std::to_string(value));
    } else if (dice < 7) {
      req = Add(key, 1 + static_cast<int64_t>(rng() % 5));
    } else {
      req = Get(key);
    }
    int64_t observed = 0;
    const Outcome o = rec.Do(client, id, region, req, &observed);
    if (o == Outcome::kOk) {
      seen[k] = observed;
    } else {
      // Refused, unknown or failed: back off a little (the node may be down or electing).
      std::this_thread::sleep_for(milliseconds(50));
    }
    std::this_thread::sleep_for(milliseconds(static_cast<int64_t>(rng() % 5)));
  }
}

TEST(Failover, KillLeaderUnderAcknowledgedStrongWrites) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ClusterOptions options;  // 3 regions, one-way delays 10 and 15 ms, one strong shard
  LocalCluster cluster(dir.path(), options);
  const std::string started = cluster.StartAll();
  ASSERT_EQ(started, "");

  // A leader exists once a strong write commits (bounded wait; "warm" is not in the history).
  {
    auto c = cluster.ClientFor(0, 3000);
    ASSERT_TRUE(c);
    ASSERT_TRUE(WaitFor([&] { return c->Call(Put("warm/up", "1")).status.ok(); }, seconds(60), milliseconds(200)))
        << "no strong write committed after startup";
    ASSERT_TRUE(cluster.WaitLeader(0, 0)) << "node 0 (preferred) never led shard 0";
  }

  Recorder rec;
  std::vector<std::unique_ptr<Client>> clients;
  Workers workers;
  int id = 0;
  for (size_t region = 0; region < cluster.size(); ++region) {
    for (int w = 0; w < kWorkersPerRegion; ++w, ++id) {
      clients.push_back(cluster.ClientFor(region, 3000));
      ASSERT_TRUE(clients.back());
      Client& c = *clients.back();
      workers.threads.emplace_back(Worker, std::ref(c), id, static_cast<int>(region), 1000 + id, kKeys,
                                   std::ref(rec), std::cref(workers.stop));
    }
  }

  // Phase 1: writes flow (bounded wait for some acknowledged writes).
  ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(0) >= 30; }, seconds(60)))
      << "the cluster acknowledged only " << rec.AckedWritesSince(0) << " writes";

  // Phase 2 and 3, twice: SIGKILL the shard leader's node mid-stream and keep writing (the
  // two other regions are a majority: they elect a leader and acknowledge writes); then
  // restart it with the same config and data dir, and its region writes again.
  std::vector<int> killed;
  for (int round = 0; round < kRounds; ++round) {
    int leader = -1;
    ASSERT_TRUE(WaitFor([&] { return (leader = cluster.FindLeader(0)) >= 0; }, seconds(30)));
    cluster.KillNode(static_cast<size_t>(leader));
    killed.push_back(leader);
    const int64_t killed_us = rec.NowUs();
    std::printf("[failover] %.1f s: round %d: SIGKILL node %d (leader)\n", rec.NowUs() / 1e6, round, leader);
    ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(killed_us) >= 30; }, seconds(60)))
        << "round " << round << ": after killing node " << leader << " only " << rec.AckedWritesSince(killed_us)
        << " writes were acknowledged";

    std::printf("[failover] %.1f s: 30 writes acknowledged without it; leader now %d\n", rec.NowUs() / 1e6,
                cluster.FindLeader(0));
    ASSERT_TRUE(cluster.StartNode(static_cast<size_t>(leader)));
    ASSERT_EQ(cluster.WaitServing(static_cast<size_t>(leader)), "");
    const int64_t restarted_us = rec.NowUs();
    std::printf("[failover] %.1f s: node %d restarted and serving\n", rec.NowUs() / 1e6, leader);
    ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(restarted_us, leader) >= 10; }, seconds(60)))
        << "round " << round << ": the restarted node " << leader << " acknowledged only "
        << rec.AckedWritesSince(restarted_us, leader) << " writes";
    std::printf("[failover] %.1f s: its region acknowledged 10 writes\n", rec.NowUs() / 1e6);
  }
  workers.Join();
  std::printf("[failover] killed nodes");
  for (int k : killed) std::printf(" %d", k);
  std::printf("\n");
  FinalChecks(cluster, rec, KeyNames(kKeys), 1, "failover");
}

const EventualKeys& ChaosKeys() {
  static const EventualKeys keys{"counter/chaos", "set/chaos", {}};
  return keys;
}

// Several shards led from different regions, strong and CRDT traffic from every region,
// and a seeded sequence of faults with at most one region down or cut off at a time:
// kill -9 of a shard leader, kill -9 of any node, SIGTERM of any node, partition of a
// region. Seed: GEOKV_INTEG_SEED (printed).
TEST(Failover, RandomKillsAndPartitionsAcrossShards) {
  const char* seed_env = std::getenv("GEOKV_INTEG_SEED");
  const uint64_t seed = seed_env != nullptr ? std::strtoull(seed_env, nullptr, 10)
                                            : static_cast<uint64_t>(std::random_device{}()) % 100000;
  std::printf("[chaos] seed %llu (GEOKV_INTEG_SEED=%llu reruns this fault sequence)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  constexpr int kShards = 3, kChaosKeys = 6, kFaults = 4;

  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ClusterOptions options;
  options.shards = kShards;
  options.preferred_leader = {options.regions[0], options.regions[1], options.regions[2]};
  LocalCluster cluster(dir.path(), options);
  ASSERT_EQ(cluster.StartAll(), "");
  {
    auto c = cluster.ClientFor(0, 3000);
    ASSERT_TRUE(c);
    ASSERT_TRUE(WaitFor([&] { return c->Call(Put("warm/up", "1")).status.ok(); }, seconds(60), milliseconds(200)))
        << "no strong write committed after startup";
  }

  Recorder rec;
  EventualTally tally;
  std::vector<std::unique_ptr<Client>> clients;
  Workers workers;
  int id = 0;
  for (size_t region = 0; region < cluster.size(); ++region) {
    for (int w = 0; w < kWorkersPerRegion; ++w, ++id) {
      clients.push_back(cluster.ClientFor(region, 3000));
      ASSERT_TRUE(clients.back());
      workers.threads.emplace_back(Worker, std::ref(*clients.back()), id, static_cast<int>(region),
                                   seed * 100 + static_cast<uint64_t>(id), kChaosKeys, std::ref(rec),
                                   std::cref(workers.stop));
    }
    clients.push_back(cluster.ClientFor(region, 3000));
    ASSERT_TRUE(clients.back());
    workers.threads.emplace_back(EventualWorker, std::ref(*clients.back()), static_cast<int>(region),
                                 std::cref(ChaosKeys()), std::ref(tally), std::cref(workers.stop));
  }

  for (int f = 0; f < kFaults; ++f) {
    const int64_t before = rec.NowUs();
    ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(before) >= 20; }, seconds(60)))
        << "fault " << f << ": the cluster acknowledged only " << rec.AckedWritesSince(before) << " strong writes";
    const int kind = static_cast<int>(rng() % 4);
    size_t victim = static_cast<size_t>(rng() % cluster.size());
    if (kind == 0) {
      const int leader = cluster.FindLeader(rng() % kShards);
      if (leader >= 0) victim = static_cast<size_t>(leader);
    }
    const milliseconds outage(800 + static_cast<int64_t>(rng() % 1500));
    if (kind == 3) {
      std::printf("[chaos] %.1f s: partition region %s for %lld ms\n", rec.NowUs() / 1e6,
                  cluster.region(victim).c_str(), static_cast<long long>(outage.count()));
      ASSERT_TRUE(cluster.PartitionRegion(cluster.region(victim), true));
      std::this_thread::sleep_for(outage);
      ASSERT_TRUE(cluster.HealAll());
      continue;
    }
    std::printf("[chaos] %.1f s: %s node %zu%s for %lld ms\n", rec.NowUs() / 1e6, kind == 2 ? "SIGTERM" : "SIGKILL",
                victim, kind == 0 ? " (a shard leader)" : "", static_cast<long long>(outage.count()));
    if (kind == 2) {
      auto st = cluster.TerminateNode(victim);
      ASSERT_TRUE(st.has_value()) << "node " << victim << " did not stop after SIGTERM";
      EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "wait status " << *st;
    } else {
      cluster.KillNode(victim);
    }
    std::this_thread::sleep_for(outage);
    ASSERT_TRUE(cluster.StartNode(victim));
    ASSERT_EQ(cluster.WaitServing(victim), "");
  }
  const int64_t calm = rec.NowUs();
  ASSERT_TRUE(WaitFor([&] { return rec.AckedWritesSince(calm) >= 30; }, seconds(60)))
      << "after the faults the cluster acknowledged only " << rec.AckedWritesSince(calm) << " strong writes";
  workers.Join();

  FinalChecks(cluster, rec, KeyNames(kChaosKeys), kShards, "chaos");

  // CRDTs: every region converges to one state that holds every acknowledged increment and
  // element, and nothing that was never sent.
  ExpectEventualConverged(cluster, ChaosKeys(), tally, "chaos");
}

}  // namespace
}  // namespace geokv::integration
