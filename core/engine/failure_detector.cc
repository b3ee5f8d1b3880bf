#include "core/engine/failure_detector.h"

#include <algorithm>
#include <cmath>

namespace geokv::placement {

namespace {
// Intervals longer than this are clamped before they enter the statistics: one very long
// silence (a node back from a partition) must not widen the distribution for ever.
constexpr int64_t kIntervalMaxUs = 60'000'000;
}  // namespace

void FailureDetector::Heartbeat(NodeId node, int64_t now_us) {
  auto [it, fresh] = nodes_.try_emplace(node);
  History& h = it->second;
  if (fresh) {
    h.last_us = now_us;
    return;
  }
  if (now_us < h.last_us) return;
  const int64_t interval = std::min(now_us - h.last_us, kIntervalMaxUs);
  h.last_us = now_us;
  h.intervals.push_back(interval);
  h.sum += static_cast<double>(interval);
  h.sum_squares += static_cast<double>(interval) * static_cast<double>(interval);
  if (h.intervals.size() > options_.window) {
    const double old = static_cast<double>(h.intervals.front());
    h.intervals.pop_front();
    h.sum -= old;
    h.sum_squares -= old * old;
  }
}

double FailureDetector::MeanUs(NodeId node) const {
  auto it = nodes_.find(node);
  if (it == nodes_.end() || it->second.intervals.empty()) return static_cast<double>(options_.first_interval_us);
  return it->second.sum / static_cast<double>(it->second.intervals.size());
}

double FailureDetector::StdDevUs(NodeId node) const {
  auto it = nodes_.find(node);
  const double floor = static_cast<double>(options_.min_stddev_us);
  if (it == nodes_.end() || it->second.intervals.size() < 2) {
    // Before there is a spread to measure, assume a wide one (a quarter of the mean).
    return std::max(floor, MeanUs(node) / 4);
  }
  const double n = static_cast<double>(it->second.intervals.size());
  const double mean = it->second.sum / n;
  const double variance = std::max(0.0, it->second.sum_squares / n - mean * mean);
  return std::max(floor, std::sqrt(variance));
}

double FailureDetector::Phi(NodeId node, int64_t now_us) const {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return 0;
  const double silence = static_cast<double>(std::max<int64_t>(0, now_us - it->second.last_us));
  const double mean = MeanUs(node) + static_cast<double>(options_.acceptable_pause_us);
  const double y = (silence - mean) / StdDevUs(node);
  // P[interval > silence] for the normal model.
  const double p_later = 0.5 * std::erfc(y / std::sqrt(2.0));
  if (p_later <= 0) return kPhiMax;
  return std::min(kPhiMax, -std::log10(p_later));
}

Verdict FailureDetector::Check(NodeId node, int64_t now_us) const {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return Verdict::kUnknown;
  const double phi = Phi(node, now_us);
  if (phi >= options_.down_phi && now_us - it->second.last_us >= options_.down_silence_us) return Verdict::kDown;
  if (phi >= options_.suspect_phi) return Verdict::kSuspect;
  return Verdict::kAlive;
}

}  // namespace geokv::placement
