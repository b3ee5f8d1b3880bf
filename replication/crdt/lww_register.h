// Last-writer-wins register stamped with the hybrid logical clock.
//
// The state is the write with the greatest HlcTimestamp; the timestamp includes the node
// id, so concurrent writes in the same millisecond and logical tick still order
// deterministically. A delete is a write of "nothing" (a tombstone with its own stamp),
// so a later put wins over it and an older put can never bring the value back. The
// tombstone is one stamp per key, not one per deleted value.
//
// Value type; thread-compatible. Local ops return the delta to ship, which for a register
// is the new state itself.
#ifndef GEOKV_REPLICATION_CRDT_LWW_REGISTER_H_
#define GEOKV_REPLICATION_CRDT_LWW_REGISTER_H_

#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "replication/crdt/hlc.h"
#include "replication/crdt/limits.h"

namespace geokv::crdt {

class LwwRegister {
 public:
  // Fails with kValueTooLarge past limits.value_bytes_max. `ts` comes from the local
  // HybridClock and must exceed stamp() for the put to take effect (the disseminator
  // guarantees that; see Disseminator::PutLww).
  StatusOr<LwwRegister> Put(std::string_view value, const HlcTimestamp& ts, const CrdtLimits& limits = {});
  LwwRegister Delete(const HlcTimestamp& ts);
  void Join(const LwwRegister& other);

  // The value, or nullopt when never written or deleted.
  std::optional<std::string> Get() const;
  bool written() const { return written_; }
  bool deleted() const { return written_ && deleted_; }
  const HlcTimestamp& stamp() const { return ts_; }

  std::string Encode() const;
  static StatusOr<LwwRegister> Decode(std::string_view bytes, const CrdtLimits& limits = {});
  bool operator==(const LwwRegister&) const = default;

 private:
  bool written_ = false;
  bool deleted_ = false;
  HlcTimestamp ts_;
  std::string value_;
};

}  // namespace geokv::crdt

#endif  // GEOKV_REPLICATION_CRDT_LWW_REGISTER_H_
