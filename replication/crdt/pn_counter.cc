#include "replication/crdt/pn_counter.h"

#include <algorithm>
#include <limits>
#include <string>

#include "replication/crdt/codec.h"
#include "replication/crdt/limits.h"

namespace geokv::crdt {

namespace {
constexpr uint64_t kTotalMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}  // namespace

StatusOr<PnCounter> PnCounter::Add(ReplicaId replica, int64_t delta) {
  if (replica >= kReplicasMax) return InvalidArgument("counter replica id out of range");
  auto [p, n] = totals_[replica];
  if (delta >= 0) {
    if (static_cast<uint64_t>(delta) > kTotalMax - p) {
      return InvalidArgument("counter increments of this region would overflow");
    }
    p += static_cast<uint64_t>(delta);
  } else {
    uint64_t mag = static_cast<uint64_t>(-(delta + 1)) + 1;
    if (mag > kTotalMax - n) return InvalidArgument("counter decrements of this region would overflow");
    n += mag;
  }
  totals_[replica] = {p, n};
  PnCounter d;
  d.totals_[replica] = {p, n};
  return d;
}

void PnCounter::Join(const PnCounter& other) {
  for (const auto& [r, pn] : other.totals_) {
    auto& mine = totals_[r];
    mine.first = std::max(mine.first, pn.first);
    mine.second = std::max(mine.second, pn.second);
  }
}

int64_t PnCounter::Value() const {
  // Wrapping arithmetic in unsigned, then reinterpret: exact whenever the true value fits.
  uint64_t v = 0;
  for (const auto& [r, pn] : totals_) v += pn.first - pn.second;
  return static_cast<int64_t>(v);
}

std::string PnCounter::Encode() const {
  Encoder enc;
  enc.PutByte(kEncodingVersion);
  enc.PutByte(static_cast<uint8_t>(CrdtType::kCounter));
  enc.PutVarint(totals_.size());
  for (const auto& [r, pn] : totals_) {
    enc.PutVarint(r);
    enc.PutVarint(pn.first);
    enc.PutVarint(pn.second);
  }
  return enc.Release();
}

StatusOr<PnCounter> PnCounter::Decode(std::string_view bytes) {
  Decoder dec(bytes);
  GEOKV_RETURN_IF_ERROR(dec.GetHeader(static_cast<uint8_t>(CrdtType::kCounter)));
  uint64_t n = 0;
  GEOKV_RETURN_IF_ERROR(dec.GetBounded(kReplicasMax, &n, "counter entries"));
  PnCounter c;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t r = 0, p = 0, m = 0;
    GEOKV_RETURN_IF_ERROR(dec.GetBounded(kReplicasMax - 1, &r, "replica id"));
    GEOKV_RETURN_IF_ERROR(dec.GetBounded(kTotalMax, &p, "counter total"));
    GEOKV_RETURN_IF_ERROR(dec.GetBounded(kTotalMax, &m, "counter total"));
    if (!c.totals_.empty() && c.totals_.rbegin()->first >= r) {
      return Corruption("counter entries out of order");
    }
    c.totals_[static_cast<ReplicaId>(r)] = {p, m};
  }
  GEOKV_RETURN_IF_ERROR(dec.Finish());
  return c;
}

}  // namespace geokv::crdt
