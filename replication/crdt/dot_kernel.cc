#include "replication/crdt/dot_kernel.h"

#include <string>
#include <vector>

#include "replication/crdt/limits.h"

namespace geokv::crdt {

DotKernel DotKernel::AddWithContext(ReplicaId replica, std::string_view value,
                                    const CausalContext& observed) {
  DotKernel delta;
  // Mint from the union, so a stale caller context can never make us reuse a dot.
  CausalContext seen = context_;
  seen.Join(observed);
  Dot dot = seen.Next(replica);
  delta.Insert(std::string(value), dot);
  delta.context_ = observed;
  delta.context_.Add(dot);
  Join(delta);
  return delta;
}

DotKernel DotKernel::RemoveContext(const CausalContext& observed) {
  DotKernel delta;
  delta.context_ = observed;
  Join(delta);
  return delta;
}

void DotKernel::Insert(const std::string& value, const Dot& d) {
  auto [it, fresh] = dots_.try_emplace(value);
  if (fresh) value_bytes_ += value.size();
  it->second.insert(d);
  index_[d] = value;
}

void DotKernel::Erase(const Dot& d) {
  auto it = index_.find(d);
  if (it == index_.end()) return;
  auto vit = dots_.find(it->second);
  vit->second.erase(d);
  if (vit->second.empty()) {
    value_bytes_ -= vit->first.size();
    dots_.erase(vit);
  }
  index_.erase(it);
}

void DotKernel::Join(const DotKernel& other) {
  // Drop our dots that the other side has seen and no longer holds. Only dots inside the
  // other context can go, so walk those: its version-vector ranges and its cloud.
  std::vector<Dot> drop;
  auto consider = [&](std::map<Dot, std::string>::const_iterator it) {
    auto oit = other.index_.find(it->first);
    if (oit == other.index_.end() || oit->second != it->second) drop.push_back(it->first);
  };
  for (const auto& [r, n] : other.context_.vv()) {
    for (auto it = index_.lower_bound(Dot{r, 1}); it != index_.end() && it->first.replica == r &&
                                                  it->first.counter <= n;
         ++it) {
      consider(it);
    }
  }
  for (const Dot& d : other.context_.cloud()) {
    auto it = index_.find(d);
    if (it != index_.end()) consider(it);
  }
  for (const Dot& d : drop) Erase(d);
  // Add their dots that we have not seen yet.
  for (const auto& [d, value] : other.index_) {
    if (!context_.Contains(d)) Insert(value, d);
  }
  context_.Join(other.context_);
}

CausalContext DotKernel::DotsOf(std::string_view value) const {
  CausalContext ctx;
  auto it = dots_.find(value);
  if (it != dots_.end()) {
    for (const Dot& d : it->second) ctx.Add(d);
  }
  return ctx;
}

void DotKernel::EncodeTo(Encoder* enc) const {
  context_.EncodeTo(enc);
  enc->PutVarint(dots_.size());
  for (const auto& [value, dots] : dots_) {
    enc->PutBytes(value);
    enc->PutVarint(dots.size());
    for (const Dot& d : dots) {
      enc->PutVarint(d.replica);
      enc->PutVarint(d.counter);
    }
  }
}

Status DotKernel::DecodeFrom(Decoder* dec, size_t values_max, size_t value_bytes_max) {
  dots_.clear();
  index_.clear();
  value_bytes_ = 0;
  GEOKV_RETURN_IF_ERROR(context_.DecodeFrom(dec));
  uint64_t n = 0;
  // Each value takes at least 4 bytes (length, dot count, one dot).
  GEOKV_RETURN_IF_ERROR(dec->GetCount(4, &n, "values"));
  if (n > values_max) {
    return Status(Code::kValueTooLarge, "crdt dot kernel holds " + std::to_string(n) +
                                            " values, limit " + std::to_string(values_max));
  }
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view value;
    GEOKV_RETURN_IF_ERROR(dec->GetValueBytes(value_bytes_max, &value, "value"));
    if (!dots_.empty() && !(dots_.rbegin()->first < value)) {
      return Corruption("crdt dot kernel values out of order");
    }
    uint64_t m = 0;
    GEOKV_RETURN_IF_ERROR(dec->GetCount(2, &m, "dots per value"));
    if (m == 0) return Corruption("crdt dot kernel value without dots");
    std::set<Dot>& dots = dots_[std::string(value)];
    for (uint64_t j = 0; j < m; ++j) {
      uint64_t r = 0, c = 0;
      GEOKV_RETURN_IF_ERROR(dec->GetBounded(kReplicasMax - 1, &r, "replica id"));
      GEOKV_RETURN_IF_ERROR(dec->GetVarint(&c));
      Dot d{static_cast<ReplicaId>(r), c};
      if (c == 0 || (!dots.empty() && !(*dots.rbegin() < d))) {
        return Corruption("crdt dot kernel dots out of order");
      }
      // A live dot outside the context would break join; such input is corrupt.
      if (!context_.Contains(d)) return Corruption("crdt dot kernel dot not in its context");
      if (!index_.emplace(d, std::string(value)).second) {
        return Corruption("crdt dot kernel dot supports two values");
      }
      dots.insert(d);
    }
    value_bytes_ += value.size();
  }
  return Status::Ok();
}

}  // namespace geokv::crdt
