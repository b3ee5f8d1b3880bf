#include "replication/crdt/causal_context.h"

#include <algorithm>
#include <string>

#include "replication/crdt/limits.h"

namespace geokv::crdt {

bool CausalContext::Contains(const Dot& d) const {
  auto it = vv_.find(d.replica);
  if (it != vv_.end() && d.counter <= it->second) return true;
  return cloud_.count(d) != 0;
}

uint64_t CausalContext::Max(ReplicaId replica) const {
  auto it = vv_.find(replica);
  return it == vv_.end() ? 0 : it->second;
}

Dot CausalContext::Next(ReplicaId replica) const {
  uint64_t n = Max(replica);
  // A replica's own cloud dots would mean it minted out of order; count past them anyway.
  auto it = cloud_.lower_bound(Dot{replica + 1, 0});
  if (it != cloud_.begin()) {
    --it;
    if (it->replica == replica) n = std::max(n, it->counter);
  }
  return Dot{replica, n + 1};
}

void CausalContext::Add(const Dot& d) {
  if (d.counter == 0 || Contains(d)) return;
  cloud_.insert(d);
  Compact();
}

void CausalContext::Join(const CausalContext& other) {
  for (const auto& [r, n] : other.vv_) {
    uint64_t& mine = vv_[r];
    mine = std::max(mine, n);
  }
  cloud_.insert(other.cloud_.begin(), other.cloud_.end());
  Compact();
}

void CausalContext::Compact() {
  for (auto it = cloud_.begin(); it != cloud_.end();) {
    auto vit = vv_.find(it->replica);
    uint64_t n = vit == vv_.end() ? 0 : vit->second;
    if (it->counter == n + 1) {
      vv_[it->replica] = n + 1;
      it = cloud_.erase(it);
    } else if (it->counter <= n) {
      it = cloud_.erase(it);
    } else {
      ++it;
    }
  }
  // The loop above walks each replica's dots in increasing order, so one pass suffices.
}

void CausalContext::EncodeTo(Encoder* enc) const {
  enc->PutVarint(vv_.size());
  for (const auto& [r, n] : vv_) {
    enc->PutVarint(r);
    enc->PutVarint(n);
  }
  enc->PutVarint(cloud_.size());
  for (const Dot& d : cloud_) {
    enc->PutVarint(d.replica);
    enc->PutVarint(d.counter);
  }
}

Status CausalContext::DecodeFrom(Decoder* dec) {
  vv_.clear();
  cloud_.clear();
  uint64_t n = 0;
  GEOKV_RETURN_IF_ERROR(dec->GetBounded(kReplicasMax, &n, "version vector entries"));
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t r = 0, c = 0;
    GEOKV_RETURN_IF_ERROR(dec->GetBounded(kReplicasMax - 1, &r, "replica id"));
    GEOKV_RETURN_IF_ERROR(dec->GetVarint(&c));
    if (c == 0) return Corruption("crdt causal context has a zero entry");
    if (!vv_.empty() && vv_.rbegin()->first >= r) {
      return Corruption("crdt causal context entries out of order");
    }
    vv_[static_cast<ReplicaId>(r)] = c;
  }
  // Bounded by the input, not by a cap: joins can grow the cloud past any client gate.
  GEOKV_RETURN_IF_ERROR(dec->GetCount(2, &n, "cloud dots"));
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t r = 0, c = 0;
    GEOKV_RETURN_IF_ERROR(dec->GetBounded(kReplicasMax - 1, &r, "replica id"));
    GEOKV_RETURN_IF_ERROR(dec->GetVarint(&c));
    Dot d{static_cast<ReplicaId>(r), c};
    if (!cloud_.empty() && !(*cloud_.rbegin() < d)) {
      return Corruption("crdt causal context cloud out of order");
    }
    if (c <= Max(d.replica) + 1) return Corruption("crdt causal context not compact");
    cloud_.insert(d);
  }
  return Status::Ok();
}

}  // namespace geokv::crdt
