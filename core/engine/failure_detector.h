// FailureDetector: a phi-accrual failure detector (Hayashibara, Defago, Yared & Katayama,
// "The phi accrual failure detector", SRDS 2004) over the heartbeat arrival times of each
// node, as the metadata leader sees them.
//
// For each node it keeps the last `window` inter-arrival intervals and models the next one as
// a normal distribution N(mean + acceptable_pause, max(stddev, min_stddev)). After a silence
// of t it reports phi(t) = -log10(P[interval > t]): phi 1 means a 10% chance that the node is
// alive and merely late, phi 8 one in 10^8. WAN jitter cannot make it flap: the standard
// deviation never drops under `min_stddev_us` (a steady link would otherwise make the
// distribution so narrow that one late heartbeat looks fatal) and `acceptable_pause_us`
// forgives a lost heartbeat or a GC pause outright.
//
// Verdicts: kSuspect once phi >= suspect_phi; kDown once phi >= down_phi AND the node has
// been silent for at least down_silence_us (replacing a node copies all its replicas, so
// "down" waits long enough for a WAN partition to heal). kUnknown before a first heartbeat.
//
// Pure: time enters as values (a monotonic clock, microseconds); arrivals must be passed in
// non-decreasing time per node (an earlier one is ignored). Thread-compatible.
#ifndef GEOKV_CORE_ENGINE_FAILURE_DETECTOR_H_
#define GEOKV_CORE_ENGINE_FAILURE_DETECTOR_H_

#include <cstdint>
#include <deque>
#include <map>

#include "core/engine/cluster_map.h"

namespace geokv::placement {

struct FailureDetectorOptions {
  size_t window = 100;                        // intervals kept per node
  int64_t min_stddev_us = 250'000;            // floor of the modelled standard deviation
  int64_t acceptable_pause_us = 3'000'000;    // added to the mean interval
  int64_t first_interval_us = 1'000'000;      // assumed before a second heartbeat
  double suspect_phi = 8.0;
  double down_phi = 16.0;
  int64_t down_silence_us = 15'000'000;
};

enum class Verdict : uint8_t { kUnknown, kAlive, kSuspect, kDown };

class FailureDetector {
 public:
  // kPhiMax: what Phi reports when the probability underflows.
  static constexpr double kPhiMax = 1000.0;

  explicit FailureDetector(const FailureDetectorOptions& options = {}) : options_(options) {}

  // A heartbeat from `node` arrived at `now_us`.
  void Heartbeat(NodeId node, int64_t now_us);
  // Forgets a node (removed, or restarted under a new incarnation: start afresh).
  void Forget(NodeId node) { nodes_.erase(node); }

  // Suspicion level at `now_us`; 0 for a node never heard from.
  double Phi(NodeId node, int64_t now_us) const;
  Verdict Check(NodeId node, int64_t now_us) const;
  // The modelled mean and standard deviation of the interval (microseconds); tests.
  double MeanUs(NodeId node) const;
  double StdDevUs(NodeId node) const;

  const FailureDetectorOptions& options() const { return options_; }

 private:
  struct History {
    int64_t last_us = 0;
    std::deque<int64_t> intervals;
    double sum = 0;
    double sum_squares = 0;
  };

  const FailureDetectorOptions options_;
  std::map<NodeId, History> nodes_;
};

}  // namespace geokv::placement

#endif  // GEOKV_CORE_ENGINE_FAILURE_DETECTOR_H_
