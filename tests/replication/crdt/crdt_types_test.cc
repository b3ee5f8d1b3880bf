// Unit tests of the CRDT types: semantics, limits, and malformed encodings.
#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <string>

#include "replication/crdt/codec.h"
#include "replication/crdt/crdt_value.h"
#include "replication/crdt/hlc.h"

namespace geokv::crdt {
namespace {

TEST(Hlc, MonotonicWithinAndAcrossRestart) {
  HybridClock c(HlcOptions{1, 500, 1000}, 0);
  HlcTimestamp a = c.Now(100);
  HlcTimestamp b = c.Now(100);  // same millisecond: logical advances
  HlcTimestamp d = c.Now(50);   // wall clock went back: still increases
  EXPECT_LT(a, b);
  EXPECT_LT(b, d);
  auto hw = c.TakeHighWaterToPersist();
  ASSERT_TRUE(hw.has_value());
  EXPECT_GT(*hw, d.physical_ms);
  // Restart with the persisted mark and a wall clock far behind.
  HybridClock restarted(HlcOptions{1, 500, 1000}, *hw);
  EXPECT_LT(d, restarted.Now(10));
}

// A remote stamp far ahead is adopted (the next local stamp exceeds it) and counted as
// skew; one within the tolerance is adopted without counting.
TEST(Hlc, RemoteFarAheadIsAdoptedAndCountedAsSkew) {
  HybridClock c(HlcOptions{0, 500, 1000}, 0);
  c.Now(1000);
  c.Observe(HlcTimestamp{1300, 5, 2}, 1000);
  EXPECT_EQ(c.remote_ahead(), 0u);
  HlcTimestamp t = c.Now(1001);
  EXPECT_EQ(t.physical_ms, 1300);
  EXPECT_EQ(t.logical, 6u);
  c.Observe(HlcTimestamp{1000000, 7, 2}, 1002);
  EXPECT_EQ(c.remote_ahead(), 1u);
  EXPECT_EQ(c.max_remote_ahead_ms(), 1000000 - 1002);
  HlcTimestamp after = c.Now(1003);
  EXPECT_GT(after, (HlcTimestamp{1000000, 7, 2}));
  EXPECT_EQ(after.physical_ms, 1000000);  // the logical part absorbs the lead
  // NowAbove: strictly above a floor the clock never observed, e.g. a register's stamp.
  HlcTimestamp floor{5000000, 3, 1};
  EXPECT_GT(c.NowAbove(floor, 1004), floor);
}

// The old behaviour, kept as a TEST ONLY mutant: the far stamp is refused and a later
// local stamp is below it.
TEST(Hlc, RefusingMutantLeavesLocalStampsBelowRemoteOnes) {
  HlcOptions o{0, 500, 1000};
  o.unsafe_refuse_remote_ahead = true;
  HybridClock c(o, 0);
  c.Observe(HlcTimestamp{1000000, 0, 2}, 1000);
  EXPECT_EQ(c.refused_remote(), 1u);
  EXPECT_LT(c.Now(1001), (HlcTimestamp{1000000, 0, 2}));
}

TEST(Lww, LaterWinsDeleteWinsOverOlderPut) {
  LwwRegister a, b;
  ASSERT_TRUE(a.Put("x", HlcTimestamp{10, 0, 0}).ok());
  LwwRegister del = b.Delete(HlcTimestamp{11, 0, 1});
  a.Join(del);
  EXPECT_FALSE(a.Get().has_value());
  ASSERT_TRUE(b.Put("old", HlcTimestamp{9, 0, 2}).ok());  // stale write loses
  a.Join(b);
  EXPECT_FALSE(a.Get().has_value());
  // Same physical/logical: node id breaks the tie.
  LwwRegister c, d;
  ASSERT_TRUE(c.Put("from1", HlcTimestamp{20, 0, 1}).ok());
  ASSERT_TRUE(d.Put("from2", HlcTimestamp{20, 0, 2}).ok());
  c.Join(d);
  EXPECT_EQ(c.Get(), "from2");
}

TEST(Lww, ValueTooLarge) {
  LwwRegister r;
  auto d = r.Put(std::string(kValueBytesMax + 1, 'x'), HlcTimestamp{1, 0, 0});
  EXPECT_EQ(d.status().code(), Code::kValueTooLarge);
  EXPECT_FALSE(r.written());
}

TEST(MvReg, ConcurrentWritesAreSiblingsAndAWriteReplacesWhatItSaw) {
  MvRegister a, b;
  auto da = a.Write(0, "A", a.ReadContext());
  auto db = b.Write(1, "B", b.ReadContext());
  ASSERT_TRUE(da.ok() && db.ok());
  a.Join(*db);
  b.Join(*da);
  EXPECT_EQ(a.Values(), (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(a.Encode(), b.Encode());
  // b resolves with what it read; a concurrently writes C having seen only A and B.
  auto resolve = b.Write(1, "AB", b.ReadContext());
  ASSERT_TRUE(resolve.ok());
  EXPECT_EQ(b.Values(), (std::vector<std::string>{"AB"}));
  CausalContext seen_only_a = a.kernel().DotsOf("A");
  auto dc = a.Write(0, "C", seen_only_a);  // replaces A only; B stays
  ASSERT_TRUE(dc.ok());
  EXPECT_EQ(a.Values(), (std::vector<std::string>{"B", "C"}));
  a.Join(*resolve);
  b.Join(*dc);
  EXPECT_EQ(a.Values(), (std::vector<std::string>{"AB", "C"}));
  EXPECT_EQ(a.Encode(), b.Encode());
}

TEST(MvReg, SiblingBoundRefusesStaleWritesButNotFreshOnes) {
  MvRegister r;
  for (size_t i = 0; i < kSiblingsMax; ++i) {
    ASSERT_TRUE(r.Write(0, "v" + std::to_string(i), CausalContext()).ok());
  }
  EXPECT_EQ(r.Values().size(), kSiblingsMax);
  auto stale = r.Write(0, "too-many", CausalContext());
  EXPECT_EQ(stale.status().code(), Code::kConflict);
  EXPECT_EQ(r.Values().size(), kSiblingsMax);
  ASSERT_TRUE(r.Write(0, "fresh", r.ReadContext()).ok());
  EXPECT_EQ(r.Values(), (std::vector<std::string>{"fresh"}));
}

TEST(MvReg, DeleteRemovesOnlyWhatWasRead) {
  MvRegister a, b;
  auto da = a.Write(0, "A", a.ReadContext());
  ASSERT_TRUE(da.ok());
  b.Join(*da);
  auto db = b.Write(1, "B", CausalContext());  // concurrent sibling
  ASSERT_TRUE(db.ok());
  MvRegister del = a.Delete(a.ReadContext());  // a saw only A
  b.Join(del);
  EXPECT_EQ(b.Values(), (std::vector<std::string>{"B"}));
}

TEST(OrSet, AddWinsOverConcurrentRemove) {
  OrSet a, b;
  auto add = a.Add(0, "x");
  ASSERT_TRUE(add.ok());
  b.Join(*add);
  OrSet rm = b.Remove("x");     // b removes the x it saw
  auto again = a.Add(0, "x");   // concurrently a re-adds
  ASSERT_TRUE(again.ok());
  a.Join(rm);
  b.Join(*again);
  EXPECT_TRUE(a.Contains("x"));
  EXPECT_TRUE(b.Contains("x"));
  EXPECT_EQ(a.Encode(), b.Encode());
}

TEST(OrSet, RemovedElementsLeaveNoTombstones) {
  OrSet s;
  for (int round = 0; round < 100; ++round) {
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(s.Add(0, "e" + std::to_string(i)).ok());
    for (int i = 0; i < 10; ++i) (void)s.Remove("e" + std::to_string(i));
  }
  EXPECT_EQ(s.size(), 0u);
  // Only the version vector remains: one entry, no cloud.
  EXPECT_EQ(s.kernel().context().vector_size(), 1u);
  EXPECT_EQ(s.kernel().context().cloud_size(), 0u);
  EXPECT_LT(s.Encode().size(), 16u);
}

TEST(OrSet, StateSizeLimit) {
  OrSet s;
  const std::string big(kValueBytesMax, 'x');
  Status last;
  size_t added = 0;
  for (int i = 0; i < 40 && last.ok(); ++i) {
    auto d = s.Add(0, std::to_string(i) + big.substr(0, kValueBytesMax - 8));
    last = d.status();
    if (d.ok()) ++added;
  }
  EXPECT_EQ(last.code(), Code::kValueTooLarge);
  EXPECT_LE(added * (kValueBytesMax - 8), kStateBytesMax);
  EXPECT_GE(added, kStateBytesMax / kValueBytesMax - 1);
  // Removing makes room again.
  (void)s.Remove("0" + big.substr(0, kValueBytesMax - 8));
  EXPECT_TRUE(s.Add(0, "small").ok());
}

// A set joined from three regions, each at the per-region element cap, holds three times
// the cap. It still encodes and decodes under the same limits (the decoder used to apply
// the per-region cap and refused it), refuses new local adds with a specific error, and
// accepts them again once removals bring it under the cap.
TEST(OrSet, JoinedFromSeveralRegionsAtTheCapDecodesUnderTheSameLimits) {
  CrdtLimits limits;
  limits.set_elements_max = 50;
  limits.regions = 3;
  OrSet joined;
  std::vector<OrSet> regions(3);
  for (ReplicaId r = 0; r < 3; ++r) {
    for (size_t i = 0; i < limits.set_elements_max; ++i) {
      ASSERT_TRUE(regions[r].Add(r, "r" + std::to_string(r) + "-" + std::to_string(i), limits).ok());
    }
    EXPECT_EQ(regions[r].Add(r, "one-more", limits).status().code(), Code::kInvalidArgument);
    joined.Join(regions[r]);
  }
  ASSERT_EQ(joined.size(), limits.HeldSetElementsMax());
  auto decoded = CrdtValue::Decode(CrdtValue(joined).Encode(), limits);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(*decoded->As<OrSet>(), joined);
  // The mutant decoder (per-region caps) refuses exactly this state.
  CrdtLimits mutant = limits;
  mutant.unsafe_decode_per_region_caps = true;
  EXPECT_EQ(CrdtValue::Decode(CrdtValue(joined).Encode(), mutant).status().code(), Code::kValueTooLarge);
  // Over the cap locally: refused, then accepted after removals.
  EXPECT_EQ(joined.Add(0, "new", limits).status().code(), Code::kInvalidArgument);
  for (size_t i = 0; i < limits.set_elements_max; ++i) {
    joined.Join(joined.Remove("r1-" + std::to_string(i)));
    joined.Join(joined.Remove("r2-" + std::to_string(i)));
  }
  EXPECT_EQ(joined.Add(0, "new", limits).status().code(), Code::kInvalidArgument);  // still 50
  joined.Join(joined.Remove("r0-0"));
  EXPECT_TRUE(joined.Add(0, "new", limits).ok());
}

// The Held*() bounds are what joins can produce: random adds, re-adds and removes of
// elements of random sizes on three gated replicas with random joins between them, then
// everything joined: the result stays within HeldSetElementsMax and its encoding within
// HeldStateBytesMax (which the message bound is derived from).
TEST(OrSet, JoinsOfGatedReplicasStayWithinTheHeldBounds) {
  CrdtLimits limits;
  limits.set_elements_max = 12;
  limits.state_bytes_max = 600;
  limits.regions = 3;
  for (uint32_t seed = 1; seed <= 50; ++seed) {
    std::mt19937 rng(seed);
    std::vector<OrSet> r(3);
    for (int step = 0; step < 600; ++step) {
      const ReplicaId who = rng() % 3;
      const std::string e = std::string(1, static_cast<char>('0' + rng() % 60)) + std::string(rng() % 40, 'x');
      switch (rng() % 10) {
        case 0:
        case 1:
        case 2:
        case 3:
        case 4: {
          auto d = r[who].Add(who, e, limits);
          if (!d.ok()) {
            EXPECT_TRUE(d.status().code() == Code::kInvalidArgument || d.status().code() == Code::kValueTooLarge);
          }
          break;
        }
        case 5:
          r[who].Join(r[who].Remove(e));
          break;
        default:
          r[who].Join(r[rng() % 3]);
          break;
      }
      EXPECT_LE(r[who].size(), limits.HeldSetElementsMax());
    }
    OrSet all = r[0];
    all.Join(r[1]);
    all.Join(r[2]);
    EXPECT_LE(all.size(), limits.HeldSetElementsMax()) << "seed " << seed;
    EXPECT_LE(all.kernel().footprint_bytes(), limits.state_bytes_max * limits.regions) << "seed " << seed;
    EXPECT_LE(all.Encode().size(), limits.HeldStateBytesMax()) << "seed " << seed;
  }
}

// The adversarial case for the bound: every region re-adds, concurrently, every element
// the others added. Each re-add mints a dot, so ungated re-adds would leave every element
// with a dot per region and the joined set above HeldStateBytesMax. They are gated: a
// region whose view is above its cap refuses them until removals make room.
TEST(OrSet, ConcurrentReaddsOfJoinedElementsAreGated) {
  CrdtLimits limits;
  limits.set_elements_max = 1000;
  limits.state_bytes_max = 10 * (1 + kEntryOverheadBytes);
  limits.regions = 3;
  std::vector<OrSet> r(3);
  for (ReplicaId i = 0; i < 3; ++i) {
    for (int k = 0; k < 10; ++k) ASSERT_TRUE(r[i].Add(i, std::string(1, static_cast<char>('a' + 10 * i + k)), limits).ok());
  }
  std::vector<OrSet> seen = r;
  for (ReplicaId i = 0; i < 3; ++i) {
    for (ReplicaId j = 0; j < 3; ++j) seen[i].Join(r[j]);
  }
  for (ReplicaId i = 0; i < 3; ++i) {
    for (int k = 0; k < 30; ++k) {
      auto d = seen[i].Add(i, std::string(1, static_cast<char>('a' + k)), limits);
      EXPECT_EQ(d.status().code(), Code::kValueTooLarge) << "region " << i << " re-add " << k;
    }
  }
  OrSet all = seen[0];
  all.Join(seen[1]);
  all.Join(seen[2]);
  EXPECT_LE(all.kernel().footprint_bytes(), limits.state_bytes_max * limits.regions);
  EXPECT_LE(all.Encode().size(), limits.HeldStateBytesMax());
}

// The same for multi-value register siblings: 3 regions x siblings_max values of the
// largest size decode, and the bytes gate refuses a stale write that would exceed the
// per-region footprint with kConflict, a too-large value with kValueTooLarge.
TEST(MvReg, SiblingsJoinedFromSeveralRegionsDecodeUnderTheSameLimits) {
  CrdtLimits limits;
  limits.value_bytes_max = 1000;
  limits.siblings_max = 3;
  limits.state_bytes_max = 3 * (1000 + kEntryOverheadBytes);
  limits.regions = 3;
  MvRegister joined;
  for (ReplicaId r = 0; r < 3; ++r) {
    MvRegister reg;
    for (int i = 0; i < 3; ++i) {
      auto d = reg.Write(r, std::string(1000, static_cast<char>('a' + 3 * r + i)), CausalContext(), limits);
      ASSERT_TRUE(d.ok()) << d.status().message();
    }
    EXPECT_EQ(reg.Write(r, "x", CausalContext(), limits).status().code(), Code::kConflict);
    joined.Join(reg);
  }
  ASSERT_EQ(joined.Values().size(), limits.HeldSiblingsMax());
  auto decoded = CrdtValue::Decode(CrdtValue(joined).Encode(), limits);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(*decoded->As<MvRegister>(), joined);
  EXPECT_EQ(joined.Write(0, std::string(1001, 'z'), joined.ReadContext(), limits).status().code(),
            Code::kValueTooLarge);
  EXPECT_TRUE(joined.Write(0, std::string(1000, 'z'), joined.ReadContext(), limits).ok());
  EXPECT_EQ(joined.Values().size(), 1u);
}

// Fitting the limits to a cluster: the largest state joins can produce fits one message.
TEST(Limits, HeldStateFitsTheMessageBound) {
  for (uint32_t regions : {1u, 3u, 5u, 16u, 64u}) {
    for (size_t message : {size_t{17} << 20, size_t{24} << 20, size_t{4} << 20}) {
      CrdtLimits l = CrdtLimits{}.ForCluster(regions, 4096, message);
      EXPECT_LE(l.MessageBytesNeeded(4096), message) << regions << " regions, message " << message;
      EXPECT_EQ(l.regions, regions);
    }
  }
  // Few regions keep the full per-region cap when it fits.
  CrdtLimits roomy = CrdtLimits{}.ForCluster(1, 4096, size_t{64} << 20);
  EXPECT_EQ(roomy.state_bytes_max, kStateBytesMax);
  EXPECT_EQ(roomy.value_bytes_max, kValueBytesMax);
}

TEST(OrSet, RemoveBeforeAddArrivesDoesNotResurrect) {
  OrSet origin, remover, third;
  auto add = origin.Add(0, "x");
  ASSERT_TRUE(add.ok());
  remover.Join(*add);
  OrSet rm = remover.Remove("x");
  third.Join(rm);    // the remove overtakes the add
  third.Join(*add);
  EXPECT_FALSE(third.Contains("x"));
}

TEST(PnCounter, AddsAndOverflowIsAnError) {
  PnCounter a, b;
  ASSERT_TRUE(a.Add(0, 5).ok());
  ASSERT_TRUE(b.Add(1, -8).ok());
  a.Join(b);
  EXPECT_EQ(a.Value(), -3);
  ASSERT_TRUE(a.Add(0, std::numeric_limits<int64_t>::max() - 5).ok());
  EXPECT_EQ(a.Add(0, 1).status().code(), Code::kInvalidArgument);
  // A magnitude of 2^63 does not fit a region's total; refused, not wrapped.
  EXPECT_EQ(b.Add(2, std::numeric_limits<int64_t>::min()).status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(b.Add(2, std::numeric_limits<int64_t>::min() + 1).ok());
}

TEST(CrdtValue, WrongTypeJoinIsRefused) {
  CrdtValue set(CrdtType::kSet), counter(CrdtType::kCounter);
  EXPECT_EQ(set.Join(counter).code(), Code::kWrongMode);
}

// Every truncation and every single-byte corruption of valid encodings must come back
// as a Status (or a valid value), never a crash.
TEST(Encoding, MalformedInputNeverCrashes) {
  std::vector<std::string> samples;
  {
    OrSet s;
    (void)s.Add(0, "alpha");
    (void)s.Add(1, "beta");
    (void)s.Remove("alpha");
    samples.push_back(s.Encode());
    MvRegister m;
    (void)m.Write(0, "v", CausalContext());
    (void)m.Write(2, "w", CausalContext());
    samples.push_back(m.Encode());
    PnCounter c;
    (void)c.Add(3, 7);
    (void)c.Add(1, -2);
    samples.push_back(c.Encode());
    LwwRegister l;
    (void)l.Put("hello", HlcTimestamp{123, 4, 5});
    samples.push_back(l.Encode());
  }
  std::mt19937_64 rng(7);
  int errors = 0;
  for (const std::string& good : samples) {
    ASSERT_TRUE(CrdtValue::Decode(good).ok());
    for (size_t n = 0; n < good.size(); ++n) {
      EXPECT_FALSE(CrdtValue::Decode(good.substr(0, n)).ok()) << "truncated at " << n;
    }
    EXPECT_FALSE(CrdtValue::Decode(good + "x").ok());
    for (int i = 0; i < 2000; ++i) {
      std::string bad = good;
      bad[rng() % bad.size()] = static_cast<char>(rng());
      auto v = CrdtValue::Decode(bad);
      if (!v.ok()) {
        ++errors;
      } else {
        // Whatever decoded must re-encode canonically.
        EXPECT_EQ(CrdtValue::Decode(v->Encode())->Encode(), v->Encode());
      }
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(Encoding, VersionAndTypeChecked) {
  PnCounter c;
  std::string enc = c.Encode();
  enc[0] = 9;
  EXPECT_EQ(PnCounter::Decode(enc).status().code(), Code::kVersion);
  EXPECT_EQ(OrSet::Decode(c.Encode()).status().code(), Code::kCorruption);
  EXPECT_FALSE(CrdtValue::Decode("").ok());
  // A huge declared count is refused before allocating.
  Encoder e;
  e.PutByte(kEncodingVersion);
  e.PutByte(static_cast<uint8_t>(CrdtType::kSet));
  e.PutVarint(0);
  e.PutVarint(0);
  e.PutVarint(uint64_t{1} << 40);
  EXPECT_EQ(OrSet::Decode(e.bytes()).status().code(), Code::kCorruption);
  // An unterminated varint.
  EXPECT_FALSE(PnCounter::Decode(std::string("\x01\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 12)).ok());
}

TEST(Encoding, DeltaIsSmallerThanStateForLargeSet) {
  OrSet s;
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(s.Add(0, "element-" + std::to_string(i)).ok());
  auto d = s.Add(0, "one-more");
  ASSERT_TRUE(d.ok());
  EXPECT_LT(d->Encode().size() * 100, s.Encode().size());
}

}  // namespace
}  // namespace geokv::crdt
