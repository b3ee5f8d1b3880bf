// Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
//
// A timestamp is (physical_ms, logical, node): physical follows the wall clock the caller
// passes in, logical orders events within one millisecond, and node breaks ties so that
// any two timestamps from distinct events differ.
//
// Restarts. The clock never issues a physical part at or above a high-water mark that
// the caller has persisted. When it needs to go past it, it raises the mark by
// `window_ms` and reports the new mark through TakeHighWaterToPersist(); the caller must
// persist it before using (sending or acknowledging) the timestamp. After a restart the
// clock is built with the persisted mark and starts strictly above it, so timestamps are
// monotonic even if the wall clock went backwards across the restart.
//
// Remote clocks far ahead. Observe() adopts a remote timestamp only if it is at most
// `max_ahead_ms` ahead of the local wall clock; otherwise it is refused (counted in
// rejected_remote()), so one skewed region cannot drag every clock in the cluster into
// the future. The data carrying such a stamp is still joined (convergence needs that).
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
  int64_t max_ahead_ms = 500;  // tolerance for remote clocks ahead of ours
  int64_t window_ms = 10000;   // high-water advance per persist
};

class HybridClock {
 public:
  // `persisted_high_water_ms`: the last mark the caller persisted (0 on first start).
  HybridClock(HlcOptions options, int64_t persisted_high_water_ms);

  // A timestamp for a local event at wall time `wall_ms`; strictly greater than every
  // timestamp issued or observed before.
  HlcTimestamp Now(int64_t wall_ms);
  // Merges a remote timestamp. Returns kInvalidArgument (and counts) when the remote is
  // more than max_ahead_ms ahead of `wall_ms`; the clock is then left unchanged.
  Status Observe(const HlcTimestamp& remote, int64_t wall_ms);

  // The new mark to persist, if the clock advanced it since the last call.
  std::optional<int64_t> TakeHighWaterToPersist();
  int64_t high_water_ms() const { return high_water_ms_; }
  uint64_t rejected_remote() const { return rejected_remote_; }
  const HlcTimestamp& last() const { return last_; }

 private:
  void EnsureBelowHighWater();

  const HlcOptions options_;
  HlcTimestamp last_;
  int64_t high_water_ms_;
  bool high_water_dirty_ = false;
  uint64_t rejected_remote_ = 0;
};

}  // namespace geokv::crdt

#endif  // GEOKV_REPLICATION_CRDT_HLC_H_
