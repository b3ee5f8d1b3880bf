// Shared options of the Paxos simulation tests and the soak runner.
#ifndef GEOKV_TESTS_SIM_PAXOS_SIM_OPTIONS_H_
#define GEOKV_TESTS_SIM_PAXOS_SIM_OPTIONS_H_

#include "core/sim/paxos_cluster.h"

namespace geokv::sim {

// Seed s runs 3 replicas (VA, CA, OR) when even and 5 (VA, CA, OR, EU, JP) when odd, except
// that seeds 3 mod 5 change the membership (below).
inline PaxosSimOptions SuiteOptions(uint64_t seed) {
  PaxosSimOptions o;
  o.seed = seed;
  o.replicas = seed % 2 == 0 ? 3 : 5;
  o.clients = 8;
  o.keys = 4;
  o.ops_per_client = 60;
  o.fault_phase_us = 20'000'000;
  o.clock_drift_max = 0.0005;
  // Two seeds in three take snapshots (every 10..39 slots), so lagging replicas are
  // caught up with a snapshot and restarts recover from one.
  o.compact_every_slots = seed % 3 == 0 ? 0 : 10 + static_cast<int>(seed % 30);
  // Half of those send their snapshots in chunks of 64 bytes (a few per snapshot), so
  // chunk loss, duplication, reordering and interleaved transfers are exercised.
  if (seed % 3 == 1) o.config.snapshot_chunk_bytes_max = 64;
  o.config.tick_us = 10'000;
  o.config.heartbeat_ticks = 5;
  o.config.election_ticks = 30;
  o.config.resend_ticks = 30;
  o.config.window_slots = 32;
  o.config.lease_us = 250'000;
  o.config.clock_drift_max = 0.001;  // the bound the protocol assumes >= the real drift
  // A quarter of the seeds name a preferred leader, which must take over when healthy.
  if (seed % 4 == 1) o.config.preferred_leader = static_cast<uint32_t>((seed / 4) % o.replicas);
  // One seed in five changes the membership under the faults: five replicas, the genesis
  // group of three, the nemesis adding, promoting and removing replicas.
  if (seed % 5 == 3) {
    o.replicas = 5;
    o.genesis_voters = 3;
    o.member_changes = true;
  }
  // Clients give up after a few attempts, so histories hold operations of unknown outcome.
  o.client_attempts_max = 8;
  return o;
}

}  // namespace geokv::sim

#endif  // GEOKV_TESTS_SIM_PAXOS_SIM_OPTIONS_H_
