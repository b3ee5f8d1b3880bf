// RunCrdtScenario: one seeded simulation of the CRDT layer, shared by the sim test suite
// and the benchmarks. A run has an active phase (a workload mixing all four types while
// the network loses, duplicates and reorders messages, links partition, regions crash
// and restart, monotonic clocks are skewed, wall clocks are seconds apart, drift and jump,
// values, elements and keys go up to (and one past) the documented limits) and a quiet phase (everything healed), after which the
// checkers run: identical state everywhere, history check (no acknowledged update lost,
// nothing removed or deleted comes back), every delta acknowledged, causal metadata
// compact.
//
// Deterministic: the seed fixes every choice (all randomness comes from Network::Rng()).
#ifndef GEOKV_CORE_SIM_CRDT_SCENARIO_H_
#define GEOKV_CORE_SIM_CRDT_SCENARIO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/sim/network.h"

namespace geokv::sim {

struct CrdtScenarioOptions {
  int regions = 5;
  Time active_us = 3000000;
  Time quiet_us = 8000000;
  int ops_per_second = 200;
  int keys_per_type = 3;
  bool faults = true;
  size_t retention_batches = 64;  // small, so long absences need state transfer
  bool unsafe_deliver_out_of_order = false;
  // TEST ONLY mutants (see DisseminatorOptions / CrdtLimits): the suite must catch them.
  bool unsafe_refuse_remote_stamps_ahead = false;
  bool unsafe_decode_per_region_caps = false;
  // Operations with values, elements and keys at the documented limits (1 MiB, 4096 B)
  // and one past them; per mille of operations.
  int large_ops_per_mille = 6;
  // Per-region caps small enough that the workload reaches them (limits.h).
  size_t set_elements_max = 4;
};

struct CrdtScenarioResult {
  std::vector<std::string> errors;  // empty when every check passed
  uint64_t trace_hash = 0;
  size_t acked_ops = 0;
  size_t max_metadata_entries = 0;  // per key, sampled over the run
  size_t final_max_metadata_entries = 0;
  uint64_t transfers = 0;
  uint64_t hlc_remote_ahead = 0;  // remote stamps adopted although far ahead
  uint64_t large_ops = 0;         // operations at the value/key limits that succeeded
  uint64_t over_limit_refused = 0;  // operations one past a limit (all refused)
  uint64_t caps_refused = 0;      // set adds refused by the per-region caps
  uint64_t crashes = 0;
  uint64_t tombstones_collected = 0;
};

CrdtScenarioResult RunCrdtScenario(uint64_t seed, const CrdtScenarioOptions& options);

}  // namespace geokv::sim

#endif  // GEOKV_CORE_SIM_CRDT_SCENARIO_H_
