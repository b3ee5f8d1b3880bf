// Size limits shared by every CRDT type and the disseminator (STYLE 29: limits on everything).
// A local operation that would exceed a limit fails with a specific Status; a decoded
// state or delta that exceeds one is rejected as corruption.
#ifndef GEOKV_REPLICATION_CRDT_LIMITS_H_
#define GEOKV_REPLICATION_CRDT_LIMITS_H_

#include <cstddef>
#include <cstdint>

namespace geokv::crdt {

// Replica (region) ids are small integers; a causal context never names more of them.
inline constexpr uint32_t kReplicasMax = 64;
// Largest register value or set element (DESIGN: values up to 1 MiB).
inline constexpr size_t kValueBytesMax = 1u << 20;
// Largest encoded state of one key (approximately: set element bytes are counted; a
// multi-value register is bounded by siblings x value size). Past this a set refuses
// more elements.
inline constexpr size_t kStateBytesMax = 16u << 20;
// Set members per key.
inline constexpr size_t kSetElementsMax = 100000;
// Multi-value register siblings per writing replica (see mv_register.h for the policy).
inline constexpr size_t kSiblingsMax = 8;
// Dots outside the version-vector part of a causal context. With per-origin ordered
// delivery the cloud holds only dots whose delta is still in flight, so this is generous.
inline constexpr size_t kCloudDotsMax = 1u << 16;

// Type tags used in encodings and on the wire. Never renumber.
enum class CrdtType : uint8_t {
  kLww = 1,
  kMvReg = 2,
  kCounter = 3,
  kSet = 4,
};
inline constexpr uint8_t kContextTag = 0x10;

}  // namespace geokv::crdt

#endif  // GEOKV_REPLICATION_CRDT_LIMITS_H_
