// Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
//
// A timestamp is (physical_ms, logical, node): physical follows the wall clock the caller
// passes in (milliseconds since the Unix epoch; it may jump and may disagree between
// machines by seconds), logical orders events within one millisecond, and node breaks ties
// so that any two timestamps from distinct events differ.
//
// Restarts. The clock never issues a physical part at or above a high-water mark that
// the caller has persisted. When it needs to go past it, it raises the mark by
// `window_ms` and reports the new mark through TakeHighWaterToPersist(); the caller must
// persist it before using (sending or acknowledging) the timestamp. After a restart the
// clock is built with the persisted mark and starts strictly above it, so timestamps are
// monotonic even if the wall clock went backwards across the restart.
//
// Remote clocks ahead. Observe() always adopts a remote timestamp, however far ahead of
// the local wall clock: a stamp that is already in some register must be exceeded by the
// next local write to that register, or that write would silently lose (a put that is a
// no-op). Convergence and "a write takes effect" come before keeping clocks near real
// time, so skew is measured instead of refused: stamps more than `skew_report_ms` ahead
// are counted (remote_ahead()) and the largest lead is kept (max_remote_ahead_ms()).
// The logical part absorbs a lead: while the wall clock is behind, local stamps keep
// the adopted physical part and count up in logical.
//
// Owned by one state machine; not thread-safe.
#ifndef GEOKV_REPLICATION_CRDT_HLC_H_
#define GEOKV_REPLICATION_CRDT_HLC_H_

#include <compare>
#include <cstdint>
#include <optional>

#include "base/status.h"
#include "replication/crdt/codec.h"

namespace geokv::crdt {

struct HlcTimestamp {
  int64_t physical_ms = 0;
  uint32_t logical = 0;
  uint32_t node = 0;
  auto operator<=>(const HlcTimestamp&) const = default;

  void EncodeTo(Encoder* enc) const;
  Status DecodeFrom(Decoder* dec);
};

struct HlcOptions {
  uint32_t node = 0;
  int64_t skew_report_ms = 1000;  // a remote stamp further ahead than this counts as skew
  int64_t window_ms = 10000;      // high-water advance per persist
  // TEST ONLY (mutant, the old behaviour): refuse remote stamps more than skew_report_ms
  // ahead instead of adopting them. The simulator suite must catch it.
  bool unsafe_refuse_remote_ahead = false;
};

class HybridClock {
 public:
  // `persisted_high_water_ms`: the last mark the caller persisted (0 on first start).
  HybridClock(HlcOptions options, int64_t persisted_high_water_ms);

  // A timestamp for a local event at wall time `wall_ms`; strictly greater than every
  // timestamp issued or observed before.
  HlcTimestamp Now(int64_t wall_ms);
  // Observe(floor) then Now(): a stamp strictly above `floor` (e.g. a register's current
  // stamp), whatever the wall clock says.
  HlcTimestamp NowAbove(const HlcTimestamp& floor, int64_t wall_ms);
  // Merges a remote timestamp: later local stamps exceed it. Counts it as skew when it is
  // more than skew_report_ms ahead of `wall_ms`.
  void Observe(const HlcTimestamp& remote, int64_t wall_ms);

  // The new mark to persist, if the clock advanced it since the last call.
  std::optional<int64_t> TakeHighWaterToPersist();
  int64_t high_water_ms() const { return high_water_ms_; }
  uint64_t remote_ahead() const { return remote_ahead_; }
  int64_t max_remote_ahead_ms() const { return max_remote_ahead_ms_; }
  // Only with unsafe_refuse_remote_ahead.
  uint64_t refused_remote() const { return refused_remote_; }
  const HlcTimestamp& last() const { return last_; }

 private:
  void EnsureBelowHighWater();

  const HlcOptions options_;
  HlcTimestamp last_;
  int64_t high_water_ms_;
  bool high_water_dirty_ = false;
  uint64_t remote_ahead_ = 0;
  int64_t max_remote_ahead_ms_ = 0;
  uint64_t refused_remote_ = 0;
};

}  // namespace geokv::crdt

#endif  // GEOKV_REPLICATION_CRDT_HLC_H_
