// The Replica state machine, driven by hand: election, replication, recovery of accepted
// values with no-op hole filling, exactly-once, persistence flags, read index, leases,
// catch-up, window and batching, leadership transfer.
#include "replication/paxos/replica.h"

#include <gtest/gtest.h>

#include "replication/paxos/message.h"
#include "tests/replication/paxos/group.h"

namespace geokv::paxos {
namespace {

using testing::Cmd;
using testing::Group;

std::vector<std::string> Payloads(const std::vector<Apply>& applied) {
  std::vector<std::string> out;
  for (const auto& a : applied) {
    if (!a.duplicate) out.push_back(a.command.payload);
  }
  return out;
}

TEST(PaxosReplica, RejectsBadConfig) {
  MemoryStorage st;
  Config c;
  c.id = 3;
  c.replicas = 3;
  EXPECT_FALSE(Replica::Open(c, st).ok());
  c.id = 0;
  c.election_ticks = 1;
  c.heartbeat_ticks = 2;
  EXPECT_FALSE(Replica::Open(c, st).ok());
}

TEST(PaxosReplica, ElectsOneLeaderAndReplicatesInOrder) {
  Group g(3);
  g.Elect(0);
  EXPECT_EQ(g.Leader(), 0);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(g.at(0).Propose(Cmd(1, i + 1, "c" + std::to_string(i))).ok());
  g.Deliver();
  g.Run(3);  // heartbeats carry the commit index to the followers
  for (int r = 0; r < 3; ++r) {
    ASSERT_EQ(Payloads(g.applied(r)).size(), 10u) << "replica " << r;
    EXPECT_EQ(Payloads(g.applied(r)), Payloads(g.applied(0)));
    EXPECT_EQ(g.at(r).leader_hint(), 0);
  }
}

TEST(PaxosReplica, FollowerRefusesProposalsAndReadsWithLeaderHint) {
  Group g(3);
  g.Elect(0);
  g.Run(2);
  EXPECT_EQ(g.at(1).Propose(Cmd(1, 1)).code(), Code::kUnavailable);
  EXPECT_EQ(g.at(1).ReadIndex(5, g.now()).code(), Code::kUnavailable);
  EXPECT_EQ(g.at(1).leader_hint(), 0);
}

TEST(PaxosReplica, ProposalLimits) {
  Config c;
  c.batch_bytes_max = 16;
  c.pending_commands_max = 2;
  c.window_slots = 1;
  Group g(3, c);
  g.Elect(0);
  EXPECT_EQ(g.at(0).Propose(Cmd(1, 1, std::string(17, 'x'))).code(), Code::kInvalidArgument);
  ASSERT_TRUE(g.at(0).Propose(Cmd(1, 1)).ok());  // takes the only window slot
  ASSERT_TRUE(g.at(0).Propose(Cmd(1, 2)).ok());
  ASSERT_TRUE(g.at(0).Propose(Cmd(1, 3)).ok());
  EXPECT_EQ(g.at(0).Propose(Cmd(1, 4)).code(), Code::kBusy);
}

TEST(PaxosReplica, AcceptIsSyncedBeforeTheAcknowledgementIsSent) {
  Group g(3);
  g.Elect(0);
  g.Run(2);
  ASSERT_TRUE(g.at(0).Propose(Cmd(1, 1)).ok());
  Ready leader = g.at(0).Ready();
  EXPECT_TRUE(leader.must_sync);
  ASSERT_EQ(leader.entries.size(), 1u);
  ASSERT_FALSE(leader.messages.empty());
  g.at(0).Advance();
  ASSERT_TRUE(g.at(1).Step(leader.messages[0].bytes, g.now()).ok());
  Ready f = g.at(1).Ready();
  EXPECT_TRUE(f.must_sync);
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(f.entries[0].commands[0], Cmd(1, 1));
  ASSERT_EQ(f.messages.size(), 1u);
  EXPECT_EQ(f.messages[0].type, MessageType::kAccepted);
  g.at(1).Advance();
}

TEST(PaxosReplica, RetriedCommandIsAppliedOnce) {
  Group g(3);
  g.Elect(0);
  ASSERT_TRUE(g.at(0).Propose(Cmd(7, 1, "add 1")).ok());
  g.Deliver();
  ASSERT_TRUE(g.at(0).Propose(Cmd(7, 1, "add 1")).ok());  // the client retried
  ASSERT_TRUE(g.at(0).Propose(Cmd(7, 2, "add 2")).ok());
  g.Deliver();
  g.Run(3);
  for (int r = 0; r < 3; ++r) {
    ASSERT_EQ(g.applied(r).size(), 3u);
    EXPECT_FALSE(g.applied(r)[0].duplicate);
    EXPECT_TRUE(g.applied(r)[1].duplicate);
    EXPECT_FALSE(g.applied(r)[2].duplicate);
  }
}

// Leader 0 gets slot 2 accepted by 1 only, then dies. The next leader must learn it from
// 1 in phase 1 and choose it, not a new value.
void RecoveryScenario(bool unsafe, std::vector<std::string>* at2) {
  Config c;
  c.unsafe_skip_phase1_recovery = unsafe;
  Group g(3, c);
  g.Elect(0);
  ASSERT_TRUE(g.at(0).Propose(Cmd(1, 1, "A")).ok());
  g.Deliver();
  g.Run(2);
  ASSERT_TRUE(g.at(0).Propose(Cmd(1, 2, "B")).ok());
  g.Pump(0);
  // Deliver B's accept to 1 only; drop everything else.
  for (auto& m : g.queue()) {
    if (m.msg.to == 1 && m.msg.type == MessageType::kAccept) {
      ASSERT_TRUE(g.at(1).Step(m.msg.bytes, g.now()).ok());
    }
  }
  g.queue().clear();
  g.Pump(1);
  g.queue().clear();
  g.Crash(0);
  g.Elect(2);
  ASSERT_TRUE(g.at(2).Propose(Cmd(2, 1, "C")).ok());
  g.Deliver();
  g.Run(3);
  *at2 = Payloads(g.applied(2));
  EXPECT_EQ(Payloads(g.applied(1)), *at2);
}

TEST(PaxosReplica, NewLeaderRecoversAcceptedValueFromMajority) {
  std::vector<std::string> applied;
  RecoveryScenario(false, &applied);
  EXPECT_EQ(applied, (std::vector<std::string>{"A", "B", "C"}));
}

TEST(PaxosReplica, UnsafeFlagSkipsRecoveryAndLosesTheValue) {
  std::vector<std::string> applied;
  RecoveryScenario(true, &applied);
  // The test-only flag really breaks the protocol: B (accepted by a majority-to-be) is
  // overwritten. The simulator suite shows Porcupine catches this.
  EXPECT_EQ(applied, (std::vector<std::string>{"A", "C"}));
}

TEST(PaxosReplica, HoleIsFilledWithNoop) {
  Group g(3);
  g.Elect(0);
  ASSERT_TRUE(g.at(0).Propose(Cmd(1, 1, "B")).ok());  // slot 1
  ASSERT_TRUE(g.at(0).Propose(Cmd(1, 2, "C")).ok());  // slot 2
  g.Pump(0);
  for (auto& m : g.queue()) {
    if (m.msg.to != 1 || m.msg.type != MessageType::kAccept) continue;
    auto d = DecodeMessage(m.msg.bytes, 1 << 20);
    ASSERT_TRUE(d.ok());
    if (d->entries.size() == 1 && d->entries[0].slot == 2) {
      ASSERT_TRUE(g.at(1).Step(m.msg.bytes, g.now()).ok());
    }
  }
  g.queue().clear();
  g.Pump(1);
  g.queue().clear();
  g.Crash(0);
  g.Elect(2);
  g.Deliver();
  g.Run(3);
  ASSERT_NE(g.at(2).LogEntry(1), nullptr);
  EXPECT_TRUE(g.at(2).LogEntry(1)->noop);
  EXPECT_EQ(Payloads(g.applied(2)), (std::vector<std::string>{"C"}));
  EXPECT_EQ(g.at(2).commit_index(), 2u);
}

TEST(PaxosReplica, LaggingReplicaCatchesUp) {
  Group g(3);
  g.Elect(0);
  g.Isolate(2);
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(g.at(0).Propose(Cmd(1, i + 1, std::to_string(i))).ok());
  g.Run(5);
  EXPECT_EQ(g.applied(2).size(), 0u);
  EXPECT_EQ(g.applied(1).size(), 300u);
  g.HealAll();
  g.Run(20);
  EXPECT_EQ(Payloads(g.applied(2)), Payloads(g.applied(0)));
  EXPECT_GT(g.at(0).stats().catchups, 0u);
}

TEST(PaxosReplica, WindowBoundsSlotsInFlightAndBatchesTheRest) {
  Config c;
  c.window_slots = 4;
  Group g(3, c);
  g.Elect(0);
  const uint64_t before = g.at(0).stats().slots_proposed;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(g.at(0).Propose(Cmd(1, i + 1)).ok());
  EXPECT_EQ(g.at(0).stats().slots_proposed - before, 4u);
  g.Deliver();
  g.Run(3);
  EXPECT_EQ(g.applied(1).size(), 100u);
  EXPECT_LT(g.at(0).stats().slots_proposed - before, 20u);
}

TEST(PaxosReplica, ReadIndexWaitsForAQuorumRound) {
  Group g(3);  // leases off
  g.Elect(0);
  g.Run(2);
  ASSERT_TRUE(g.at(0).Propose(Cmd(1, 1)).ok());
  g.Deliver();
  ASSERT_TRUE(g.at(0).ReadIndex(42, g.now()).ok());
  g.Pump(0);
  EXPECT_TRUE(g.reads(0).empty());  // not before the quorum answered
  g.Deliver();
  ASSERT_EQ(g.reads(0).size(), 1u);
  EXPECT_EQ(g.reads(0)[0].request_id, 42u);
  EXPECT_EQ(g.reads(0)[0].index, 1u);
  EXPECT_FALSE(g.at(0).HasLease());
}

TEST(PaxosReplica, IsolatedLeaderCannotConfirmReads) {
  Group g(3);
  g.Elect(0);
  g.Run(2);
  g.Isolate(0);
  ASSERT_TRUE(g.at(0).ReadIndex(1, g.now()).ok());
  g.Deliver();
  g.Run(3);
  EXPECT_TRUE(g.reads(0).empty());
}

Config LeaseConfig() {
  Config c;
  c.tick_us = 10'000;
  c.lease_us = 200'000;  // 20 ticks: outlasts the 15 ticks of leader stickiness
  c.election_ticks = 30;
  c.heartbeat_ticks = 2;
  return c;
}

TEST(PaxosReplica, LeaseServesReadsLocally) {
  Group g(3, LeaseConfig());
  g.Run(1);  // first tick: the restart guard starts
  g.Run(20);  // guards expire
  g.Elect(0);
  g.Run(4);
  ASSERT_TRUE(g.at(0).HasLease());
  ASSERT_TRUE(g.at(0).ReadIndex(9, g.now()).ok());
  g.Pump(0);
  ASSERT_EQ(g.reads(0).size(), 1u);  // no round trip
  EXPECT_EQ(g.at(0).stats().lease_reads, 1u);
}

TEST(PaxosReplica, AcceptorHoldsLeaseAgainstOtherCandidates) {
  Group g(3, LeaseConfig());
  g.Run(21);
  g.Elect(0);
  g.Run(4);  // replica 1 acknowledged heartbeats: it granted a lease to 0
  Message prepare;
  prepare.type = MessageType::kPrepare;
  prepare.from = 2;
  prepare.to = 1;
  prepare.ballot = Ballot{g.at(1).promised().round + 1, 2};
  prepare.from_slot = 1;
  g.queue().clear();
  g.Tick(1, 16);  // 160 ms without heartbeats: no longer sticky, but the lease runs
  g.queue().clear();
  ASSERT_TRUE(g.at(1).Step(EncodeMessage(prepare), g.now()).ok());
  g.Pump(1);
  EXPECT_TRUE(g.queue().empty());  // silence while the lease runs
  EXPECT_EQ(g.at(1).stats().lease_refusals, 1u);
  g.Tick(1, 8);  // 240 ms of replica 1's clock without heartbeats: lease over
  g.queue().clear();
  ASSERT_TRUE(g.at(1).Step(EncodeMessage(prepare), g.now()).ok());
  g.Pump(1);
  ASSERT_FALSE(g.queue().empty());
  EXPECT_EQ(g.queue().front().msg.type, MessageType::kPromise);
}

TEST(PaxosReplica, RestartedAcceptorRefusesToPromiseUntilALeaseHasPassed) {
  Group g(3, LeaseConfig());
  g.Run(21);
  g.Elect(0);
  g.Run(4);
  g.Crash(1);
  g.Open(1);
  Message prepare;
  prepare.type = MessageType::kPrepare;
  prepare.from = 2;
  prepare.to = 1;
  prepare.ballot = Ballot{g.at(1).promised().round + 1, 2};
  prepare.from_slot = 1;
  g.queue().clear();
  ASSERT_TRUE(g.at(1).Step(EncodeMessage(prepare), g.now()).ok());
  g.Pump(1);
  EXPECT_TRUE(g.queue().empty());
}

TEST(PaxosReplica, TransferLeadership) {
  Group g(3);
  g.Elect(0);
  ASSERT_TRUE(g.at(0).Propose(Cmd(1, 1)).ok());
  g.Deliver();
  g.Run(2);
  ASSERT_TRUE(g.at(0).TransferLeader(1).ok());
  g.Deliver();
  g.Run(3);
  EXPECT_EQ(g.Leader(), 1);
  EXPECT_FALSE(g.at(0).IsLeader());
  ASSERT_TRUE(g.at(1).Propose(Cmd(1, 2)).ok());
  g.Deliver();
  g.Run(3);
  EXPECT_EQ(g.applied(0).size(), 2u);
}

TEST(PaxosReplica, LeaseIsNeverRenewedAfterTimeoutNowWasSent) {
  Group g(3, LeaseConfig());
  g.Run(21);
  g.Elect(0);
  g.Run(4);
  ASSERT_TRUE(g.at(0).HasLease());
  g.Cut(0, 1);  // TimeoutNow goes out but is lost; replica 2 keeps acknowledging
  ASSERT_TRUE(g.at(0).TransferLeader(1).ok());
  g.Run(2 * LeaseConfig().election_ticks);  // the transfer times out on the leader
  ASSERT_TRUE(g.at(0).IsLeader());
  // A delayed TimeoutNow could still make 1 win with acceptors waiving our lease.
  EXPECT_FALSE(g.at(0).HasLease());
  ASSERT_TRUE(g.at(0).ReadIndex(3, g.now()).ok());
  EXPECT_EQ(g.at(0).stats().lease_reads, 0u);
  EXPECT_EQ(g.at(0).stats().quorum_reads, 1u);
}

TEST(PaxosReplica, LeaderThatHearsNoMajorityStepsDownAndAnotherTakesOver) {
  Group g(3);
  g.Elect(0);
  g.Run(2);
  g.CutDirected(1, 0);  // 0 still reaches everyone, but hears nothing back
  g.CutDirected(2, 0);
  g.Run(6 * Config{}.election_ticks);
  EXPECT_GE(g.at(0).stats().step_downs, 1u);
  const int leader = g.Leader();
  EXPECT_TRUE(leader == 1 || leader == 2) << "leader " << leader;
}

TEST(PaxosReplica, PreferredLeaderTakesOver) {
  Config c;
  c.preferred_leader = 2;
  Group g(3, c);
  g.Elect(0);
  g.Run(4 * c.election_ticks);
  EXPECT_EQ(g.Leader(), 2);
}

TEST(PaxosReplica, StateSurvivesRestartFromSyncedStorage) {
  Group g(3);
  g.Elect(0);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(g.at(0).Propose(Cmd(1, i + 1, std::to_string(i))).ok());
  g.Deliver();
  g.Run(3);
  const auto before = Payloads(g.applied(1));
  g.Crash(1);
  g.Open(1);
  g.Run(5);
  EXPECT_EQ(Payloads(g.applied(1)), before);  // re-applied from the log after restart
}

TEST(PaxosReplica, SnapshotTruncatesLogAndCatchesUpALaggingReplica) {
  Group g(3);
  g.Elect(0);
  g.Isolate(2);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(g.at(0).Propose(Cmd(1, i + 1, std::to_string(i))).ok());
  g.Run(3);
  ASSERT_EQ(g.at(0).applied_index(), g.at(0).commit_index());
  const uint64_t index = g.at(0).applied_index();
  ASSERT_TRUE(g.at(0).Compact("state@" + std::to_string(index)).ok());
  g.Pump(0);
  EXPECT_EQ(g.at(0).snapshot_index(), index);
  EXPECT_EQ(g.at(0).LogEntry(1), nullptr);
  EXPECT_EQ(g.storage(0).durable_snapshot_index(), 0u);  // not synced yet...
  ASSERT_TRUE(g.storage(0).Sync().ok());
  EXPECT_EQ(g.storage(0).durable_snapshot_index(), index);  // ...now it is
  g.HealAll();
  g.Run(10);
  ASSERT_EQ(g.installed(2).size(), 1u);
  EXPECT_EQ(g.installed(2)[0].data, "state@" + std::to_string(index));
  EXPECT_EQ(g.installed(2)[0].sessions, (std::vector<std::pair<uint64_t, uint64_t>>{{1, 40}}));
  EXPECT_GT(g.at(0).stats().snapshots_sent, 0u);
  // Exactly-once survives the snapshot: a late retry of seq 40 is a duplicate at 2 too.
  ASSERT_TRUE(g.at(0).Propose(Cmd(1, 40, "39")).ok());
  ASSERT_TRUE(g.at(0).Propose(Cmd(1, 41, "new")).ok());
  g.Deliver();
  g.Run(3);
  ASSERT_EQ(g.applied(2).size(), 2u);
  EXPECT_TRUE(g.applied(2)[0].duplicate);
  EXPECT_EQ(g.applied(2)[1].command.payload, "new");
  EXPECT_EQ(g.at(2).commit_index(), g.at(0).commit_index());
}

TEST(PaxosReplica, RestartLoadsSnapshotThenLaterEntries) {
  Group g(3);
  g.Elect(0);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(g.at(0).Propose(Cmd(1, i + 1, std::to_string(i))).ok());
  g.Deliver();
  g.Run(3);
  ASSERT_TRUE(g.at(1).Compact("s10").ok());
  g.Pump(1);
  ASSERT_TRUE(g.at(0).Propose(Cmd(1, 11, "after")).ok());
  g.Deliver();
  g.Run(3);
  ASSERT_TRUE(g.storage(1).Sync().ok());
  g.Crash(1);
  g.Open(1);
  g.Run(3);
  ASSERT_EQ(g.installed(1).size(), 1u);
  EXPECT_EQ(g.installed(1)[0].data, "s10");
  EXPECT_EQ(Payloads(g.applied(1)), (std::vector<std::string>{"after"}));
}

TEST(PaxosReplica, NewLeaderAdoptsSnapshotOfAPeerInPhase1) {
  Group g(3);
  g.Elect(0);
  g.Isolate(2);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(g.at(0).Propose(Cmd(1, i + 1, std::to_string(i))).ok());
  g.Run(3);
  ASSERT_TRUE(g.at(1).Compact("s20").ok());
  g.Pump(1);
  g.Crash(0);
  g.HealAll();
  g.Elect(2);  // 2 lags: its quorum is {1, 2}, and 1 only has a snapshot
  EXPECT_GE(g.at(2).commit_index(), 20u);
  ASSERT_EQ(g.installed(2).size(), 1u);
  ASSERT_TRUE(g.at(2).Propose(Cmd(2, 1, "x")).ok());
  g.Deliver();
  g.Run(3);
  EXPECT_EQ(Payloads(g.applied(1)).back(), "x");
}

}  // namespace
}  // namespace geokv::paxos
