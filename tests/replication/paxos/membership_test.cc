// Membership changes of the Replica, driven by hand: a learner is added, catches up (from
// the log or a snapshot) without voting, is promoted; voters are removed and replaced; the
// errors of ChangeMembers; Ready::members; commands queued behind a change; a leader that
// fails over in the middle of a change; restarts that recover the membership from storage;
// and the TEST ONLY flag unsafe_learners_count, shown to break the rule it breaks.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "replication/paxos/replica.h"
#include "tests/replication/paxos/group.h"

namespace geokv::paxos {
namespace {

using testing::Cmd;
using testing::Group;

constexpr uint64_t kBit0 = 1, kBit1 = 2, kBit2 = 4, kBit3 = 8;

Membership Members(uint32_t epoch, uint64_t voters, uint64_t learners) {
  return Membership{epoch, voters, learners};
}

std::vector<std::string> Payloads(const std::vector<Apply>& applied) {
  std::vector<std::string> out;
  for (const auto& a : applied) {
    if (!a.duplicate) out.push_back(a.command.payload);
  }
  return out;
}

// Proposes `count` commands on `leader`, one Deliver each (so each gets a slot), then lets
// heartbeats carry the commit index to everyone.
void Commit(Group& g, int leader, uint64_t client, uint64_t first_seq, int count,
            const std::string& prefix) {
  for (int k = 0; k < count; ++k) {
    const uint64_t seq = first_seq + static_cast<uint64_t>(k);
    ASSERT_TRUE(g.at(leader).Propose(Cmd(client, seq, prefix + std::to_string(seq))).ok());
    g.Deliver();
  }
  g.Run(3);
}

// Proposes `change` on `leader` and runs until it has committed on the leader.
void Change(Group& g, int leader, MemberChange change, uint32_t id) {
  const uint32_t epoch = g.at(leader).members().epoch;
  const Status s = g.at(leader).ChangeMembers(change, id);
  ASSERT_TRUE(s.ok()) << s.ToString();
  g.Deliver();
  g.Run(5);
  ASSERT_EQ(g.at(leader).members().epoch, epoch + 1);
  ASSERT_TRUE(g.at(leader).IsLeader()) << "phase 1 again among the new voters";
}

// Every live replica in `ids` knows the same membership, and every slot committed on two
// of them holds the same value.
void ExpectAgreement(Group& g, const std::vector<int>& ids) {
  for (int r : ids) {
    EXPECT_EQ(g.at(r).members(), g.at(ids[0]).members()) << "replica " << r;
    for (int q : ids) {
      const uint64_t upto = std::min(g.at(r).commit_index(), g.at(q).commit_index());
      for (uint64_t s = std::max(g.at(r).snapshot_index(), g.at(q).snapshot_index()) + 1;
           s <= upto; ++s) {
        const Entry* a = g.at(r).LogEntry(s);
        const Entry* b = g.at(q).LogEntry(s);
        ASSERT_NE(a, nullptr) << "replica " << r << " slot " << s;
        ASSERT_NE(b, nullptr) << "replica " << q << " slot " << s;
        EXPECT_TRUE(a->SameValue(*b)) << "slot " << s << " differs on " << r << " and " << q;
      }
    }
  }
}

TEST(PaxosMembership, GrowThreeToFourLearnerFirstThenVoter) {
  Group g(4, 3);
  EXPECT_EQ(g.at(3).members(), Members(0, kBit0 | kBit1 | kBit2, 0));  // knows genesis only
  g.Elect(0);
  Commit(g, 0, 1, 1, 5, "a");
  Change(g, 0, MemberChange::kAddLearner, 3);
  Commit(g, 0, 1, 6, 3, "b");
  const Membership learner = Members(1, kBit0 | kBit1 | kBit2, kBit3);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(g.at(r).members(), learner) << "replica " << r;
    EXPECT_EQ(g.at(r).commit_index(), g.at(0).commit_index()) << "replica " << r;
  }
  // The learner received every committed command, those before it was added included.
  EXPECT_EQ(Payloads(g.applied(3)), Payloads(g.applied(0)));
  EXPECT_EQ(Payloads(g.applied(3)).size(), 8u);

  // It does not vote: the leader and the learner are two of four replicas, not a quorum of
  // the three voters.
  g.Cut(0, 1);
  g.Cut(0, 2);
  const uint64_t commit = g.at(0).commit_index();
  ASSERT_TRUE(g.at(0).Propose(Cmd(2, 1, "cut")).ok());
  g.Deliver();
  g.Run(3);
  EXPECT_EQ(g.at(0).commit_index(), commit);
  EXPECT_EQ(g.at(3).commit_index(), commit);
  EXPECT_NE(g.at(3).LogEntry(commit + 1), nullptr) << "the learner did receive the accept";
  g.HealAll();
  g.Run(25);  // resend_ticks
  EXPECT_GT(g.at(0).commit_index(), commit);
  ASSERT_TRUE(g.at(0).IsLeader());

