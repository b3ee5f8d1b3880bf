// The Multi-Paxos simulation suite: many seeds with faults (pauses included), invariants
// after every event, Porcupine on every history, plus the proofs that the checks can fail
// (broken recovery; the cached-time lease of a paused leader and learners counted as voters,
// each at a named seed) and that a
// seed replays exactly. Seeds per run: GEOKV_SIM_SEEDS (set by CMake from the cache variable),
// split across shards by GEOKV_SIM_SHARD / GEOKV_SIM_SHARDS; GEOKV_SEED=<n> reruns one seed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/sim/network.h"
#include "core/sim/paxos_cluster.h"
#include "tests/sim/paxos/sim_options.h"

namespace geokv::sim {
namespace {

std::string HistoryPath(const std::string& name) {
  return std::string(GEOKV_SIM_HISTORY_DIR) + "/" + name + ".json";
}

// Runs `seeds`, checks each result and then all histories with Porcupine in one call.
void RunAndCheck(const std::vector<uint64_t>& seeds, const std::string& name) {
  std::vector<PaxosSimResult> runs;
  runs.reserve(seeds.size());
  uint64_t pauses = 0, held = 0, installed = 0, member_changes = 0;
  for (uint64_t seed : seeds) {
    PaxosSimResult r = RunPaxosSim(SuiteOptions(seed));
    EXPECT_TRUE(r.ok) << "GEOKV_SEED=" << seed << " " << r.failure;
    EXPECT_EQ(r.malformed, 0u) << "GEOKV_SEED=" << seed;
    EXPECT_FALSE(r.history.empty()) << "GEOKV_SEED=" << seed;
    pauses += r.pauses;
    held += r.held_inputs;
    installed += r.snapshots_installed;
    member_changes += r.member_changes;
    runs.push_back(std::move(r));
  }
  if (seeds.size() >= 20) {
    // The faults really happen: replicas are paused with inputs held, and lagging replicas
    // install snapshots sent in chunks.
    EXPECT_GT(pauses, 0u);
    EXPECT_GT(held, 0u);
    EXPECT_GT(installed, 0u);
    // One seed in five changes the membership (learners added, promoted, replicas removed).
    EXPECT_GT(member_changes, 0u);
  }
  const std::string path = HistoryPath(name);
  WriteHistories(path, runs);
  auto rejected = PorcupineRejects(GEOKV_PORCUPINE_CHECK, path);
  ASSERT_TRUE(rejected.has_value()) << "porcupine-check did not run on " << path;
  for (uint64_t seed : *rejected) {
    ADD_FAILURE() << "GEOKV_SEED=" << seed << " history is not linearizable (Porcupine)";
  }
}

TEST(PaxosSim, SeedsWithFaults) {
  const int shard = SuiteShard();
  const std::vector<uint64_t> seeds = SuiteSeeds(20);
  if (seeds.empty()) GTEST_SKIP() << "GEOKV_SEED runs in shard 0 only";
  RunAndCheck(seeds, "seeds_shard" + std::to_string(shard));
}

TEST(PaxosSim, SameSeedSameTrace) {
  const uint64_t seed = static_cast<uint64_t>(SeedFromEnvOr(7));
  PaxosSimResult a = RunPaxosSim(SuiteOptions(seed));
  PaxosSimResult b = RunPaxosSim(SuiteOptions(seed));
  PaxosSimResult c = RunPaxosSim(SuiteOptions(seed + 2));  // same size, other seed
  EXPECT_EQ(a.trace_hash, b.trace_hash) << "GEOKV_SEED=" << seed;
  EXPECT_EQ(a.end_us, b.end_us);
  ASSERT_EQ(a.history.size(), b.history.size());
  for (size_t i = 0; i < a.history.size(); ++i) {
    EXPECT_EQ(a.history[i].call_us, b.history[i].call_us);
    EXPECT_EQ(a.history[i].out, b.history[i].out);
  }
  EXPECT_NE(a.trace_hash, c.trace_hash);
}

// With recovery of accepted values switched off, a new leader overwrites chosen values.
// The invariant checker is off here so that it is Porcupine that must notice.
TEST(PaxosSim, BrokenRecoveryIsCaughtByPorcupine) {
  constexpr int kBatch = 20;
  constexpr int kBatchesMax = 10;
  for (int batch = 0; batch < kBatchesMax; ++batch) {
    std::vector<PaxosSimResult> runs;
    for (int i = 0; i < kBatch; ++i) {
      const uint64_t seed = 100'000 + static_cast<uint64_t>(batch * kBatch + i);
      PaxosSimOptions o = SuiteOptions(seed);
      o.config.unsafe_skip_phase1_recovery = true;
      o.check_invariants = false;
      runs.push_back(RunPaxosSim(o));
    }
    const std::string path = HistoryPath("broken");
    WriteHistories(path, runs);
    auto rejected = PorcupineRejects(GEOKV_PORCUPINE_CHECK, path);
    ASSERT_TRUE(rejected.has_value()) << "porcupine-check did not run";
    if (!rejected->empty()) {
      std::printf("broken variant caught by Porcupine: GEOKV_SEED=%llu (batch %d)\n",
                  static_cast<unsigned long long>(rejected->front()), batch);
      return;
    }
  }
  FAIL() << "Porcupine did not catch the broken protocol in " << kBatch * kBatchesMax
         << " seeds";
}

// The stale read of a leader paused past its lease (SIGSTOP): with the TEST ONLY flag the
// lease is checked against the time of the last tick, so a read held during the pause and
// handled before the peer messages on resume is answered from a lease that long expired,
// after a new leader committed a newer write. Porcupine must reject that history; the same
// seed with the flag off must pass. Seed 41 was found with
//   paxos_soak 400 1 unsafe_lease_cached_time   (caught: 41, 115, 167, 196, ... of 1..400).
TEST(PaxosSim, CachedLeaseTimeIsCaughtAtANamedSeed) {
  constexpr uint64_t kSeed = 41;
  PaxosSimOptions broken = SuiteOptions(kSeed);
  broken.config.unsafe_lease_cached_time = true;
  PaxosSimResult bad = RunPaxosSim(broken);
  PaxosSimResult good = RunPaxosSim(SuiteOptions(kSeed));
  EXPECT_GT(bad.pauses, 0u);
  EXPECT_TRUE(good.ok) << good.failure;

  const std::string bad_path = HistoryPath("cached_lease_time_broken");
  WriteHistories(bad_path, {bad});
  auto rejected = PorcupineRejects(GEOKV_PORCUPINE_CHECK, bad_path);
  ASSERT_TRUE(rejected.has_value()) << "porcupine-check did not run";
  EXPECT_EQ(*rejected, std::vector<uint64_t>{kSeed})
      << "the stale read of a paused leader went unnoticed at GEOKV_SEED=" << kSeed;

  const std::string good_path = HistoryPath("cached_lease_time_fixed");
  WriteHistories(good_path, {good});
  rejected = PorcupineRejects(GEOKV_PORCUPINE_CHECK, good_path);
  ASSERT_TRUE(rejected.has_value()) << "porcupine-check did not run";
  EXPECT_TRUE(rejected->empty()) << "GEOKV_SEED=" << kSeed << " fails with the fix";
}

}  // namespace
// Membership changes: a learner's acceptance must never count towards a quorum. With the
// TEST ONLY flag it does, and a value "chosen" by the leader and a learner is overwritten
// by the voters; the invariant checker sees two values chosen for one slot. The same seed
// passes without the flag, Porcupine included. Seed 688 (membership seeds are 3 mod 5) was
// found with
//   paxos_soak 1000 1 unsafe_learners_count   (caught: 688, 818 of 1..1000).
TEST(PaxosSim, LearnersCountingTowardsQuorumsIsCaughtAtANamedSeed) {
  constexpr uint64_t kSeed = 688;
  PaxosSimOptions broken = SuiteOptions(kSeed);
  ASSERT_TRUE(broken.member_changes);
  broken.config.unsafe_learners_count = true;
  PaxosSimResult bad = RunPaxosSim(broken);
  EXPECT_FALSE(bad.ok) << "learners voting went unnoticed at GEOKV_SEED=" << kSeed;
  EXPECT_NE(bad.failure.find("two values chosen"), std::string::npos) << bad.failure;

  PaxosSimResult good = RunPaxosSim(SuiteOptions(kSeed));
  EXPECT_TRUE(good.ok) << "GEOKV_SEED=" << kSeed << " " << good.failure;
  EXPECT_GT(good.member_changes, 0u);
  const std::string path = HistoryPath("learners_count");
  std::vector<PaxosSimResult> runs;
  runs.push_back(std::move(good));
  WriteHistories(path, runs);
  auto rejected = PorcupineRejects(GEOKV_PORCUPINE_CHECK, path);
  ASSERT_TRUE(rejected.has_value());
  EXPECT_TRUE(rejected->empty()) << "GEOKV_SEED=" << kSeed << " fails with the fix";
}

}  // namespace geokv::sim
