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

namespace geokv::crdt {

class OrSet {
 public:
  // kValueTooLarge for an oversize element or when the elements would exceed
  // kStateBytesMax; kInvalidArgument when the set holds kSetElementsMax elements.
  StatusOr<OrSet> Add(ReplicaId replica, std::string_view element);
  // Removing an absent element yields an empty delta (still valid to ship).
  OrSet Remove(std::string_view element);
  void Join(const OrSet& other) { kernel_.Join(other.kernel_); }

  bool Contains(std::string_view element) const { return kernel_.Contains(element); }
  std::vector<std::string> Members() const;
  size_t size() const { return kernel_.size(); }

  const DotKernel& kernel() const { return kernel_; }
  std::string Encode() const;
  static StatusOr<OrSet> Decode(std::string_view bytes);
  bool operator==(const OrSet&) const = default;

 private:
  DotKernel kernel_;
};

}  // namespace geokv::crdt

#endif  // GEOKV_REPLICATION_CRDT_OR_SET_H_
