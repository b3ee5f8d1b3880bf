// The phi-accrual failure detector: WAN jitter (intervals +-40%, lost heartbeats, latency
// spikes) never makes a live node suspect, while a node that stops is suspected and then
// declared down within bounded times.
#include "core/engine/failure_detector.h"

#include <gtest/gtest.h>

#include <random>

namespace geokv::placement {
namespace {

constexpr int64_t kSecond = 1'000'000;

TEST(FailureDetector, UnknownUntilTheFirstHeartbeat) {
  FailureDetector fd;
  EXPECT_EQ(fd.Check(1, 0), Verdict::kUnknown);
  EXPECT_EQ(fd.Phi(1, 100 * kSecond), 0);
  fd.Heartbeat(1, 5 * kSecond);
  EXPECT_EQ(fd.Check(1, 5 * kSecond), Verdict::kAlive);
  fd.Forget(1);
  EXPECT_EQ(fd.Check(1, 6 * kSecond), Verdict::kUnknown);
}

TEST(FailureDetector, PhiGrowsWithSilence) {
  FailureDetector fd;
  int64_t t = 0;
  for (int i = 0; i < 50; ++i) fd.Heartbeat(1, t += kSecond);
  double last = -1;
  for (int64_t s = 0; s <= 30 * kSecond; s += kSecond / 10) {
    const double phi = fd.Phi(1, t + s);
    EXPECT_GE(phi, last);
    last = phi;
  }
  EXPECT_EQ(last, FailureDetector::kPhiMax);
  // The floor of the standard deviation holds for perfectly regular heartbeats.
  EXPECT_DOUBLE_EQ(fd.StdDevUs(1), static_cast<double>(fd.options().min_stddev_us));
  EXPECT_DOUBLE_EQ(fd.MeanUs(1), static_cast<double>(kSecond));
}

// Heartbeats every second, each interval off by up to +-40%, one in fifty lost, one in a
// hundred delayed by a WAN latency spike of up to 1.5 s: checked every 50 ms for 3 hours,
// never suspect.
TEST(FailureDetector, WanJitterDoesNotFlap) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> jitter(-0.4, 0.4);
    std::uniform_int_distribution<int> percent(0, 99);
    FailureDetector fd;
    int64_t sent = 0;
    int64_t next_check = 0;
    double phi_max = 0;
    for (int i = 0; i < 3 * 3600; ++i) {
      sent += static_cast<int64_t>(kSecond * (1.0 + jitter(rng)));
      if (percent(rng) < 2) continue;  // lost
      const int64_t spike = percent(rng) == 0 ? static_cast<int64_t>(1.5 * kSecond * (jitter(rng) + 0.4) / 0.8) : 0;
      const int64_t arrival = sent + 40'000 + spike;
      for (; next_check < arrival; next_check += 50'000) {
        phi_max = std::max(phi_max, fd.Phi(7, next_check));
        ASSERT_EQ(fd.Check(7, next_check) == Verdict::kSuspect || fd.Check(7, next_check) == Verdict::kDown, false)
            << "seed " << seed << " at " << next_check << " us, phi " << fd.Phi(7, next_check);
      }
      fd.Heartbeat(7, arrival);
    }
    EXPECT_LT(phi_max, fd.options().suspect_phi) << "seed " << seed;
  }
}

// A node that stops: suspect within 8 s, down within 20 s, and never down before
// down_silence_us however high phi is.
TEST(FailureDetector, AStoppedNodeIsSuspectedThenDown) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> jitter(-0.4, 0.4);
  FailureDetector fd;
  int64_t t = 0;
  for (int i = 0; i < 600; ++i) fd.Heartbeat(3, t += static_cast<int64_t>(kSecond * (1.0 + jitter(rng))));
  const int64_t stopped = t;
  int64_t suspect_at = -1, down_at = -1;
  for (int64_t now = stopped; now < stopped + 60 * kSecond; now += 10'000) {
    const Verdict v = fd.Check(3, now);
    if (v == Verdict::kSuspect && suspect_at < 0) suspect_at = now - stopped;
    if (v == Verdict::kDown && down_at < 0) down_at = now - stopped;
  }
  ASSERT_GT(suspect_at, 0);
  ASSERT_GT(down_at, 0);
  EXPECT_GE(suspect_at, fd.options().acceptable_pause_us) << "suspected within the acceptable pause";
  EXPECT_LE(suspect_at, 8 * kSecond);
  EXPECT_GE(down_at, fd.options().down_silence_us);
  EXPECT_LE(down_at, 20 * kSecond);
  EXPECT_LT(suspect_at, down_at);
  // Back: alive again at the next heartbeat.
  fd.Heartbeat(3, stopped + 60 * kSecond);
  EXPECT_EQ(fd.Check(3, stopped + 60 * kSecond), Verdict::kAlive);
}

// One long silence (a partition) does not blind the detector for ever: intervals are
// clamped, and the window forgets.
TEST(FailureDetector, APartitionDoesNotWidenTheModelForEver) {
  FailureDetectorOptions options;
  options.window = 20;
  FailureDetector fd(options);
  int64_t t = 0;
  for (int i = 0; i < 20; ++i) fd.Heartbeat(1, t += kSecond);
  fd.Heartbeat(1, t += 3600 * kSecond);
  EXPECT_LE(fd.MeanUs(1), (19.0 * kSecond + 60.0 * kSecond) / 20 + 1);
  for (int i = 0; i < 20; ++i) fd.Heartbeat(1, t += kSecond);
  EXPECT_DOUBLE_EQ(fd.MeanUs(1), static_cast<double>(kSecond));
  EXPECT_EQ(fd.Check(1, t + 10 * kSecond), Verdict::kSuspect);
}

// Arrivals out of order (a clock that went backwards) are ignored.
TEST(FailureDetector, EarlierArrivalsAreIgnored) {
  FailureDetector fd;
  fd.Heartbeat(1, 10 * kSecond);
  fd.Heartbeat(1, 11 * kSecond);
  fd.Heartbeat(1, 5 * kSecond);
  EXPECT_DOUBLE_EQ(fd.MeanUs(1), static_cast<double>(kSecond));
}

}  // namespace
}  // namespace geokv::placement
