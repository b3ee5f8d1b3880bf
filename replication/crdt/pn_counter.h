// PN-counter: per replica, a grow-only total of increments and one of decrements. Join is
// the pointwise maximum; the value is sum(P) - sum(N). A local add returns the delta
// holding only this replica's new totals.
//
// Value type; thread-compatible.
#ifndef GEOKV_REPLICATION_CRDT_PN_COUNTER_H_
#define GEOKV_REPLICATION_CRDT_PN_COUNTER_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "base/status.h"
#include "replication/crdt/causal_context.h"

namespace geokv::crdt {

class PnCounter {
 public:
  // kInvalidArgument when a replica's total would overflow 2^63 (the value stays exact).
  StatusOr<PnCounter> Add(ReplicaId replica, int64_t delta);
  void Join(const PnCounter& other);
  // Exact while totals stay below 2^63 each (Add enforces that locally).
  int64_t Value() const;

  std::string Encode() const;
  static StatusOr<PnCounter> Decode(std::string_view bytes);
  bool operator==(const PnCounter&) const = default;

 private:
  std::map<ReplicaId, std::pair<uint64_t, uint64_t>> totals_;  // replica -> (P, N)
};

}  // namespace geokv::crdt

#endif  // GEOKV_REPLICATION_CRDT_PN_COUNTER_H_