  Change(g, 0, MemberChange::kPromote, 3);
  g.Run(3);
  const Membership voter = Members(2, kBit0 | kBit1 | kBit2 | kBit3, 0);
  for (int r = 0; r < 4; ++r) EXPECT_EQ(g.at(r).members(), voter) << "replica " << r;
  EXPECT_EQ(g.at(0).members().Quorum(), 3);

  // The new voter's acceptance counts: with 1 cut off, 0, 2 and 3 are three of four.
  g.Cut(0, 1);
  const uint64_t before = g.at(0).commit_index();
  Commit(g, 0, 3, 1, 2, "c");
  EXPECT_EQ(g.at(0).commit_index(), before + 2);
  // And it is needed: without 3, 0 and 2 are two of four.
  g.Cut(0, 3);
  ASSERT_TRUE(g.at(0).Propose(Cmd(3, 3, "c3")).ok());
  g.Deliver();
  g.Run(3);
  EXPECT_EQ(g.at(0).commit_index(), before + 2);
  g.HealAll();
  g.Run(25);
  EXPECT_EQ(g.at(0).commit_index(), before + 3);
  g.Run(3);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(g.at(r).members(), voter) << "replica " << r;
    EXPECT_EQ(g.at(r).members().epoch, 2u);
    EXPECT_EQ(g.at(r).stats().member_changes, 2u) << "replica " << r;
    EXPECT_EQ(Payloads(g.applied(r)), Payloads(g.applied(0))) << "replica " << r;
  }
  ExpectAgreement(g, {0, 1, 2, 3});
}

// A joiner (not yet added) and a learner take no part in elections: they never campaign,
// and with the leader dead and the two other voters cut from each other, a voter and the
// learner (two of four replicas) elect no one.
TEST(PaxosMembership, JoinersAndLearnersNeverCampaign) {
  Group g(4, 3);
  g.Run(300);  // long past any election timeout: the voters elect a leader, 3 does not try
  ASSERT_GE(g.Leader(), 0);
  ASSERT_LT(g.Leader(), 3);
  const int leader = g.Leader();
  EXPECT_EQ(g.at(3).stats().pre_votes, 0u);
  EXPECT_EQ(g.at(3).stats().elections, 0u);
  EXPECT_EQ(g.at(3).commit_index(), 0u) << "never added: sent nothing";
  Change(g, leader, MemberChange::kAddLearner, 3);
  g.Run(5);
  ASSERT_EQ(g.at(3).members(), Members(1, kBit0 | kBit1 | kBit2, kBit3));
  g.Crash(leader);
  const int a = (leader + 1) % 3;
  const int b = (leader + 2) % 3;
  g.Cut(a, b);
  g.Run(300);
  EXPECT_EQ(g.Leader(), -1);
  EXPECT_EQ(g.at(3).stats().pre_votes, 0u);
  EXPECT_EQ(g.at(3).stats().elections, 0u);
  g.HealAll();
  g.Run(300);
  const int next = g.Leader();
  ASSERT_TRUE(next == a || next == b) << next;
  Commit(g, next, 1, 1, 2, "a");
  EXPECT_EQ(g.at(3).leader_hint(), next);
  EXPECT_EQ(g.at(3).commit_index(), g.at(next).commit_index());
  EXPECT_EQ(g.at(3).stats().pre_votes, 0u);
}

TEST(PaxosMembership, ShrinkThreeToTwoRemovedVoterChangesNothing) {
  Group g(3);
  g.Elect(0);
  Commit(g, 0, 1, 1, 3, "a");
  Change(g, 0, MemberChange::kRemove, 2);
  g.Run(3);
  const Membership two = Members(1, kBit0 | kBit1, 0);
  EXPECT_EQ(g.at(0).members(), two);
  EXPECT_EQ(g.at(1).members(), two);
  EXPECT_EQ(two.Quorum(), 2);

  // The removed replica, ticked far past any election timeout, never leads, never runs
  // phase 1, and never disturbs the leader's ballot.
  const Ballot ballot = g.at(0).promised();
  const uint64_t elections = g.at(2).stats().elections;
  for (int k = 0; k < 10; ++k) {
    g.Run(30);  // election_ticks
    EXPECT_FALSE(g.at(2).IsLeader());
    EXPECT_EQ(g.at(2).stats().elections, elections);
  }
  EXPECT_TRUE(g.at(0).IsLeader());
  EXPECT_EQ(g.at(0).promised(), ballot);
  EXPECT_EQ(g.at(1).promised(), ballot);
  EXPECT_EQ(g.at(1).leader_hint(), 0);

  // Two voters, quorum two: 2 is still connected to the leader, yet nothing commits once 1
  // is cut off; everything does once it is back.
  Commit(g, 0, 1, 4, 2, "b");
  const uint64_t commit = g.at(0).commit_index();
  EXPECT_EQ(g.at(1).commit_index(), commit);
  g.Cut(0, 1);
  ASSERT_TRUE(g.at(0).Propose(Cmd(2, 1, "cut")).ok());
  g.Deliver();
  g.Run(3);
  EXPECT_EQ(g.at(0).commit_index(), commit);
  g.HealAll();
  g.Run(25);
  EXPECT_EQ(g.at(0).commit_index(), commit + 1);
  ExpectAgreement(g, {0, 1});
}

