// Multi-value register, dot-based. Concurrent writes survive as siblings; a write carries
// the causal context its writer read and replaces exactly the siblings in it, so a
// read-modify-write resolves the conflict it saw and nothing it did not see.
//
// Sibling bound (policy). A local write is refused with Code::kConflict when it would
// leave more than limits.siblings_max distinct values (or more than state_bytes_max of
// them) at this replica, i.e. when the caller's context is too stale; reading again and
// writing with the fresh context always succeeds (it collapses to one value). Joins never
// drop values (that would break the join laws), but since every replica gates its own
// writes, a converged register holds at most siblings_max values per writing region
// (limits.HeldSiblingsMax()), and decoding accepts all of them.
//
// Value type; thread-compatible.
#ifndef GEOKV_REPLICATION_CRDT_MV_REGISTER_H_
#define GEOKV_REPLICATION_CRDT_MV_REGISTER_H_

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "replication/crdt/dot_kernel.h"
#include "replication/crdt/limits.h"

namespace geokv::crdt {

class MvRegister {
 public:
  // Sorted distinct values (empty when never written or deleted).
  std::vector<std::string> Values() const;
  // The context to pass back with the next write or delete.
  const CausalContext& ReadContext() const { return kernel_.context(); }

  // Gated by `limits`: kValueTooLarge for a value over value_bytes_max, or when even a
  // fresh write (one value) would exceed the per-region state_bytes_max; kConflict when the
  // siblings left would exceed siblings_max or state_bytes_max (read again and retry).
  StatusOr<MvRegister> Write(ReplicaId replica, std::string_view value, const CausalContext& read,
                             const CrdtLimits& limits = {});
  MvRegister Delete(const CausalContext& read);
  void Join(const MvRegister& other) { kernel_.Join(other.kernel_); }

  const DotKernel& kernel() const { return kernel_; }
  std::string Encode() const;
  // Accepts every register joins can produce (see limits.h).
  static StatusOr<MvRegister> Decode(std::string_view bytes, const CrdtLimits& limits = {});
  bool operator==(const MvRegister&) const = default;

 private:
  DotKernel kernel_;
};

}  // namespace geokv::crdt

#endif  // GEOKV_REPLICATION_CRDT_MV_REGISTER_H_
