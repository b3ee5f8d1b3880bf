// The Multi-Paxos simulation suite: many seeds with faults, invariants after every event,
// Porcupine on every history, plus the proofs that the checks can fail and that a seed
// replays exactly. Seeds per run: GEOKV_SIM_SEEDS (set by CMake from the cache variable),
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
  for (uint64_t seed : seeds) {
    PaxosSimResult r = RunPaxosSim(SuiteOptions(seed));
    EXPECT_TRUE(r.ok) << "GEOKV_SEED=" << seed << " " << r.failure;
    EXPECT_EQ(r.malformed, 0u) << "GEOKV_SEED=" << seed;
    EXPECT_FALSE(r.history.empty()) << "GEOKV_SEED=" << seed;
    runs.push_back(std::move(r));
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

}  // namespace
}  // namespace geokv::sim