// What the removed replica itself knows. It is no longer a member, but the leader keeps
// telling it the commit index (and catching it up) until it has learned that the change
// committed: then it knows it left, and never campaigns.
TEST(PaxosMembership, RemovedVoterLearnsItWasRemoved) {
  Group g(3);
  g.Elect(0);
  Commit(g, 0, 1, 1, 3, "a");
  Change(g, 0, MemberChange::kRemove, 2);
  g.Run(300);
  EXPECT_FALSE(g.at(2).members().IsVoter(2));
  EXPECT_EQ(g.at(2).members(), g.at(0).members());
  EXPECT_EQ(g.at(2).stats().pre_votes, 0u);
}

TEST(PaxosMembership, ReplaceAVoterAndRecoverMembershipFromStorage) {
  Group g(4, 3);
  g.Elect(0);
  Commit(g, 0, 1, 1, 3, "a");
  Change(g, 0, MemberChange::kAddLearner, 3);
  g.Run(5);  // the learner answers under the leader's new ballot
  Change(g, 0, MemberChange::kPromote, 3);
  Change(g, 0, MemberChange::kRemove, 2);
  g.Crash(2);  // for good
  Commit(g, 0, 1, 4, 3, "b");
  const Membership replaced = Members(3, kBit0 | kBit1 | kBit3, 0);
  for (int r : {0, 1, 3}) {
    EXPECT_EQ(g.at(r).members(), replaced) << "replica " << r;
    EXPECT_EQ(Payloads(g.applied(r)).size(), 6u) << "replica " << r;
  }
  // 0 and 3 are a quorum of the new voters.
  g.Cut(0, 1);
  const uint64_t commit = g.at(0).commit_index();
  Commit(g, 0, 2, 1, 1, "c");
  EXPECT_EQ(g.at(0).commit_index(), commit + 1);
  g.HealAll();
  g.Run(25);

  // Restart from the log alone: the membership comes back from the committed entries.
  ASSERT_TRUE(g.storage(1).Sync().ok());
  g.Restart(1);
  EXPECT_EQ(g.at(1).members(), replaced);
  g.Pump(1);
  EXPECT_EQ(g.at(1).applied_members(), replaced);
  g.Run(5);
  Commit(g, 0, 2, 2, 1, "c");

  // Restart from a snapshot taken after the changes (the change entries are compacted).
  for (int r : {1, 3}) {
    ASSERT_TRUE(g.at(r).Compact("state of " + std::to_string(r)).ok());
    g.Pump(r);
    ASSERT_GT(g.at(r).snapshot_index(), 0u);
    ASSERT_TRUE(g.storage(r).Sync().ok());
    const uint64_t snapshot = g.at(r).snapshot_index();
    g.Restart(r);
    EXPECT_EQ(g.at(r).snapshot_index(), snapshot);
    EXPECT_EQ(g.at(r).members(), replaced) << "replica " << r;
    g.Pump(r);
    EXPECT_EQ(g.at(r).applied_members(), replaced) << "replica " << r;
    g.Run(5);
  }
  // The leader too: it comes back as a follower knowing it is a voter, and the group
  // elects a leader among 0, 1 and 3.
  ASSERT_TRUE(g.at(0).Compact("state of 0").ok());
  g.Pump(0);
  ASSERT_TRUE(g.storage(0).Sync().ok());
  g.Restart(0);
  EXPECT_EQ(g.at(0).members(), replaced);
  g.Elect(3);
  Commit(g, 3, 4, 1, 3, "d");
  for (int r : {0, 1, 3}) EXPECT_EQ(g.at(r).commit_index(), g.at(3).commit_index());
  ExpectAgreement(g, {0, 1, 3});
}

