// Add-wins observed-remove set, dot-based (delta AWORSet of Almeida, Shoker & Baquero).
//
// Add mints a fresh dot for the element and, in the same delta, retires the element's
// older dots; Remove retires exactly the dots this replica has observed for the element.
// A concurrent add elsewhere carries a dot the remove never saw, so the add wins. Removed
// elements leave no tombstone: only the per-key causal context (one counter per replica
// plus in-flight out-of-order dots) remembers them.
//
// Value type; thread-compatible.
#ifndef GEOKV_REPLICATION_CRDT_OR_SET_H_
#define GEOKV_REPLICATION_CRDT_OR_SET_H_

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "replication/crdt/dot_kernel.h"
#include "replication/crdt/limits.h"

namespace geokv::crdt {

class OrSet {
 public:
  // Gated by `limits` (per writing region, see limits.h): kValueTooLarge for an element
  // over value_bytes_max or when the set's footprint would exceed state_bytes_max;
  // kInvalidArgument when the set already holds set_elements_max elements. A set joined
  // from several regions may hold up to limits.HeldSetElementsMax(); it then refuses new
  // elements here until removals bring it under the cap.
  StatusOr<OrSet> Add(ReplicaId replica, std::string_view element, const CrdtLimits& limits = {});
  // Removing an absent element yields an empty delta (still valid to ship).
  OrSet Remove(std::string_view element);
  void Join(const OrSet& other) { kernel_.Join(other.kernel_); }

  bool Contains(std::string_view element) const { return kernel_.Contains(element); }
  std::vector<std::string> Members() const;
  size_t size() const { return kernel_.size(); }

  const DotKernel& kernel() const { return kernel_; }
  std::string Encode() const;
  // Accepts every set joins can produce (see limits.h); kCorruption, kVersion or
  // kValueTooLarge (an element over limits.value_bytes_max) otherwise.
  static StatusOr<OrSet> Decode(std::string_view bytes, const CrdtLimits& limits = {});
  bool operator==(const OrSet&) const = default;

 private:
  DotKernel kernel_;
};

}  // namespace geokv::crdt

#endif  // GEOKV_REPLICATION_CRDT_OR_SET_H_
