// Whole engines under the simulator: several shards, strong and eventual keys side by
// side, a policy change, faults and crashes. Porcupine checks every strong history; the
// cluster checks convergence and that no acknowledged update is lost. Seeds:
// GEOKV_SIM_SEEDS (split by GEOKV_SIM_SHARD / GEOKV_SIM_SHARDS); GEOKV_SEED=<n> reruns one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/sim/engine_cluster.h"
#include "core/sim/network.h"
#include "core/sim/paxos_cluster.h"

namespace geokv::sim {
namespace {

EngineSimOptions Options(uint64_t seed) {
  EngineSimOptions o;
  o.seed = seed;
  o.regions = seed % 4 == 0 ? 5 : 3;
  return o;
}

// Runs the seeds; returns the seeds Porcupine rejected.
std::vector<uint64_t> RunSeeds(const std::vector<uint64_t>& seeds, const std::string& name,
                               const EngineSimOptions& base, bool expect_ok) {
  std::vector<PaxosSimResult> histories;
  size_t spread = 0;  // seeds whose acknowledged writes reached two shards or more
  EngineSimResult total;
  for (uint64_t seed : seeds) {
    EngineSimOptions o = base;
    o.seed = seed;
    o.regions = Options(seed).regions;
    EngineSimResult r = RunEngineSim(o);
    if (expect_ok) {
      EXPECT_TRUE(r.ok) << "GEOKV_SEED=" << seed << " " << r.failure;
      EXPECT_GT(r.strong_ok, 0u) << "GEOKV_SEED=" << seed << " no strong operation succeeded";
      EXPECT_GT(r.eventual_ok, 0u) << "GEOKV_SEED=" << seed << " no eventual operation succeeded";
      if (r.shards_used >= 2) spread++;
    }
    total.strong_ok += r.strong_ok;
    total.strong_unknown += r.strong_unknown;
    total.eventual_ok += r.eventual_ok;
    total.crashes += r.crashes;
    total.pauses += r.pauses;
    total.fail_stops += r.fail_stops;
    total.snapshots += r.snapshots;
    total.reforwards += r.reforwards;
    total.leader_handoffs += r.leader_handoffs;
    total.verdicts += r.verdicts;
    total.leaders_planned += r.leaders_planned;
    total.member_changes += r.member_changes;
    total.replicas_moved += r.replicas_moved;
    total.disks_lost += r.disks_lost;
    total.foreign_disk_messages += r.foreign_disk_messages;
    total.nodes_added += r.nodes_added;
    total.nodes_removed += r.nodes_removed;
    total.metadata_voters_replaced += r.metadata_voters_replaced;
    total.departure_cuts += r.departure_cuts;
    if (expect_ok && base.grow) {
      // Every seed grows by one node per region and replaces one of them.
      EXPECT_EQ(r.nodes_added, static_cast<uint64_t>(o.regions) + 1) << "GEOKV_SEED=" << seed;
      EXPECT_EQ(r.nodes_removed, 1u) << "GEOKV_SEED=" << seed;
    }
    PaxosSimResult h;
    h.seed = seed;
    h.history = std::move(r.history);
    histories.push_back(std::move(h));
  }
  std::printf("%s: %zu seeds: strong ok %llu unknown %llu, eventual ok %llu; crashes %llu, pauses %llu, "
              "fail-stops %llu, snapshots %llu, forwards re-sent %llu, leaderships handed off %llu, "
              "node verdicts %llu, leaderships planned %llu, data directories lost %llu (peer messages "
              "dropped from them %llu), membership changes %llu, replicas moved %llu, nodes added %llu, "
              "nodes removed %llu (metadata voters among them %llu), links cut at a departure %llu\n",
              name.c_str(), seeds.size(), (unsigned long long)total.strong_ok, (unsigned long long)total.strong_unknown,
              (unsigned long long)total.eventual_ok, (unsigned long long)total.crashes, (unsigned long long)total.pauses,
              (unsigned long long)total.fail_stops, (unsigned long long)total.snapshots,
              (unsigned long long)total.reforwards, (unsigned long long)total.leader_handoffs,
              (unsigned long long)total.verdicts, (unsigned long long)total.leaders_planned,
              (unsigned long long)total.disks_lost, (unsigned long long)total.foreign_disk_messages,
              (unsigned long long)total.member_changes, (unsigned long long)total.replicas_moved,
              (unsigned long long)total.nodes_added, (unsigned long long)total.nodes_removed,
              (unsigned long long)total.metadata_voters_replaced, (unsigned long long)total.departure_cuts);
  if (expect_ok) {
    EXPECT_GT(spread * 2, seeds.size()) << "strong keys do not spread over the shards";
    // Even seeds of a growing cluster lose a metadata voter for good, and replace it.
    if (base.grow && seeds.size() >= 4) {
      EXPECT_GT(total.metadata_voters_replaced, 0u) << "no metadata voter was replaced";
    }
    // Leaders die and pause under forwarded writes: the re-send path must run.
    if (seeds.size() >= 20) {
      EXPECT_GT(total.reforwards, 0u) << "no forward was ever re-sent to a new leader";
      // With disk loss on, nodes lose their data directories, come back empty and are
      // ignored by their peers.
      if (base.disk_loss) {
        EXPECT_GT(total.disks_lost, 0u);
        EXPECT_GT(total.foreign_disk_messages, 0u);
      }
      // Every run drains a node, and pauses and crashes make the detectors rule.
      EXPECT_GT(total.leader_handoffs, 0u) << "no draining node ever handed a leadership away";
      // Verdicts come in clusters (a long pause or an isolation, in about one seed in ten):
      // 30 seeds may hold none, so this needs a hundred.
      if (seeds.size() >= 100) {
        EXPECT_GT(total.verdicts, 0u) << "no failure detector ever proposed a node state";
      }
      EXPECT_GT(total.leaders_planned, 0u) << "no placement driver ever moved a planned leadership";
      // With several nodes per region, the drained node's replicas move to the others.
      if (base.nodes_per_region > 1) {
        EXPECT_GT(total.replicas_moved, 0u) << "no replica ever moved";
      }
    }
  }
  // Named by the first seed too: soak chunks of one shard run side by side.
  const std::string path = std::string(GEOKV_SIM_HISTORY_DIR) + "/" + name + "_from" +
                           std::to_string(seeds.empty() ? 0 : seeds.front()) + ".json";
  WriteHistories(path, histories);
  auto rejected = PorcupineRejects(GEOKV_PORCUPINE_CHECK, path);
  EXPECT_TRUE(rejected.has_value()) << "porcupine-check did not run on " << path;
  return rejected.value_or(std::vector<uint64_t>{});
}

TEST(EngineSim, SeedsWithFaults) {
  const int shard = SuiteShard();
  const std::vector<uint64_t> seeds = SuiteSeeds(20);
  if (seeds.empty()) GTEST_SKIP() << "GEOKV_SEED runs in shard 0 only";
  for (uint64_t seed : RunSeeds(seeds, "engine_shard" + std::to_string(shard), Options(1), true)) {
    ADD_FAILURE() << "GEOKV_SEED=" << seed << " strong history is not linearizable (Porcupine)";
  }
}

// A node loses its data directory once per seed (it crashes and comes back on an empty
// disk), under every other fault: its peers ignore it and it knows it, acknowledges
// nothing, its clients turn to the next region, and the others go on: strong keys stay
// linearizable and converge; the map and the policy converge. (The eventual checks are
// skipped once a node is ignored: engine_cluster.h, docs/operations.md.) Seeds: a fifth of
// GEOKV_SIM_SEEDS, in shard 0.
// Two nodes per region, eight shards, twelve clients.
void TwoPerRegion(EngineSimOptions* o) {
  o->nodes_per_region = 2;
  o->shards = 8;
  o->clients = 12;
}

// One node per region, then one more per region added, and one of those replaced.
void Grow(EngineSimOptions* o) {
  o->grow = true;
  o->shards = 8;
}

// The seeds of a scenario that runs in shard 0 only: a fifth of GEOKV_SIM_SEEDS (at least
// 20), or GEOKV_SEED.
std::vector<uint64_t> FifthOfTheSeeds() {
  std::vector<uint64_t> seeds = SuiteSeeds(20);
  if (std::getenv("GEOKV_SEED") == nullptr) {
    const char* total = std::getenv("GEOKV_SIM_SEEDS");
    const uint64_t n = std::max<uint64_t>(20, (total ? std::strtoull(total, nullptr, 10) : 100) / 5);
    seeds.clear();
    for (uint64_t s = 1; s <= n; ++s) seeds.push_back(s);
  }
  return seeds;
}

TEST(EngineSim, LostDataDirectoriesAreIgnored) {
  if (SuiteShard() != 0) GTEST_SKIP() << "runs in shard 0";
  const std::vector<uint64_t> seeds = FifthOfTheSeeds();
  EngineSimOptions o = Options(1);
  o.disk_loss = true;
  for (uint64_t seed : RunSeeds(seeds, "engine_disk_loss", o, true)) {
    ADD_FAILURE() << "GEOKV_SEED=" << seed << " strong history is not linearizable (Porcupine)";
  }
}

// Two nodes per region (6 or 10 nodes), 8 shards: each shard's replica in a region is on
// one of the region's two nodes, the metadata group has learners, requests for shards a
// node does not hold are proxied, and every fault of the simulator applies to every node
// (isolations and crashes of one node of a region, pauses of shard leaders, storage
// errors); a drained node is one of the six. Strong keys stay linearizable and converge on
// their replicas; eventual keys converge on every node. Seeds: a fifth of GEOKV_SIM_SEEDS,
// in shard 0.
TEST(EngineSim, TwoNodesPerRegion) {
  if (SuiteShard() != 0) GTEST_SKIP() << "runs in shard 0";
  EngineSimOptions o = Options(1);
  TwoPerRegion(&o);
  for (uint64_t seed : RunSeeds(FifthOfTheSeeds(), "engine_two_per_region", o, true)) {
    ADD_FAILURE() << "GEOKV_SEED=" << seed << " strong history is not linearizable (Porcupine)";
  }
}

// A cluster grows and replaces a node under every fault of the simulator: one node per
// region at first; early on, the operator adds one node per region (each joins on an empty
// disk: the metadata group's map, its eventual keys by state transfers, then shard replicas
// moved onto it by the placement driver), and clients turn to the added nodes; later one of
// them dies for good, and the operator replaces it on an empty disk and removes it. Strong
// keys stay linearizable and converge; eventual keys converge on every live node, with
// nothing acknowledged lost but what the dead node had not shipped. Seeds: a fifth of
// GEOKV_SIM_SEEDS, in shard 0.
TEST(EngineSim, GrowAndReplace) {
  if (SuiteShard() != 0) GTEST_SKIP() << "runs in shard 0";
  EngineSimOptions o = Options(1);
  Grow(&o);
  for (uint64_t seed : RunSeeds(FifthOfTheSeeds(), "engine_grow_and_replace", o, true)) {
    ADD_FAILURE() << "GEOKV_SEED=" << seed << " strong history is not linearizable (Porcupine)";
  }
}

TEST(EngineSim, SameSeedSameTrace) {
  const uint64_t seed = static_cast<uint64_t>(SeedFromEnvOr(11));
  EngineSimResult a = RunEngineSim(Options(seed));
  EngineSimResult b = RunEngineSim(Options(seed));
  EngineSimResult c = RunEngineSim(Options(seed + 4));
  EXPECT_EQ(a.trace_hash, b.trace_hash) << "GEOKV_SEED=" << seed;
  EXPECT_EQ(a.end_us, b.end_us);
  EXPECT_EQ(a.history.size(), b.history.size());
  EXPECT_NE(a.trace_hash, c.trace_hash);
}

// With the recovery of accepted values switched off in every shard, a new leader can
// overwrite chosen writes; Porcupine must notice within a bounded number of seeds.
TEST(EngineSim, BrokenRecoveryIsCaught) {
  EngineSimOptions o = Options(1);
  o.unsafe_skip_phase1_recovery = true;
  std::vector<uint64_t> seeds;
  for (uint64_t s = 1; s <= 60; ++s) seeds.push_back(s);
  auto rejected = RunSeeds(seeds, "engine_broken", o, false);
  EXPECT_FALSE(rejected.empty()) << "60 seeds with unsafe_skip_phase1_recovery and no violation found";
}

// Shards that hold tens of MiB and compact many times, values up to the limit, under every
// fault: snapshots of any size reach lagging and restarted replicas.
TEST(EngineSim, LargeShardsCompactManyTimes) {
  for (uint64_t seed : {1, 2}) {
    EngineSimOptions o = Options(seed);
    o.regions = 3;
    o.shards = 2;
    o.compact_every_slots = 8;
    o.bulk_writes = 256;
    o.bulk_keys = 128;
    o.bulk_value_bytes = 256 << 10;
    o.deadline_us = 300'000'000;
    EngineSimResult r = RunEngineSim(o);
    EXPECT_TRUE(r.ok) << "GEOKV_SEED=" << seed << " " << r.failure;
    std::printf("seed %llu: %llu bulk writes acknowledged (%llu MiB), %llu snapshots, %llu crashes, %llu pauses\n",
                (unsigned long long)seed, (unsigned long long)r.bulk_ok, (unsigned long long)(r.bulk_bytes >> 20),
                (unsigned long long)r.snapshots, (unsigned long long)r.crashes, (unsigned long long)r.pauses);
    EXPECT_GT(r.bulk_bytes, uint64_t{64} << 20) << "GEOKV_SEED=" << seed << " wrote too little to matter";
    EXPECT_GT(r.snapshots, 40u) << "GEOKV_SEED=" << seed;
  }
}

// Each fault of the simulator comes with a mutant of the engine that only that fault
// exposes. The suite must reject the mutant at a named seed (found by searching seeds once;
// the simulation is deterministic, so the seed keeps failing) and accept the same seed
// without it. GEOKV_MUTANT_SEARCH=<n> (or <first>-<last>) searches seeds 1..n (or that
// range) instead and prints the rejected.
struct Mutant {
  const char* name;
  void (*apply)(EngineSimOptions*);  // the broken variant
  uint64_t seed;
  bool disk_loss = false;  // the fault that exposes it, in the clean run too
  bool two_per_region = false;  // the topology that exposes it, likewise
  bool grow = false;            // the growth and replacement that expose it, likewise
};

void CheckMutant(const Mutant& m) {
  EngineSimOptions clean = Options(1);
  clean.disk_loss = m.disk_loss;
  if (m.two_per_region) TwoPerRegion(&clean);
  if (m.grow) Grow(&clean);
  EngineSimOptions broken = clean;
  m.apply(&broken);
  if (const char* search = std::getenv("GEOKV_MUTANT_SEARCH")) {
    // "<n>" searches seeds 1..n, "<first>-<last>" that range.
    std::vector<uint64_t> seeds;
    char* end = nullptr;
    uint64_t first = 1, last = std::strtoull(search, &end, 10);
    if (end != nullptr && *end == '-') {
      first = last;
      last = std::strtoull(end + 1, nullptr, 10);
    }
    for (uint64_t s = first; s <= last; ++s) seeds.push_back(s);
    for (uint64_t s : seeds) {
      EngineSimOptions o = broken;
      o.seed = s;
      o.regions = Options(s).regions;
      EngineSimResult r = RunEngineSim(o);
      if (!r.ok) std::printf("%s: seed %llu fails the cluster checks: %s\n", m.name, (unsigned long long)s, r.failure.substr(0, 160).c_str());
    }
    for (uint64_t s : RunSeeds(seeds, std::string("search_") + m.name, broken, false)) {
      std::printf("%s: seed %llu rejected by Porcupine\n", m.name, (unsigned long long)s);
    }
    return;
  }
  EngineSimOptions o = broken;
  o.seed = m.seed;
  o.regions = Options(m.seed).regions;
  EngineSimResult r = RunEngineSim(o);
  bool caught = !r.ok;
  if (!caught) caught = !RunSeeds({m.seed}, std::string("mutant_") + m.name, broken, false).empty();
  EXPECT_TRUE(caught) << m.name << ": GEOKV_SEED=" << m.seed << " no longer catches the mutant";
  EXPECT_TRUE(RunSeeds({m.seed}, std::string("clean_") + m.name, clean, true).empty())
      << "GEOKV_SEED=" << m.seed << " fails without the mutant " << m.name;
}

TEST(EngineSim, PausedLeaderWithCachedLeaseClockIsCaught) {
  CheckMutant({"lease_cached_time", [](EngineSimOptions* o) { o->unsafe_lease_cached_time = true; }, 17});
}

TEST(EngineSim, ForwardIdsWithoutIncarnationAreCaught) {
  CheckMutant({"forward_ids_restart", [](EngineSimOptions* o) { o->unsafe_forward_ids_restart = true; }, 51});
}

TEST(EngineSim, IgnoredStorageErrorsAreCaught) {
  CheckMutant({"ignore_storage_errors", [](EngineSimOptions* o) { o->unsafe_ignore_storage_errors = true; }, 4});
}

// Commands share a slot when they queue behind a membership change (replica moves, with
// two nodes per region).
TEST(EngineSim, ApplyingOnlyTheFirstCommandOfASharedSlotIsCaught) {
  CheckMutant({"apply_first_of_shared_slot", [](EngineSimOptions* o) { o->unsafe_apply_first_of_shared_slot = true; },
               35, false, true});
}

// A move finished (the replaced node erases its replica) as soon as its leader committed
// the removal: the leader dies with the voters that did not learn the commit still
// counting the erased replica, and the shard never elects a leader again.
TEST(EngineSim, FinishingAMoveBeforeTheVotersKnowIsCaught) {
  CheckMutant({"finish_move_unsettled", [](EngineSimOptions* o) { o->unsafe_finish_move_unsettled = true; }, 206,
               false, false, true});
}

// A move whose target dies is aborted in the map while its removal of the replaced replica
// is already committed in the shard's group: without bringing the placed replica back, the
// aborted move's voter goes as a stray and the region has no replica left (the defect the
// growth simulation exposed at this seed). Disabled: since a move's learner answers its
// group only once its CRDT replica has joined, the timing that exposed it no longer occurs
// in seeds 1..1500 (GEOKV_MUTANT_SEARCH); a fault that kills a move's target right after its
// group removed the replica it replaces is still to be written. Run it with
// --gtest_also_run_disabled_tests and GEOKV_MUTANT_SEARCH to look again.
TEST(EngineSim, DISABLED_LeavingARegionWithoutAReplicaAfterAnAbortedMoveIsCaught) {
  CheckMutant({"no_member_repair", [](EngineSimOptions* o) { o->unsafe_no_member_repair = true; }, 379, false, false,
               true});
}

// A departed CRDT replica released before every other replica acknowledged what it wrote:
// the eventual writes it acknowledged last are lost when its links to the other replicas
// are cut as it departs (departure_cuts).
TEST(EngineSim, ReleasingADepartedReplicaBeforeItShippedIsCaught) {
  CheckMutant({"release_unshipped", [](EngineSimOptions* o) { o->unsafe_release_unshipped = true; }, 4, false, false,
               true});
}

// A node back on an empty disk that its peers trust again: forgotten promises and accepts,
// CRDT sequence numbers and dots reused, reads from an empty state.
TEST(EngineSim, TrustingALostDataDirectoryIsCaught) {
  CheckMutant({"trust_any_disk", [](EngineSimOptions* o) { o->unsafe_trust_any_disk = true; }, 42, true});
}

}  // namespace
}  // namespace geokv::sim