TEST(PaxosMembership, LearnerCatchesUpBySnapshotThatNamesItALearner) {
  Group g(4, 3);
  g.Elect(0);
  g.Isolate(3);
  Commit(g, 0, 1, 1, 5, "a");
  Change(g, 0, MemberChange::kAddLearner, 3);
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kPromote, 3).code(), Code::kBusy)
      << "a learner that never answered";
  Commit(g, 0, 1, 6, 5, "b");
  ASSERT_TRUE(g.at(0).Compact("state after b10").ok());
  g.Pump(0);
  const uint64_t snapshot = g.at(0).snapshot_index();
  ASSERT_EQ(snapshot, g.at(0).commit_index());
  ASSERT_EQ(g.at(0).LogEntry(1), nullptr);

  g.HealAll();
  g.Run(60);
  const Membership learner = Members(1, kBit0 | kBit1 | kBit2, kBit3);
  ASSERT_EQ(g.installed(3).size(), 1u);
  EXPECT_EQ(g.installed(3)[0].index, snapshot);
  EXPECT_EQ(g.installed(3)[0].data, "state after b10");
  EXPECT_EQ(g.installed(3)[0].members, learner);
  EXPECT_TRUE(g.installed(3)[0].members.IsLearner(3));
  EXPECT_EQ(g.at(3).stats().snapshots_installed, 1u);
  EXPECT_EQ(g.at(3).members(), learner);
  EXPECT_EQ(g.at(3).applied_members(), learner);
  EXPECT_TRUE(g.applied(3).empty());  // everything so far came in the snapshot

  Commit(g, 0, 1, 11, 3, "c");
  EXPECT_EQ(Payloads(g.applied(3)), (std::vector<std::string>{"c11", "c12", "c13"}));
  EXPECT_EQ(g.at(3).commit_index(), g.at(0).commit_index());
  // Caught up and heard from: now it can be promoted.
  Change(g, 0, MemberChange::kPromote, 3);
  g.Run(3);
  ExpectAgreement(g, {0, 1, 2, 3});
}

TEST(PaxosMembership, ChangeMembersErrors) {
  Group g(4, 3);
  g.Elect(0);
  g.Run(3);
  // Not the leader.
  EXPECT_EQ(g.at(1).ChangeMembers(MemberChange::kAddLearner, 3).code(), Code::kUnavailable);
  EXPECT_EQ(g.at(3).ChangeMembers(MemberChange::kAddLearner, 3).code(), Code::kUnavailable);
  // Changes that do not fit the membership, and ids out of range (at and past the edge).
  const uint64_t proposed = g.at(0).stats().slots_proposed;
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kAddLearner, 64).code(), Code::kInvalidArgument);
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kPromote, 64).code(), Code::kInvalidArgument);
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kRemove, 64).code(), Code::kInvalidArgument);
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kAddLearner, 1).code(), Code::kInvalidArgument);
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kPromote, 1).code(), Code::kInvalidArgument);
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kPromote, 3).code(), Code::kInvalidArgument);
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kRemove, 3).code(), Code::kInvalidArgument);
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kRemove, 63).code(), Code::kInvalidArgument);
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kRemove, 0).code(), Code::kInvalidArgument);
  EXPECT_EQ(g.at(0).ChangeMembers(static_cast<MemberChange>(7), 3).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(g.at(0).stats().slots_proposed, proposed);
  EXPECT_EQ(g.at(0).members(), Membership::Initial(3));

  g.Isolate(3);
  ASSERT_TRUE(g.at(0).ChangeMembers(MemberChange::kAddLearner, 3).ok());
  // One change at a time, whatever the second one is.
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kRemove, 2).code(), Code::kBusy);
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kAddLearner, 5).code(), Code::kBusy);
  g.Deliver();
  g.Run(5);
  ASSERT_EQ(g.at(0).members(), Members(1, kBit0 | kBit1 | kBit2, kBit3));
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kAddLearner, 3).code(), Code::kInvalidArgument);
  // A learner that never answered cannot be promoted.
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kPromote, 3).code(), Code::kBusy);
  // The follower does not take changes either.
  EXPECT_EQ(g.at(2).ChangeMembers(MemberChange::kRemove, 3).code(), Code::kUnavailable);
  g.HealAll();
  g.Run(10);
  ASSERT_TRUE(g.at(0).ChangeMembers(MemberChange::kPromote, 3).ok());
  g.Deliver();
  g.Run(5);
  EXPECT_EQ(g.at(0).members(), Members(2, kBit0 | kBit1 | kBit2 | kBit3, 0));
}

TEST(PaxosMembership, UnavailableBeforeRecoveryCommitsAndDuringTransfer) {
  Group g(3);
  g.Elect(0);
  // Slot 1 is accepted by everyone, but only the leader knows it is chosen when it dies.
  ASSERT_TRUE(g.at(0).Propose(Cmd(1, 1)).ok());
  g.Deliver();
  ASSERT_EQ(g.at(0).commit_index(), 1u);
  ASSERT_EQ(g.at(1).commit_index(), 0u);
  g.Crash(0);
  // 1 wins, re-proposes slot 1, and hears no Accepted: its recovery is not committed.
  g.SetFilter([](const Group::InFlight& m) {
    return m.msg.type == MessageType::kAccepted && m.msg.to == 1 ? 0 : 1;
  });
  g.Elect(1);
  ASSERT_EQ(g.at(1).commit_index(), 0u);
  EXPECT_EQ(g.at(1).ChangeMembers(MemberChange::kRemove, 2).code(), Code::kUnavailable);
  g.SetFilter(nullptr);
  g.Run(25);  // resend_ticks
  ASSERT_TRUE(g.at(1).IsLeader());
  ASSERT_GE(g.at(1).commit_index(), 1u);
  // During a leadership transfer.
  ASSERT_TRUE(g.at(1).TransferLeader(2).ok());
  EXPECT_EQ(g.at(1).ChangeMembers(MemberChange::kRemove, 0).code(), Code::kUnavailable);
  g.Deliver();
  g.Run(5);
  ASSERT_TRUE(g.at(2).IsLeader());
  EXPECT_TRUE(g.at(2).ChangeMembers(MemberChange::kRemove, 0).ok());
}

