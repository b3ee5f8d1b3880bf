// Soak runner: paxos_soak <seeds> [first_seed] [unsafe-flag]. Runs that many seeds of the
// simulation suite, checks histories with Porcupine in batches, prints GEOKV_SEED=<n> for
// every failure and exits non-zero if there was one. With a TEST ONLY flag
// (unsafe_lease_cached_time, unsafe_skip_phase1_recovery, unsafe_learners_count) it hunts for the seeds that catch
// that broken variant, to name one in a test.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/sim/paxos_cluster.h"
#include "tests/sim/paxos/sim_options.h"

int main(int argc, char** argv) {
  using geokv::sim::PaxosSimResult;
  const long seeds = argc > 1 ? std::atol(argv[1]) : 1000;
  const long first = argc > 2 ? std::atol(argv[2]) : 1;
  const std::string unsafe = argc > 3 ? argv[3] : "";
  if (!unsafe.empty() && unsafe != "unsafe_lease_cached_time" &&
      unsafe != "unsafe_skip_phase1_recovery" && unsafe != "unsafe_learners_count") {
    std::printf("unknown flag %s\n", unsafe.c_str());
    return 2;
  }
  constexpr long kBatch = 200;  // histories per Porcupine invocation
  int failures = 0;
  uint64_t pauses = 0, held = 0, installed = 0, member_changes = 0, lost = 0, dropped = 0;
  const auto start = std::chrono::steady_clock::now();
  for (long b = 0; b < seeds; b += kBatch) {
    std::vector<PaxosSimResult> runs;
    for (long s = first + b; s < first + std::min(seeds, b + kBatch); ++s) {
      geokv::sim::PaxosSimOptions o = geokv::sim::SuiteOptions(static_cast<uint64_t>(s));
      o.config.unsafe_lease_cached_time = unsafe == "unsafe_lease_cached_time";
      o.config.unsafe_skip_phase1_recovery = unsafe == "unsafe_skip_phase1_recovery";
      o.config.unsafe_learners_count = unsafe == "unsafe_learners_count";
      PaxosSimResult r = geokv::sim::RunPaxosSim(o);
      pauses += r.pauses;
      held += r.held_inputs;
      installed += r.snapshots_installed;
      member_changes += r.member_changes;
      lost += r.lost_changes;
      dropped += r.recovered_dropped;
      if (!r.ok) {
        ++failures;
        std::printf("FAIL GEOKV_SEED=%ld %s\n", s, r.failure.c_str());
      }
      runs.push_back(std::move(r));
    }
    // One file per batch: scripts/soak runs two of these side by side.
    const std::string path = std::string(GEOKV_SIM_HISTORY_DIR) + "/soak_from" + std::to_string(first + b) + ".json";
    geokv::sim::WriteHistories(path, runs);
    auto rejected = geokv::sim::PorcupineRejects(GEOKV_PORCUPINE_CHECK, path);
    if (!rejected) {
      std::printf("FAIL porcupine-check did not run on %s\n", path.c_str());
      return 2;
    }
    for (uint64_t s : *rejected) {
      ++failures;
      std::printf("FAIL GEOKV_SEED=%llu not linearizable\n", static_cast<unsigned long long>(s));
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("seeds %ld..%ld done, %d failures, %.1fs (pauses %llu, inputs held %llu, "
                "snapshots installed %llu, membership changes %llu, lost in recovery %llu, "
                "recovered entries dropped %llu)\n",
                first, first + std::min(seeds, b + kBatch) - 1, failures, secs,
                static_cast<unsigned long long>(pauses), static_cast<unsigned long long>(held),
                static_cast<unsigned long long>(installed),
                static_cast<unsigned long long>(member_changes),
                static_cast<unsigned long long>(lost), static_cast<unsigned long long>(dropped));
    std::fflush(stdout);
  }
  return failures == 0 ? 0 : 1;
}
