// Size limits of the CRDT layer (STYLE 29: limits on everything), in one object.
//
// CrdtLimits is the single source of every bound: local updates are gated by it, decoders
// check against it, and the disseminator derives from it what one message must be able to
// carry. The rules that keep the three consistent:
//
//  * Local updates are gated per writing region. A region refuses an update that would
//    leave the key, as that region sees it, above a cap (set elements, footprint bytes,
//    multi-value siblings): kValueTooLarge, kInvalidArgument or kConflict. Every update
//    that mints a dot is gated, re-adding a present element included.
//  * Joins never refuse (convergence comes first), so a key joined from several regions
//    can exceed one region's cap. But every live dot of a converged key was minted by
//    some region r while r's whole view, and so the part of it carrying r's live dots,
//    was within the cap; that part only shrinks until r mints again. So a converged key
//    holds at most `regions` times each per-region cap (elements, siblings, footprint,
//    and the footprint bounds the encoding). Those are the Held*() bounds below.
//  * Decoders bound only what no legal state can exceed: value and key sizes, replica ids.
//    Counts (elements, dots, cloud) are bounded by the length of the input (every entry
//    takes at least one byte), never by a semantic cap, so anything a node can hold it can
//    persist and reload, and a peer can always decode what another peer holds. (A decoder
//    cap tighter than what joins produce was exactly what stalled streams before.)
//  * Shipping: a full state travels only in a state transfer, and the disseminator derives
//    state_bytes_max from message_bytes_max so that HeldStateBytesMax() plus framing fits
//    one message. A state that still does not fit (possible only transiently, see
//    disseminator.h) is counted and retried, never truncated.
//
// Limits are cluster-wide configuration: every region must use the same values.
// Value type; thread-compatible.
#ifndef GEOKV_REPLICATION_CRDT_LIMITS_H_
#define GEOKV_REPLICATION_CRDT_LIMITS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace geokv::crdt {

// Replica (region) ids are small integers; a causal context never names more of them.
inline constexpr uint32_t kReplicasMax = 64;
// Defaults (DESIGN: values up to 1 MiB; keys, up to 4 KiB, are the disseminator's).
inline constexpr size_t kValueBytesMax = 1u << 20;
// Default per-region footprint of one key (see CrdtLimits::state_bytes_max).
inline constexpr size_t kStateBytesMax = 16u << 20;
// Default set members per key, per writing region.
inline constexpr size_t kSetElementsMax = 100000;
// Default multi-value register siblings per writing region (see mv_register.h).
inline constexpr size_t kSiblingsMax = 8;
// Out-of-order dots a client-supplied read context may carry (an update gate; contexts
// produced by joins are bounded by their input length only).
inline constexpr size_t kCloudDotsMax = 1u << 16;
// The footprint of a set or register (DotKernel::footprint_bytes) bounds its encoding:
// per entry its bytes plus kValueOverheadBytes (length prefix, dot count) plus
// kDotBytes per live dot (replica id and counter varints).
inline constexpr size_t kValueOverheadBytes = 4;
inline constexpr size_t kDotBytes = 11;
// Footprint of an entry with one dot, on top of its bytes.
inline constexpr size_t kEntryOverheadBytes = kValueOverheadBytes + kDotBytes;
// Encoding of a causal context with `regions` vector entries and no cloud, plus headers.
inline constexpr size_t kContextOverheadBytes = 64 + 2 * 11 * kReplicasMax;

struct CrdtLimits {
  // Largest register value or set element.
  size_t value_bytes_max = kValueBytesMax;
  // Per writing region: footprint (bytes + kEntryOverheadBytes per entry) of the set
  // elements or register siblings of one key that a local update may leave.
  size_t state_bytes_max = kStateBytesMax;
  // Per writing region: set elements of one key.
  size_t set_elements_max = kSetElementsMax;
  // Per writing region: multi-value register siblings.
  size_t siblings_max = kSiblingsMax;
  // Regions in the cluster (replica ids 0..regions-1); ForCluster() sets it.
  uint32_t regions = kReplicasMax;
  // TEST ONLY (mutant): decoders also apply the per-region caps, i.e. they are tighter
  // than what joins produce. The simulator suite must catch it.
  bool unsafe_decode_per_region_caps = false;

  // What joins from every region can produce.
  size_t HeldSetElementsMax() const { return set_elements_max * regions; }
  size_t HeldSiblingsMax() const { return siblings_max * regions; }
  // Upper bound on the encoding of a converged key of any type (the in-flight cloud of
  // out-of-order dots excluded; it is empty once delivery catches up).
  size_t HeldStateBytesMax() const {
    return std::max(value_bytes_max + 64, state_bytes_max * regions) + kContextOverheadBytes;
  }
  // The smallest message bound that carries the largest held state in one entry, with a
  // key of `key_bytes_max` and the framing around it.
  size_t MessageBytesNeeded(size_t key_bytes_max) const {
    return HeldStateBytesMax() + key_bytes_max + kFramingBytes;
  }

  // These limits for a cluster of `regions` whose messages carry at most
  // `message_bytes_max` bytes: state_bytes_max is lowered so that the largest held state
  // fits one message (MessageBytesNeeded(key_bytes_max) <= message_bytes_max whenever a
  // register value at value_bytes_max fits at all). With many regions and a small message
  // bound the per-region share can fall below one value at value_bytes_max: such set
  // elements and siblings are then refused (kValueTooLarge) while registers take them.
  CrdtLimits ForCluster(uint32_t regions_in_cluster, size_t key_bytes_max, size_t message_bytes_max) const {
    CrdtLimits l = *this;
    l.regions = std::max<uint32_t>(1, regions_in_cluster);
    const size_t fixed = kContextOverheadBytes + key_bytes_max + kFramingBytes;
    const size_t budget = message_bytes_max > fixed ? message_bytes_max - fixed : 0;
    l.state_bytes_max = std::min(state_bytes_max, budget / l.regions);
    l.value_bytes_max = std::min(value_bytes_max, budget > 64 ? budget - 64 : 0);
    return l;
  }

  // FlatBuffers tables and length prefixes around one state in a message.
  static constexpr size_t kFramingBytes = 1024;
};

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
