#include "replication/crdt/hlc.h"

#include <algorithm>
#include <limits>
#include <string>

#include "replication/crdt/limits.h"

namespace geokv::crdt {

void HlcTimestamp::EncodeTo(Encoder* enc) const {
  enc->PutSigned(physical_ms);
  enc->PutVarint(logical);
  enc->PutVarint(node);
}

Status HlcTimestamp::DecodeFrom(Decoder* dec) {
  uint64_t logical_u = 0, node_u = 0;
  GEOKV_RETURN_IF_ERROR(dec->GetSigned(&physical_ms));
  GEOKV_RETURN_IF_ERROR(dec->GetBounded(std::numeric_limits<uint32_t>::max(), &logical_u, "hlc logical"));
  GEOKV_RETURN_IF_ERROR(dec->GetBounded(kReplicasMax - 1, &node_u, "hlc node"));
  logical = static_cast<uint32_t>(logical_u);
  node = static_cast<uint32_t>(node_u);
  return Status::Ok();
}

HybridClock::HybridClock(HlcOptions options, int64_t persisted_high_water_ms)
    : options_(options), high_water_ms_(persisted_high_water_ms) {
  // Everything issued before the restart had physical < mark, so starting at the mark
  // itself keeps timestamps strictly increasing.
  last_ = HlcTimestamp{persisted_high_water_ms, 0, options_.node};
}

void HybridClock::EnsureBelowHighWater() {
  if (last_.physical_ms >= high_water_ms_) {
    high_water_ms_ = last_.physical_ms + options_.window_ms;
    high_water_dirty_ = true;
  }
}

HlcTimestamp HybridClock::Now(int64_t wall_ms) {
  if (wall_ms > last_.physical_ms) {
    last_.physical_ms = wall_ms;
    last_.logical = 0;
  } else if (last_.logical == std::numeric_limits<uint32_t>::max()) {
    // Logical overflow: borrow the next millisecond rather than wrap.
    ++last_.physical_ms;
    last_.logical = 0;
  } else {
    ++last_.logical;
  }
  last_.node = options_.node;
  EnsureBelowHighWater();
  return last_;
}

HlcTimestamp HybridClock::NowAbove(const HlcTimestamp& floor, int64_t wall_ms) {
  Observe(floor, wall_ms);
  return Now(wall_ms);
}

void HybridClock::Observe(const HlcTimestamp& remote, int64_t wall_ms) {
  if (remote.physical_ms > wall_ms + options_.skew_report_ms) {
    if (options_.unsafe_refuse_remote_ahead) {
      ++refused_remote_;
      return;
    }
    ++remote_ahead_;
    max_remote_ahead_ms_ = std::max(max_remote_ahead_ms_, remote.physical_ms - wall_ms);
  }
  if (remote.physical_ms > last_.physical_ms ||
      (remote.physical_ms == last_.physical_ms && remote.logical > last_.logical)) {
    last_.physical_ms = remote.physical_ms;
    last_.logical = remote.logical;
    EnsureBelowHighWater();
  }
}

std::optional<int64_t> HybridClock::TakeHighWaterToPersist() {
  if (!high_water_dirty_) return std::nullopt;
  high_water_dirty_ = false;
  return high_water_ms_;
}

}  // namespace geokv::crdt
