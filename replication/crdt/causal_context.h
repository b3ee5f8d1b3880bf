// Dots and causal contexts (Almeida, Shoker & Baquero, "Delta State Replicated Data Types").
//
// A Dot names one event: (replica, counter), counters starting at 1. A CausalContext is a
// set of dots stored canonically as a version vector (every counter 1..vv[r] present) plus
// a "cloud" of dots beyond it. Compact() folds the cloud into the vector whenever it
// becomes contiguous, and every mutating call leaves the context compact, so two contexts
// holding the same dots encode to the same bytes (needed for byte-identical convergence).
//
// Value type; thread-compatible.
#ifndef GEOKV_REPLICATION_CRDT_CAUSAL_CONTEXT_H_
#define GEOKV_REPLICATION_CRDT_CAUSAL_CONTEXT_H_

#include <compare>
#include <cstdint>
#include <map>
#include <set>

#include "base/status.h"
#include "replication/crdt/codec.h"

namespace geokv::crdt {

using ReplicaId = uint32_t;

struct Dot {
  ReplicaId replica = 0;
  uint64_t counter = 0;
  auto operator<=>(const Dot&) const = default;
};

class CausalContext {
 public:
  bool Contains(const Dot& d) const;
  // Next unused dot of `replica` (replicas only mint dots for themselves, so their own
  // dots are always contiguous in the vector part).
  Dot Next(ReplicaId replica) const;
  void Add(const Dot& d);  // leaves the context compact
  void Join(const CausalContext& other);
  bool empty() const { return vv_.empty() && cloud_.empty(); }
  size_t cloud_size() const { return cloud_.size(); }
  size_t vector_size() const { return vv_.size(); }
  // Counter of the contiguous prefix for `replica` (0 if none).
  uint64_t Max(ReplicaId replica) const;
  const std::map<ReplicaId, uint64_t>& vv() const { return vv_; }
  const std::set<Dot>& cloud() const { return cloud_; }

  void EncodeTo(Encoder* enc) const;
  Status DecodeFrom(Decoder* dec);

  bool operator==(const CausalContext&) const = default;

 private:
  void Compact();

  std::map<ReplicaId, uint64_t> vv_;  // no zero entries
  std::set<Dot> cloud_;               // every dot here has counter > vv_[replica] + 1
};

}  // namespace geokv::crdt

#endif  // GEOKV_REPLICATION_CRDT_CAUSAL_CONTEXT_H_
