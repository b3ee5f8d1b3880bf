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

TEST(Hlc, RemoteFarAheadIsRejectedAndCounted) {
  HybridClock c(HlcOptions{0, 500, 1000}, 0);
  c.Now(1000);
  Status s = c.Observe(HlcTimestamp{1000000, 0, 2}, 1000);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(c.rejected_remote(), 1u);
  EXPECT_LT(c.Now(1001).physical_ms, 2000);  // not poisoned
  ASSERT_TRUE(c.Observe(HlcTimestamp{1300, 5, 2}, 1001).ok());
  HlcTimestamp t = c.Now(1001);
  EXPECT_EQ(t.physical_ms, 1300);
  EXPECT_EQ(t.logical, 6u);
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