// A learner heard from but more than window_slots behind cannot be promoted; at exactly
// window_slots behind it can.
TEST(PaxosMembership, PromoteNeedsALearnerWithinTheWindow) {
  for (const uint64_t lag : {uint64_t{4}, uint64_t{5}}) {
    SCOPED_TRACE("lag " + std::to_string(lag));
    Config c;
    c.window_slots = 4;
    Group g(4, 3, c);
    g.Elect(0);
    Change(g, 0, MemberChange::kAddLearner, 3);
    g.Run(5);
    ASSERT_EQ(g.at(3).commit_index(), g.at(0).commit_index());
    // From now on the learner hears heartbeats (and answers them) but receives no entry.
    g.SetFilter([](const Group::InFlight& m) {
      const MessageType t = m.msg.type;
      return m.msg.to == 3 && (t == MessageType::kAccept || t == MessageType::kCatchUp ||
                               t == MessageType::kInstallSnapshot)
                 ? 0
                 : 1;
    });
    for (uint64_t k = 0; k < lag; ++k) {
      ASSERT_TRUE(g.at(0).Propose(Cmd(1, k + 1)).ok());
      g.Deliver();
    }
    g.Run(3);
    ASSERT_EQ(g.at(0).commit_index() - g.at(3).commit_index(), lag);
    const Status s = g.at(0).ChangeMembers(MemberChange::kPromote, 3);
    if (lag <= c.window_slots) {
      EXPECT_TRUE(s.ok()) << s.ToString();
    } else {
      EXPECT_EQ(s.code(), Code::kBusy) << s.ToString();
      g.SetFilter(nullptr);
      g.Run(5);
      ASSERT_EQ(g.at(3).commit_index(), g.at(0).commit_index());
      EXPECT_TRUE(g.at(0).ChangeMembers(MemberChange::kPromote, 3).ok());
    }
    g.SetFilter(nullptr);
    g.Deliver();
    g.Run(5);
    EXPECT_EQ(g.at(0).members(), Members(2, kBit0 | kBit1 | kBit2 | kBit3, 0));
  }
}

// A learner not heard from within election_ticks cannot be promoted.
TEST(PaxosMembership, PromoteNeedsALearnerHeardFromLately) {
  Config c;
  Group g(4, 3, c);
  g.Elect(0);
  Change(g, 0, MemberChange::kAddLearner, 3);
  g.Run(5);
  g.Isolate(3);
  g.Run(c.election_ticks + c.heartbeat_ticks + 1);
  ASSERT_TRUE(g.at(0).IsLeader());
  EXPECT_EQ(g.at(0).ChangeMembers(MemberChange::kPromote, 3).code(), Code::kBusy);
  g.HealAll();
  g.Run(3);
  EXPECT_TRUE(g.at(0).ChangeMembers(MemberChange::kPromote, 3).ok());
}

TEST(PaxosMembership, ReadyReportsEachChangeOnceOnEveryReplica) {
  Group g(4, 3);
  g.Elect(0);
  Commit(g, 0, 1, 1, 2, "a");
  Change(g, 0, MemberChange::kAddLearner, 3);
  Commit(g, 0, 1, 3, 2, "b");
  Change(g, 0, MemberChange::kPromote, 3);
  Commit(g, 0, 1, 5, 2, "c");
  Change(g, 0, MemberChange::kRemove, 1);
  Commit(g, 0, 1, 7, 2, "d");
  g.Run(30);
  const std::vector<Membership> all = {Members(1, kBit0 | kBit1 | kBit2, kBit3),
                                       Members(2, kBit0 | kBit1 | kBit2 | kBit3, 0),
                                       Members(3, kBit0 | kBit2 | kBit3, 0)};
  for (int r : {0, 2, 3}) {
    EXPECT_EQ(g.members_reported(r), all) << "replica " << r;
    EXPECT_EQ(g.at(r).applied_members(), all.back()) << "replica " << r;
    EXPECT_EQ(g.at(r).stats().member_changes, 3u) << "replica " << r;
  }
  // The removed replica reports the changes it applied, each once; whether it learns of its
  // own removal is RemovedVoterLearnsItWasRemoved's concern.
  const auto& removed = g.members_reported(1);
  ASSERT_GE(removed.size(), 2u);
  EXPECT_EQ(removed[0], all[0]);
  EXPECT_EQ(removed[1], all[1]);
  if (removed.size() > 2) {
    EXPECT_EQ(removed, all);
  }
}

