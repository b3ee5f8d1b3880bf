#include "replication/crdt/dot_kernel.h"

#include <string>

#include "replication/crdt/limits.h"

namespace geokv::crdt {

DotKernel DotKernel::AddWithContext(ReplicaId replica, std::string_view value,
                                    const CausalContext& observed) {
  DotKernel delta;
  // Mint from the union, so a stale caller context can never make us reuse a dot.
  CausalContext seen = context_;
  seen.Join(observed);
  Dot dot = seen.Next(replica);
  delta.dots_[std::string(value)].insert(dot);
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

void DotKernel::Join(const DotKernel& other) {
  // Drop our dots that the other side has seen and no longer holds.
  for (auto it = dots_.begin(); it != dots_.end();) {
    auto oit = other.dots_.find(it->first);
    std::set<Dot>& mine = it->second;
    for (auto d = mine.begin(); d != mine.end();) {
      bool theirs = oit != other.dots_.end() && oit->second.count(*d) != 0;
      if (!theirs && other.context_.Contains(*d)) {
        d = mine.erase(d);
      } else {
        ++d;
      }
    }
    it = mine.empty() ? dots_.erase(it) : std::next(it);
  }
  // Add their dots that we have not seen yet.
  for (const auto& [value, theirs] : other.dots_) {
    for (const Dot& d : theirs) {
      if (!context_.Contains(d)) dots_[value].insert(d);
    }
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

Status DotKernel::DecodeFrom(Decoder* dec, size_t values_max) {
  dots_.clear();
  GEOKV_RETURN_IF_ERROR(context_.DecodeFrom(dec));
  uint64_t n = 0;
  GEOKV_RETURN_IF_ERROR(dec->GetBounded(values_max, &n, "values"));
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view value;
    GEOKV_RETURN_IF_ERROR(dec->GetBytes(kValueBytesMax, &value, "value"));
    if (!dots_.empty() && !(dots_.rbegin()->first < value)) {
      return Corruption("crdt dot kernel values out of order");
    }
    uint64_t m = 0;
    GEOKV_RETURN_IF_ERROR(dec->GetBounded(kReplicasMax * 1024, &m, "dots per value"));
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
      dots.insert(d);
    }
  }
  return Status::Ok();
}

}  // namespace geokv::crdt
