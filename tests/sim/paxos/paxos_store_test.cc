// sim::PaxosStore: a Ready persisted through the production PaxosLog over MemoryStorage is
// durable exactly when it asked to be synced, its durable view reads back what recovery
// reads, and a snapshot drops the log it covers.
#include "core/sim/paxos_store.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace geokv::sim {
namespace {

paxos::Entry MakeEntry(uint64_t slot, uint64_t round, std::string payload) {
  paxos::Entry e;
  e.slot = slot;
  e.ballot = paxos::Ballot{round, 1};
  e.commands.push_back(paxos::Command{7, slot, std::move(payload)});
  return e;
}

TEST(PaxosStore, ReadyIsDurableOnlyWhenItAskedForASync) {
  PaxosStore st(/*group=*/3);
  paxos::Ready rd;
  rd.hard_state = paxos::HardState{paxos::Ballot{2, 1}, 0};
  rd.entries = {MakeEntry(1, 2, "a"), MakeEntry(2, 2, "b")};
  rd.must_sync = false;
  ASSERT_TRUE(st.Persist(rd).ok());
  // Written (a restart without power loss reads it) but not durable.
  EXPECT_EQ(st.log().LoadEntries()->size(), 2u);
  EXPECT_EQ(st.DurableHardState()->promised, paxos::Ballot{});
  EXPECT_FALSE(st.DurableEntry(1)->has_value());

  rd.entries = {MakeEntry(3, 2, "c")};
  rd.must_sync = true;  // an fsync covers the earlier writes too
  ASSERT_TRUE(st.Persist(rd).ok());
  EXPECT_EQ(st.DurableHardState()->promised, (paxos::Ballot{2, 1}));
  for (uint64_t s = 1; s <= 3; ++s) {
    auto e = st.DurableEntry(s);
    ASSERT_TRUE(e.ok() && e->has_value()) << s;
    EXPECT_EQ((*e)->ballot, (paxos::Ballot{2, 1}));
    EXPECT_EQ((*e)->commands, st.log().LoadEntries()->at(s - 1).commands);
  }
  EXPECT_FALSE(st.DurableEntry(4)->has_value());
  EXPECT_EQ(st.memory().volatile_writes(), 0u);
}

TEST(PaxosStore, CrashKeepsOnlyWhatWasSynced) {
  PaxosStore st;
  paxos::Ready rd;
  rd.hard_state = paxos::HardState{paxos::Ballot{1, 0}, 1};
  rd.entries = {MakeEntry(1, 1, "a")};
  rd.must_sync = true;
  ASSERT_TRUE(st.Persist(rd).ok());
  rd.hard_state = paxos::HardState{paxos::Ballot{5, 2}, 1};
  rd.entries = {MakeEntry(2, 5, "b")};
  rd.must_sync = false;
  ASSERT_TRUE(st.Persist(rd).ok());
  st.Crash();
  EXPECT_EQ(st.log().LoadHardState()->promised, (paxos::Ballot{1, 0}));
  ASSERT_EQ(st.log().LoadEntries()->size(), 1u);
  EXPECT_EQ(st.log().LoadEntries()->at(0).slot, 1u);
}

TEST(PaxosStore, SnapshotDropsTheLogItCovers) {
  PaxosStore st;
  paxos::Ready rd;
  for (uint64_t s = 1; s <= 5; ++s) rd.entries.push_back(MakeEntry(s, 1, "x"));
  rd.must_sync = true;
  ASSERT_TRUE(st.Persist(rd).ok());
  paxos::Ready snap;
  snap.snapshot = paxos::Snapshot{3, "state@3", {{7, 3}}, {}};
  ASSERT_TRUE(st.Persist(snap).ok());  // no sync asked: not durable yet
  EXPECT_EQ(st.DurableSnapshotIndex().value(), 0u);
  EXPECT_TRUE(st.DurableEntry(2)->has_value());
  ASSERT_TRUE(st.Sync().ok());
  EXPECT_EQ(st.DurableSnapshotIndex().value(), 3u);
  EXPECT_FALSE(st.DurableEntry(2)->has_value());
  EXPECT_TRUE(st.DurableEntry(4)->has_value());
  auto loaded = st.log().LoadSnapshot();
  ASSERT_TRUE(loaded.ok() && loaded->has_value());
  EXPECT_EQ(**loaded, *snap.snapshot);
  auto entries = st.log().LoadEntries();
  ASSERT_TRUE(entries.ok());
  std::vector<uint64_t> slots;
  for (const auto& e : *entries) slots.push_back(e.slot);
  EXPECT_EQ(slots, (std::vector<uint64_t>{4, 5}));
}

// Nothing to persist: nothing is written (as the engine skips an empty batch).
TEST(PaxosStore, EmptyReadyWritesNothing) {
  PaxosStore st;
  paxos::Ready rd;
  rd.must_sync = true;
  ASSERT_TRUE(st.Persist(rd).ok());
  EXPECT_EQ(st.memory().volatile_writes(), 0u);
  EXPECT_TRUE(st.memory().Scan("paxos_log", "", "", 10)->empty());
}

}  // namespace
}  // namespace geokv::sim