TEST(PaxosMembership, CommandsQueuedDuringAChangeCommitAfterTheNewPhase1) {
  Group g(4, 3);
  g.Elect(0);
  Commit(g, 0, 1, 1, 2, "a");
  const uint64_t elections = g.at(0).stats().elections;
  const Ballot ballot = g.at(0).promised();
  const uint64_t change_slot = g.at(0).commit_index() + 1;  // everything before is committed
  ASSERT_TRUE(g.at(0).ChangeMembers(MemberChange::kAddLearner, 3).ok());
  for (uint64_t k = 0; k < 5; ++k) {
    ASSERT_TRUE(g.at(0).Propose(Cmd(2, k + 1, "q" + std::to_string(k))).ok());
  }
  ASSERT_NE(g.at(0).LogEntry(change_slot), nullptr);
  ASSERT_TRUE(g.at(0).LogEntry(change_slot)->members.has_value());
  EXPECT_EQ(g.at(0).LogEntry(change_slot + 1), nullptr) << "nothing follows an uncommitted change";
  g.Deliver();
  g.Run(5);
  EXPECT_EQ(g.at(0).stats().elections, elections + 1);
  EXPECT_GT(g.at(0).promised(), ballot);
  ASSERT_TRUE(g.at(0).IsLeader());
  const std::vector<std::string> want = {"a1", "a2", "q0", "q1", "q2", "q3", "q4"};
  for (int r = 0; r < 3; ++r) EXPECT_EQ(Payloads(g.applied(r)), want) << "replica " << r;
  EXPECT_EQ(Payloads(g.applied(3)), want);
  for (const Apply& a : g.applied(0)) {
    if (a.command.client_id == 2) {
      EXPECT_GT(a.slot, change_slot);
    }
  }
}

// The leader proposes a change (adding learner 5 to five voters) that only it and replica
// 1 accept, and crashes. Replica 2 takes over; the change commits everywhere or nowhere.
void FailoverMidChange(bool new_leader_hears_1) {
  Group g(6, 5);
  g.Elect(0);
  Commit(g, 0, 1, 1, 3, "a");
  for (int r : {2, 3, 4, 5}) g.Cut(0, r);
  ASSERT_TRUE(g.at(0).ChangeMembers(MemberChange::kAddLearner, 5).ok());
  g.Deliver();
  const uint64_t slot = g.at(0).commit_index() + 1;
  ASSERT_NE(g.at(1).LogEntry(slot), nullptr);
  ASSERT_TRUE(g.at(1).LogEntry(slot)->members.has_value());
  ASSERT_EQ(g.at(2).LogEntry(slot), nullptr);
  ASSERT_EQ(g.at(0).members().epoch, 0u);  // two of five: not chosen
  g.Crash(0);
  g.HealAll();
  if (!new_leader_hears_1) g.Isolate(1);
  g.Elect(2);
  Commit(g, 2, 2, 1, 2, "b");
  g.HealAll();
  g.Open(0);
  g.Run(60);
  ASSERT_EQ(g.Leader(), 2);
  Commit(g, 2, 2, 3, 2, "b");
  g.Run(30);
  const Membership with = Members(1, 0b11111, 0b100000);
  const Membership without = Membership::Initial(5);
  // 1 was in 2's phase 1 quorum: the change may have been chosen, so it is kept; otherwise
  // it was never seen and the slot went to other values.
  EXPECT_EQ(g.at(2).members(), new_leader_hears_1 ? with : without);
  ExpectAgreement(g, {0, 1, 2, 3, 4, 5});
  for (int r = 0; r < 6; ++r) {
    if (g.at(2).members().IsMember(static_cast<uint32_t>(r))) {
      EXPECT_EQ(g.at(r).commit_index(), g.at(2).commit_index()) << "replica " << r;
    } else {
      EXPECT_EQ(g.at(r).commit_index(), 0u) << "replica " << r << " was never added";
    }
  }
  for (int r = 0; r < 5; ++r) EXPECT_EQ(Payloads(g.applied(r)), Payloads(g.applied(2))) << r;
}

TEST(PaxosMembership, FailoverMidChangeKeepsAChangeTheNewQuorumSaw) { FailoverMidChange(true); }
TEST(PaxosMembership, FailoverMidChangeDropsAChangeTheNewQuorumMissed) { FailoverMidChange(false); }

