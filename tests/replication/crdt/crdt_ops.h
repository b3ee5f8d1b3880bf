// Test helper: random operations on each CRDT type, driven by integers so RapidCheck and
// the disseminator tests can share them. Each replica keeps its own HybridClock so LWW
// stamps stay distinct per event (as in production).
#ifndef GEOKV_TESTS_REPLICATION_CRDT_CRDT_OPS_H_
#define GEOKV_TESTS_REPLICATION_CRDT_CRDT_OPS_H_

#include <optional>
#include <string>

#include "replication/crdt/crdt_value.h"
#include "replication/crdt/hlc.h"

namespace geokv::crdt::testing {

struct ReplicaCtx {
  ReplicaId id = 0;
  HybridClock clock{HlcOptions{0, 1000, 10000}, 0};
  int64_t wall_ms = 1;
  explicit ReplicaCtx(ReplicaId r) : id(r), clock(HlcOptions{r, 1000, 10000}, 0) {}
};

// Applies operation (kind, arg) to `s` at replica `rc`; returns the delta, or nullopt if
// the operation was refused (e.g. the multi-value register's sibling bound).
template <typename T>
std::optional<T> RandomOp(T& s, ReplicaCtx& rc, int kind, int arg);

template <>
inline std::optional<PnCounter> RandomOp(PnCounter& s, ReplicaCtx& rc, int kind, int arg) {
  auto d = s.Add(rc.id, kind % 2 == 0 ? arg : -arg);
  if (!d.ok()) return std::nullopt;
  return *d;
}

template <>
inline std::optional<LwwRegister> RandomOp(LwwRegister& s, ReplicaCtx& rc, int kind, int arg) {
  // Small wall steps make equal physical times (logical ties) common.
  rc.wall_ms += arg % 2;
  HlcTimestamp ts = rc.clock.Now(rc.wall_ms);
  if (kind % 4 == 3) return s.Delete(ts);
  auto d = s.Put("v" + std::to_string(arg % 7), ts);
  if (!d.ok()) return std::nullopt;
  return *d;
}

template <>
inline std::optional<MvRegister> RandomOp(MvRegister& s, ReplicaCtx& rc, int kind, int arg) {
  switch (kind % 4) {
    case 0:
    case 1: {
      auto d = s.Write(rc.id, "v" + std::to_string(arg % 5), s.ReadContext());
      if (!d.ok()) return std::nullopt;
      return *d;
    }
    case 2: {
      // A blind write (empty context) adds a sibling next to everything present.
      auto d = s.Write(rc.id, "b" + std::to_string(arg % 5), CausalContext());
      if (!d.ok()) return std::nullopt;
      return *d;
    }
    default:
      return s.Delete(s.ReadContext());
  }
}

template <>
inline std::optional<OrSet> RandomOp(OrSet& s, ReplicaCtx& rc, int kind, int arg) {
  std::string e = "e" + std::to_string(arg % 6);
  if (kind % 3 == 2) return s.Remove(e);
  auto d = s.Add(rc.id, e);
  if (!d.ok()) return std::nullopt;
  return *d;
}

}  // namespace geokv::crdt::testing

#endif  // GEOKV_TESTS_REPLICATION_CRDT_CRDT_OPS_H_
