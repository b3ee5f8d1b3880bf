// CrdtValue: the state (or a delta) of one eventual-mode key, tagged with its type. The
// disseminator stores one per key and ships them as deltas; joining two values of
// different types fails with kWrongMode (a key's mode is never reinterpreted silently).
//
// Value type; thread-compatible.
#ifndef GEOKV_REPLICATION_CRDT_CRDT_VALUE_H_
#define GEOKV_REPLICATION_CRDT_CRDT_VALUE_H_

#include <string>
#include <string_view>
#include <variant>

#include "base/status.h"
#include "replication/crdt/limits.h"
#include "replication/crdt/lww_register.h"
#include "replication/crdt/mv_register.h"
#include "replication/crdt/or_set.h"
#include "replication/crdt/pn_counter.h"

namespace geokv::crdt {

class CrdtValue {
 public:
  using Variant = std::variant<LwwRegister, MvRegister, PnCounter, OrSet>;

  explicit CrdtValue(CrdtType type = CrdtType::kLww);
  template <typename T>
  explicit CrdtValue(T v) : value_(std::move(v)) {}

  CrdtType type() const;
  Status Join(const CrdtValue& other);
  std::string Encode() const;
  // Decodes any of the four encodings (the type tag is in the header). Accepts everything
  // updates gated by `limits` and joins of them can produce (limits.h explains how).
  static StatusOr<CrdtValue> Decode(std::string_view bytes, const CrdtLimits& limits = {});

  template <typename T> T* As() { return std::get_if<T>(&value_); }
  template <typename T> const T* As() const { return std::get_if<T>(&value_); }

  // Causal metadata entries (version-vector entries + cloud dots + live dots), reported
  // by the simulator to show metadata stays bounded.
  size_t MetadataEntries() const;
  // True when the value holds nothing a reader would see (deleted or empty).
  bool IsEmpty() const;
  bool operator==(const CrdtValue&) const = default;

 private:
  Variant value_;
};

std::string_view CrdtTypeName(CrdtType type);

}  // namespace geokv::crdt

#endif  // GEOKV_REPLICATION_CRDT_CRDT_VALUE_H_