// Config::unsafe_learners_count (TEST ONLY) lets a learner's acknowledgement count: the
// leader and a learner "choose" a value while both other voters are cut off. The safe
// replica does not.
TEST(PaxosMembership, UnsafeLearnersCountCommitsWithoutAVoterQuorum) {
  for (const bool unsafe : {false, true}) {
    SCOPED_TRACE(unsafe ? "unsafe" : "safe");
    Config c;
    c.unsafe_learners_count = unsafe;
    Group g(4, 3, c);
    g.Elect(0);
    Change(g, 0, MemberChange::kAddLearner, 3);
    g.Run(5);
    g.Cut(0, 1);
    g.Cut(0, 2);
    const uint64_t commit = g.at(0).commit_index();
    ASSERT_TRUE(g.at(0).Propose(Cmd(1, 1, "leader+learner")).ok());
    g.Deliver();
    g.Run(3);
    EXPECT_EQ(g.at(0).commit_index(), unsafe ? commit + 1 : commit);
    EXPECT_EQ(g.at(3).commit_index(), unsafe ? commit + 1 : commit);
    EXPECT_EQ(Payloads(g.applied(3)).size(), unsafe ? 1u : 0u);
    EXPECT_EQ(g.at(1).LogEntry(commit + 1), nullptr);  // no voter but the leader has it
    EXPECT_EQ(g.at(2).LogEntry(commit + 1), nullptr);
  }
}

// The leader dies right after the removal commits, before it told the removed replica
// (RemovedVoterLearnsItWasRemoved), which still counts itself a voter of the old
// membership. The remaining voter grants it a PreVote and a promise; any quorum of the old
// voters holds the chosen removal, so all the removed replica can do as leader is
// re-propose it, apply it and step down for good.
TEST(PaxosMembership, RemovedVoterThatCampaignsOnlyLearnsItsRemoval) {
  Group g(3);
  g.Elect(0);
  Commit(g, 0, 1, 1, 3, "a");
  Change(g, 0, MemberChange::kRemove, 2);
  g.Run(3);
  const Membership two = Members(1, kBit0 | kBit1, 0);
  const uint64_t commit = g.at(1).commit_index();
  g.Crash(0);
  g.Run(300);
  EXPECT_FALSE(g.at(1).IsLeader()) << "one of two voters is no quorum";
  EXPECT_FALSE(g.at(2).IsLeader());
  EXPECT_EQ(g.at(1).members(), two);
  EXPECT_EQ(g.at(2).members(), two);
  EXPECT_EQ(g.at(1).commit_index(), commit);
  EXPECT_EQ(g.at(2).commit_index(), commit);
  const uint64_t elections = g.at(2).stats().elections;
  g.Run(300);
  EXPECT_EQ(g.at(2).stats().elections, elections) << "it knows it was removed: no campaign";
  // 0 comes back: the two voters go on without 2.
  g.Open(0);
  g.Run(200);
  const int leader = g.Leader();
  ASSERT_TRUE(leader == 0 || leader == 1) << leader;
  Commit(g, leader, 2, 1, 2, "b");
  EXPECT_EQ(g.at(0).commit_index(), g.at(1).commit_index());
  EXPECT_EQ(g.at(2).commit_index(), commit);
  ExpectAgreement(g, {0, 1});
}

// The scenario of the rule for a change that lost: X (add learner 5) at slot s accepted by
// 0 and 1 only; then 2 leads without X, its entry at s reaches no one else but its entry at
// s + 1 is accepted by 2, 3 and 4 (chosen); finally 1 is elected with 3 and 4, and finds X at
// s and the higher-ballot entry of X's epoch at s + 1. Returns s.
void OutrankedChangeScenario(Group& g, uint64_t* slot) {
  g.Elect(0);
  Commit(g, 0, 1, 1, 2, "a");
  *slot = g.at(0).commit_index() + 1;
  const uint64_t s = *slot;
  for (int r : {2, 3, 4, 5}) g.Cut(0, r);
  ASSERT_TRUE(g.at(0).ChangeMembers(MemberChange::kAddLearner, 5).ok());
  g.Deliver();
  ASSERT_NE(g.at(1).LogEntry(s), nullptr);
  ASSERT_TRUE(g.at(1).LogEntry(s)->members.has_value());
  g.Crash(0);
  g.HealAll();
  g.Isolate(1);
  g.Elect(2);  // among 2, 3 and 4, none of which has X
  ASSERT_EQ(g.at(2).commit_index(), s - 1);
  // Slot s: accepted by 2 alone. Slot s + 1: by 2, 3 and 4 (chosen, though no commit index
  // can cover it while s is open).
  g.Isolate(2);
  ASSERT_TRUE(g.at(2).Propose(Cmd(2, 1, "lost")).ok());
  g.Deliver();
  g.HealAll();
  g.Isolate(1);
  ASSERT_TRUE(g.at(2).Propose(Cmd(2, 2, "kept")).ok());
  g.Deliver();
  ASSERT_EQ(g.at(2).LogEntry(s)->commands.at(0).payload, "lost");
  for (int r : {3, 4}) {
    ASSERT_EQ(g.at(r).LogEntry(s), nullptr) << r;
    ASSERT_NE(g.at(r).LogEntry(s + 1), nullptr) << r;
    ASSERT_EQ(g.at(r).LogEntry(s + 1)->epoch, 0u);
    ASSERT_GT(g.at(r).LogEntry(s + 1)->ballot, g.at(1).LogEntry(s)->ballot);
  }
  g.Crash(2);
  g.HealAll();
  g.Elect(1);  // 1 (X at s) with 3 and 4 (the higher-ballot entry of epoch 0 at s + 1)
  g.Run(5);
}

