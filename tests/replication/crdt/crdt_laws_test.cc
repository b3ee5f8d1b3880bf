// Property tests: the join laws for every CRDT type, and convergence of random operation
// histories on 3 to 5 replicas delivered in random order with duplicates.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <vector>

#include "replication/crdt/crdt_value.h"
#include "tests/replication/crdt/crdt_ops.h"

namespace geokv::crdt {
namespace {

using testing::RandomOp;
using testing::ReplicaCtx;

// Reachable states: random ops on `n` replicas with random pairwise state merges, so the
// states share history the way real replicas do.
template <typename T>
std::vector<T> ReachableStates(int n) {
  std::vector<T> states(n);
  std::vector<ReplicaCtx> ctx;
  for (int i = 0; i < n; ++i) ctx.emplace_back(static_cast<ReplicaId>(i));
  const int steps = *rc::gen::inRange(0, 40);
  for (int i = 0; i < steps; ++i) {
    const int r = *rc::gen::inRange(0, n);
    if (*rc::gen::inRange(0, 4) == 0) {
      states[r].Join(states[*rc::gen::inRange(0, n)]);
    } else {
      (void)RandomOp(states[r], ctx[r], *rc::gen::inRange(0, 12), *rc::gen::inRange(0, 30));
    }
  }
  return states;
}

template <typename T>
T Joined(T a, const T& b) {
  a.Join(b);
  return a;
}

template <typename T>
void CheckLaws() {
  auto s = ReachableStates<T>(3);
  const T& a = s[0];
  const T& b = s[1];
  const T& c = s[2];
  RC_ASSERT(Joined(a, b).Encode() == Joined(b, a).Encode());
  RC_ASSERT(Joined(Joined(a, b), c).Encode() == Joined(a, Joined(b, c)).Encode());
  RC_ASSERT(Joined(a, a).Encode() == a.Encode());
  // Encoding round-trips exactly.
  auto decoded = T::Decode(a.Encode());
  RC_ASSERT(decoded.ok());
  RC_ASSERT(decoded->Encode() == a.Encode());
}

RC_GTEST_PROP(JoinLaws, PnCounter, ()) { CheckLaws<PnCounter>(); }
RC_GTEST_PROP(JoinLaws, LwwRegister, ()) { CheckLaws<LwwRegister>(); }
RC_GTEST_PROP(JoinLaws, MvRegister, ()) { CheckLaws<MvRegister>(); }
RC_GTEST_PROP(JoinLaws, OrSet, ()) { CheckLaws<OrSet>(); }

// Each op's delta goes to every other replica; deliveries happen in random order, with
// duplicates, interleaved with new ops. At the end everything is delivered.
template <typename T>
void CheckConvergence() {
  const int n = *rc::gen::inRange(3, 6);
  std::vector<T> states(n);
  std::vector<ReplicaCtx> ctx;
  for (int i = 0; i < n; ++i) ctx.emplace_back(static_cast<ReplicaId>(i));
  struct Pending {
    int to;
    T delta;
  };
  std::vector<Pending> inflight;
  const int steps = *rc::gen::inRange(1, 80);
  auto deliver_one = [&]() {
    size_t i = *rc::gen::inRange<size_t>(0, inflight.size());
    states[inflight[i].to].Join(inflight[i].delta);
    if (*rc::gen::inRange(0, 5) != 0) {  // else keep it: a duplicate arrives later
      inflight[i] = std::move(inflight.back());
      inflight.pop_back();
    }
  };
  for (int i = 0; i < steps; ++i) {
    if (!inflight.empty() && *rc::gen::inRange(0, 2) == 0) {
      deliver_one();
      continue;
    }
    const int r = *rc::gen::inRange(0, n);
    auto d = RandomOp(states[r], ctx[r], *rc::gen::inRange(0, 12), *rc::gen::inRange(0, 30));
    if (!d) continue;
    for (int to = 0; to < n; ++to) {
      if (to != r) inflight.push_back(Pending{to, *d});
    }
  }
  while (!inflight.empty()) {
    size_t i = *rc::gen::inRange<size_t>(0, inflight.size());
    states[inflight[i].to].Join(inflight[i].delta);
    inflight[i] = std::move(inflight.back());
    inflight.pop_back();
  }
  for (int i = 1; i < n; ++i) RC_ASSERT(states[i].Encode() == states[0].Encode());
}

RC_GTEST_PROP(Convergence, PnCounter, ()) { CheckConvergence<PnCounter>(); }
RC_GTEST_PROP(Convergence, LwwRegister, ()) { CheckConvergence<LwwRegister>(); }
RC_GTEST_PROP(Convergence, MvRegister, ()) { CheckConvergence<MvRegister>(); }
RC_GTEST_PROP(Convergence, OrSet, ()) { CheckConvergence<OrSet>(); }

// A delta joined into the state that produced it changes nothing (local ops already
// joined it), and joining it again anywhere is idempotent.
RC_GTEST_PROP(Deltas, OrSetDeltaIsIdempotent, ()) {
  auto s = ReachableStates<OrSet>(2);
  ReplicaCtx c(0);
  OrSet before = s[0];
  auto d = RandomOp(s[0], c, *rc::gen::inRange(0, 12), *rc::gen::inRange(0, 30));
  RC_PRE(d.has_value());
  RC_ASSERT(Joined(s[0], *d).Encode() == s[0].Encode());
  RC_ASSERT(Joined(before, *d).Encode() == s[0].Encode());
}

}  // namespace
}  // namespace geokv::crdt
