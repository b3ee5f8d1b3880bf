// The dot kernel shared by the multi-value register and the observed-remove set: a map
// from value to the dots that currently support it, plus the causal context of every dot
// ever seen (Almeida, Shoker & Baquero's DotKernel, indexed by value).
//
// A value is present while at least one of its dots is live. Removing means joining a
// delta whose context covers the removed dots and holds no entry for them, so nothing per
// removed value is kept: the context is a version vector (one counter per replica) plus a
// small cloud of out-of-order dots. That is how "no per-element tombstones" holds.
//
// Join keeps a dot if both sides have it, or one side has it and the other side's context
// has not seen it; it is commutative, associative and idempotent. A reverse index from
// dot to value lets a join visit only the dots the other side's context covers, so
// joining a small delta into a large set costs O(delta log n), not O(n).
//
// Value type; thread-compatible.
#ifndef GEOKV_REPLICATION_CRDT_DOT_KERNEL_H_
#define GEOKV_REPLICATION_CRDT_DOT_KERNEL_H_

#include <map>
#include <set>
#include <string>
#include <string_view>

#include "base/status.h"
#include "replication/crdt/causal_context.h"
#include "replication/crdt/codec.h"
#include "replication/crdt/limits.h"

namespace geokv::crdt {

class DotKernel {
 public:
  // Mints the next dot of `replica` for `value`; the delta's context is `observed` plus the
  // new dot, so joining it removes exactly the observed dots. Returns the delta.
  DotKernel AddWithContext(ReplicaId replica, std::string_view value, const CausalContext& observed);
  // A delta removing exactly `observed`.
  DotKernel RemoveContext(const CausalContext& observed);
  void Join(const DotKernel& other);

  // The dots supporting `value` as a context (for add-wins remove of one element).
  CausalContext DotsOf(std::string_view value) const;
  bool Contains(std::string_view value) const { return dots_.count(std::string(value)) != 0; }
  size_t size() const { return dots_.size(); }
  // Sum of the sizes of the values present (tracks the state's encoded size for limits).
  size_t value_bytes() const { return value_bytes_; }
  // What the per-region state caps charge for this kernel (see limits.h); bounds the
  // encoding of the entries.
  size_t footprint_bytes() const {
    return value_bytes_ + kValueOverheadBytes * dots_.size() + kDotBytes * index_.size();
  }
  size_t dot_count() const { return index_.size(); }
  const std::map<std::string, std::set<Dot>, std::less<>>& entries() const { return dots_; }
  const CausalContext& context() const { return context_; }

  void EncodeTo(Encoder* enc) const;
  // `values_max` bounds the value count (on top of the input length), `value_bytes_max`
  // each value.
  Status DecodeFrom(Decoder* dec, size_t values_max, size_t value_bytes_max);
  bool operator==(const DotKernel& o) const { return dots_ == o.dots_ && context_ == o.context_; }

 private:
  void Insert(const std::string& value, const Dot& d);
  void Erase(const Dot& d);

  std::map<std::string, std::set<Dot>, std::less<>> dots_;  // never holds an empty set
  std::map<Dot, std::string> index_;                          // the same pairs, by dot
  CausalContext context_;
  size_t value_bytes_ = 0;
};

}  // namespace geokv::crdt

#endif  // GEOKV_REPLICATION_CRDT_DOT_KERNEL_H_