// Recovery's rule for a change that lost (replica.h): a change X at slot s, accepted by a
// minority at ballot b0, is outranked by an entry above s of X's own epoch at a higher
// ballot: that proposer ran phase 1 among a majority that did not have X, so X was never
// chosen and becomes a no-op, while the entry above it is kept.
TEST(PaxosMembership, RecoveryTurnsAnOutrankedChangeIntoANoop) {
  Group g(6, 5);
  uint64_t s = 0;
  OutrankedChangeScenario(g, &s);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  const Entry* at_s = g.at(1).LogEntry(s);
  ASSERT_NE(at_s, nullptr);
  EXPECT_TRUE(at_s->noop);
  EXPECT_FALSE(at_s->members.has_value());
  ASSERT_NE(g.at(1).LogEntry(s + 1), nullptr);
  ASSERT_EQ(g.at(1).LogEntry(s + 1)->commands.size(), 1u);
  EXPECT_EQ(g.at(1).LogEntry(s + 1)->commands[0].payload, "kept");
  EXPECT_GE(g.at(1).commit_index(), s + 1);
  g.Open(0);
  g.Open(2);
  g.Run(60);
  Commit(g, g.Leader(), 3, 1, 1, "c");
  for (int r = 0; r < 5; ++r) {
    EXPECT_EQ(g.at(r).members(), Membership::Initial(5)) << "replica " << r;
    EXPECT_EQ(g.at(r).commit_index(), g.at(1).commit_index()) << "replica " << r;
  }
  EXPECT_EQ(g.at(5).commit_index(), 0u);
  ExpectAgreement(g, {0, 1, 2, 3, 4});
}

// The broken variant keeps X although the entry above it proves X lost: X ends epoch 0 at
// s, the chosen "kept" at s + 1 (epoch 0) is dropped as stale by the phase 1 of epoch 1, and
// the learner is added. The test of the rule above can fail.
TEST(PaxosMembership, KeepingALostChangeLosesAChosenEntry) {
  Config c;
  c.unsafe_keep_lost_changes = true;
  Group g(6, 5, c);
  uint64_t s = 0;
  OutrankedChangeScenario(g, &s);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  g.Run(60);
  const Entry* at_s = g.at(1).LogEntry(s);
  ASSERT_NE(at_s, nullptr);
  EXPECT_TRUE(at_s->members.has_value());
  EXPECT_TRUE(g.at(1).members().IsLearner(5));
  const Entry* above = g.at(1).LogEntry(s + 1);
  const bool kept = above != nullptr && above->commands.size() == 1 &&
                    above->commands[0].payload == "kept";
  EXPECT_FALSE(kept) << "the chosen entry survived: the broken variant is not broken";
}

// Ready::members is documented as set for "an installed snapshot". A replica restarted
// from storage that holds a snapshot hands it to the application (install_snapshot), and
// so should report the snapshot's membership with it, as it does when it replays changes
// from the log.
TEST(PaxosMembership, RestartReportsTheMembershipItRecovered) {
  Group g(4, 3);
  g.Elect(0);
  Change(g, 0, MemberChange::kAddLearner, 3);
  g.Run(5);
  Change(g, 0, MemberChange::kPromote, 3);
  g.Run(5);
  const Membership four = Members(2, kBit0 | kBit1 | kBit2 | kBit3, 0);
  ASSERT_TRUE(g.storage(1).Sync().ok());
  g.Restart(1);
  g.Pump(1);
  // From the log: both changes are applied in the first Ready, which reports the last.
  ASSERT_FALSE(g.members_reported(1).empty());
  EXPECT_EQ(g.members_reported(1).back(), four);
  EXPECT_EQ(g.members_reported(1).size(), 1u);
  ASSERT_TRUE(g.at(1).Compact("state").ok());
  g.Pump(1);
  ASSERT_TRUE(g.storage(1).Sync().ok());
  g.Restart(1);
  g.installed(1).clear();
  g.Pump(1);
  ASSERT_EQ(g.installed(1).size(), 1u);
  EXPECT_EQ(g.installed(1)[0].members, four);
  EXPECT_EQ(g.at(1).applied_members(), four);
  EXPECT_EQ(g.members_reported(1), std::vector<Membership>{four});
}

}  // namespace
}  // namespace geokv::paxos
