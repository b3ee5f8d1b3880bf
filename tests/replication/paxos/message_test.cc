// Wire format: round trips, and every malformed, truncated, oversized, misaddressed or
// unknown message is rejected by the Verifier (or the checks after it) and counted.
#include "replication/paxos/message.h"

#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>

#include <random>

#include "replication/paxos/replica.h"
#include "replication/wire/paxos_generated.h"
#include "tests/replication/paxos/group.h"

namespace geokv::paxos {
namespace {

Message SampleAccept() {
  Message m;
  m.type = MessageType::kAccept;
  m.from = 0;
  m.to = 1;
  m.ballot = Ballot{7, 0};
  m.commit = 3;
  Entry e;
  e.slot = 4;
  e.ballot = m.ballot;
  e.commands = {Command{1, 1, "put k 1"}, Command{2, 9, std::string(100, 'z')}};
  m.entries.push_back(e);
  Entry noop;
  noop.slot = 5;
  noop.ballot = m.ballot;
  noop.noop = true;
  m.entries.push_back(noop);
  return m;
}

TEST(PaxosMessage, RoundTrip) {
  const Message m = SampleAccept();
  auto d = DecodeMessage(EncodeMessage(m), 1 << 20);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->type, m.type);
  EXPECT_EQ(d->ballot, m.ballot);
  EXPECT_EQ(d->commit, 3u);
  ASSERT_EQ(d->entries.size(), 2u);
  EXPECT_EQ(d->entries[0].commands, m.entries[0].commands);
  EXPECT_TRUE(d->entries[1].noop);
}

TEST(PaxosMessage, EveryTruncationIsRejectedAndCounted) {
  testing::Group g(3);
  const std::string bytes = EncodeMessage(SampleAccept());
  uint64_t rejected = 0;
  size_t padding = 0;
  for (size_t len = 0; len < bytes.size(); ++len) {
    const std::string_view prefix(bytes.data(), len);
    if (DecodeMessage(prefix, 1 << 20).ok()) {
      // Only trailing alignment padding may be cut without losing content.
      ++padding;
      EXPECT_GT(len, bytes.size() - 8) << "prefix of " << len << " bytes accepted";
      continue;
    }
    EXPECT_FALSE(g.at(1).Step(prefix, g.now()).ok());
    ++rejected;
  }
  EXPECT_LT(padding, 8u);
  EXPECT_EQ(g.at(1).stats().malformed, rejected);
  EXPECT_EQ(g.at(1).commit_index(), 0u);
  EXPECT_EQ(g.at(1).LogEntry(4), nullptr);
  // The intact message is accepted.
  EXPECT_TRUE(g.at(1).Step(bytes, g.now()).ok());
  EXPECT_NE(g.at(1).LogEntry(4), nullptr);
}

TEST(PaxosMessage, GarbageAndBitFlipsNeverCrash) {
  testing::Group g(3);
  std::mt19937_64 rng(42);
  const std::string good = EncodeMessage(SampleAccept());
  int rejected = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) b[rng() % b.size()] ^= static_cast<char>(1 + rng() % 255);
    if (!g.at(1).Step(b, g.now()).ok()) ++rejected;
    g.Pump(1);
  }
  for (int i = 0; i < 500; ++i) {
    std::string b(rng() % 300, '\0');
    for (auto& c : b) c = static_cast<char>(rng());
    EXPECT_FALSE(g.at(1).Step(b, g.now()).ok());
    ++rejected;
  }
  const auto& st = g.at(1).stats();
  EXPECT_EQ(st.malformed + st.misaddressed, static_cast<uint64_t>(rejected));
  EXPECT_GT(st.malformed, 500u);
}

TEST(PaxosMessage, OversizedMisaddressedAndUnknownTypeRejected) {
  Config c;
  c.message_bytes_max = 4096;
  c.batch_bytes_max = 1024;
  c.batch_commands_max = 16;
  testing::Group g(3, c);
  Message big = SampleAccept();
  big.entries[0].commands[0].payload.assign(5000, 'a');
  EXPECT_EQ(g.at(1).Step(EncodeMessage(big), g.now()).code(), Code::kCorruption);
  EXPECT_EQ(g.at(1).stats().malformed, 1u);

  Message wrong = SampleAccept();
  wrong.entries.clear();
  wrong.to = 2;  // delivered to 1
  EXPECT_EQ(g.at(1).Step(EncodeMessage(wrong), g.now()).code(), Code::kInvalidArgument);
  wrong.to = 1;
  wrong.from = 64;  // no such replica id
  EXPECT_EQ(g.at(1).Step(EncodeMessage(wrong), g.now()).code(), Code::kInvalidArgument);
  EXPECT_EQ(g.at(1).stats().misaddressed, 2u);

  flatbuffers::FlatBufferBuilder fbb;
  wire::paxos::MessageBuilder mb(fbb);
  mb.add_type(static_cast<wire::paxos::Type>(200));
  mb.add_from(0);
  mb.add_to(1);
  fbb.Finish(mb.Finish());
  std::string unknown(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  EXPECT_EQ(g.at(1).Step(unknown, g.now()).code(), Code::kCorruption);
  EXPECT_EQ(g.at(1).stats().malformed, 2u);
}

TEST(PaxosMessage, SlotZeroAndNoopWithCommandsRejected) {
  Message m = SampleAccept();
  m.entries[0].slot = 0;
  EXPECT_FALSE(DecodeMessage(EncodeMessage(m), 1 << 20).ok());
  m = SampleAccept();
  m.entries[1].commands.push_back(Command{1, 2, "p"});
  EXPECT_FALSE(DecodeMessage(EncodeMessage(m), 1 << 20).ok());
}

// kMessageOverheadBytes is what Replica::CommandBytesMax and the chunk size rely on: a
// command of CommandBytesMax bytes, alone in its entry, fits in every message that carries
// entries (Accept, CatchUp, Promise with every field set), and so does a full chunk.
TEST(PaxosMessage, OneCommandOfCommandBytesMaxFitsInEveryMessage) {
  for (const size_t limit : {size_t{4096}, size_t{256} << 10, size_t{4} << 20}) {
    Config c;
    c.message_bytes_max = limit;
    const size_t payload = Replica::CommandBytesMax(c);
    Entry e;
    e.slot = ~uint64_t{0};
    e.ballot = Ballot{~uint64_t{0}, 63};
    e.chosen = true;
    e.commands = {Command{~uint64_t{0}, ~uint64_t{0}, std::string(payload, 'p')}};
    for (const MessageType t : {MessageType::kAccept, MessageType::kCatchUp,
                                MessageType::kPromise}) {
      Message m;
      m.type = t;
      m.from = 63;
      m.to = 62;
      m.ballot = e.ballot;
      m.commit = m.from_slot = m.last_slot = m.round = ~uint64_t{0};
      m.complete = true;
      m.promised = m.waiver = e.ballot;
      m.compacted_index = ~uint64_t{0};
      m.entries = {e};
      const std::string bytes = EncodeMessage(m);
      EXPECT_LE(bytes.size(), limit) << "type " << static_cast<int>(t) << " limit " << limit;
      auto d = DecodeMessage(bytes, limit);
      ASSERT_TRUE(d.ok()) << d.status().ToString();
      EXPECT_EQ(d->entries[0].commands[0].payload.size(), payload);
    }
    Message chunk;
    chunk.type = MessageType::kInstallSnapshot;
    chunk.from = 63;
    chunk.to = 62;
    chunk.ballot = e.ballot;
    chunk.commit = ~uint64_t{0};
    chunk.chunk = SnapshotChunk{~uint64_t{0}, 1, kSnapshotBytesMax, ~uint64_t{0},
                                std::string(payload, 'c')};
    const std::string bytes = EncodeMessage(chunk);
    EXPECT_LE(bytes.size(), limit);
    auto d = DecodeMessage(bytes, limit);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ASSERT_TRUE(d->chunk.has_value());
    EXPECT_EQ(d->chunk->bytes.size(), payload);
    EXPECT_EQ(d->chunk->offset, 1u);
  }
}

TEST(PaxosMessage, SnapshotChunkOutOfBoundsRejected) {
  Message m;
  m.type = MessageType::kInstallSnapshot;
  m.to = 1;
  m.chunk = SnapshotChunk{5, 10, 12, 99, "abc"};  // 10 + 3 > 12
  EXPECT_EQ(DecodeMessage(EncodeMessage(m), 1 << 20).status().code(), Code::kCorruption);
  m.chunk = SnapshotChunk{5, 9, 12, 99, "abc"};
  EXPECT_TRUE(DecodeMessage(EncodeMessage(m), 1 << 20).ok());
  m.chunk = SnapshotChunk{5, 0, 12, 99, ""};  // an InstallSnapshot without bytes
  EXPECT_EQ(DecodeMessage(EncodeMessage(m), 1 << 20).status().code(), Code::kCorruption);
  m.type = MessageType::kSnapshotAck;  // an ack carries none
  EXPECT_TRUE(DecodeMessage(EncodeMessage(m), 1 << 20).ok());
  m.chunk.reset();
  EXPECT_EQ(DecodeMessage(EncodeMessage(m), 1 << 20).status().code(), Code::kCorruption);
}

// Membership on the wire: an entry's epoch and change, a snapshot's membership.
TEST(PaxosMessage, MembershipRoundTrip) {
  Message m = SampleAccept();
  m.entries[0].epoch = 3;
  m.entries[1].epoch = 3;
  Entry change;
  change.slot = 6;
  change.ballot = m.ballot;
  change.epoch = 3;
  change.members = Membership{4, (uint64_t{1} << 63) | 0b1011, uint64_t{1} << 2};
  m.entries.push_back(change);
  auto d = DecodeMessage(EncodeMessage(m), 1 << 20);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->entries.size(), 3u);
  EXPECT_EQ(d->entries[0].epoch, 3u);
  EXPECT_FALSE(d->entries[0].members.has_value());
  EXPECT_EQ(d->entries[1].epoch, 3u);
  EXPECT_FALSE(d->entries[1].members.has_value());
  EXPECT_EQ(d->entries[2].epoch, 3u);
  ASSERT_TRUE(d->entries[2].members.has_value());
  EXPECT_EQ(*d->entries[2].members, *change.members);
  EXPECT_TRUE(d->entries[2].SameValue(change));
  EXPECT_FALSE(d->entries[2].noop);
  EXPECT_TRUE(d->entries[2].commands.empty());

  Message snap;
  snap.type = MessageType::kInstallSnapshot;
  snap.from = 0;
  snap.to = 1;
  snap.snapshot = Snapshot{42, "state", {{7, 1}, {3, 9}}, Membership{2, 0b0111, 0b1000}};
  d = DecodeMessage(EncodeMessage(snap), 1 << 20);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_TRUE(d->snapshot.has_value());
  EXPECT_EQ(*d->snapshot, *snap.snapshot);
  // A snapshot without a membership (taken before membership changes existed) stays so:
  // the group's genesis membership.
  snap.snapshot->members = Membership{};
  d = DecodeMessage(EncodeMessage(snap), 1 << 20);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->snapshot->members, Membership{});
}

// An Accept whose one entry carries `members`, built with the generated API (the encoder
// writes whatever it is given, but these shapes must not get past the decoder).
std::string RawChangeAccept(uint64_t voters, uint64_t learners, bool noop, bool command) {
  flatbuffers::FlatBufferBuilder fbb;
  const auto members = wire::paxos::CreateMembers(fbb, 1, voters, learners);
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::paxos::Command>>> cmds;
  if (command) {
    const std::vector<flatbuffers::Offset<wire::paxos::Command>> c = {
        wire::paxos::CreateCommand(fbb, 1, 1)};
    cmds = fbb.CreateVector(c);
  }
  const wire::paxos::Ballot ballot(7, 0);
  const std::vector<flatbuffers::Offset<wire::paxos::Entry>> es = {
      wire::paxos::CreateEntry(fbb, 4, &ballot, noop, false, cmds, 0, members)};
  const auto entries = fbb.CreateVector(es);
  wire::paxos::MessageBuilder mb(fbb);
  mb.add_type(wire::paxos::Type::Accept);
  mb.add_from(0);
  mb.add_to(1);
  mb.add_ballot(&ballot);
  mb.add_entries(entries);
  fbb.Finish(mb.Finish());
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

// A whole snapshot (as storage keeps it) with the given membership.
std::string RawSnapshot(uint64_t voters, uint64_t learners) {
  flatbuffers::FlatBufferBuilder fbb;
  const auto members = wire::paxos::CreateMembers(fbb, 1, voters, learners);
  const auto data = fbb.CreateString("state");
  wire::paxos::MessageBuilder mb(fbb);
  mb.add_type(wire::paxos::Type::InstallSnapshot);
  mb.add_from(0);
  mb.add_to(1);
  mb.add_snapshot_index(5);
  mb.add_snapshot_data(flatbuffers::Offset<flatbuffers::Vector<uint8_t>>(data.o));
  mb.add_snapshot_members(members);
  fbb.Finish(mb.Finish());
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

TEST(PaxosMessage, BadMembershipRejected) {
  // The shapes are well-formed: the good ones decode.
  ASSERT_TRUE(DecodeMessage(RawChangeAccept(0b0111, 0b1000, false, false), 1 << 20).ok());
  ASSERT_TRUE(DecodeMessage(RawSnapshot(0b0111, 0b1000), 1 << 20).ok());
  ASSERT_TRUE(DecodeMessage(RawSnapshot(uint64_t{1} << 63, 0), 1 << 20).ok());
  struct Bad {
    const char* what;
    std::string bytes;
  };
  const std::vector<Bad> bad = {
      {"change without voters", RawChangeAccept(0, 0b1000, false, false)},
      {"change with a voting learner", RawChangeAccept(0b0111, 0b0100, false, false)},
      {"change that is also a no-op", RawChangeAccept(0b0111, 0, true, false)},
      {"change that carries a command", RawChangeAccept(0b0111, 0, false, true)},
      {"snapshot without voters", RawSnapshot(0, 0b1000)},
      {"snapshot with a voting learner", RawSnapshot(0b0111, 0b0001)},
  };
  testing::Group g(3);
  uint64_t rejected = 0;
  for (const Bad& b : bad) {
    EXPECT_EQ(DecodeMessage(b.bytes, 1 << 20).status().code(), Code::kCorruption) << b.what;
    EXPECT_EQ(g.at(1).Step(b.bytes, g.now()).code(), Code::kCorruption) << b.what;
    ++rejected;
  }
  EXPECT_EQ(g.at(1).stats().malformed, rejected);
  EXPECT_EQ(g.at(1).LogEntry(4), nullptr);
  EXPECT_EQ(g.at(1).snapshot_index(), 0u);
  EXPECT_EQ(g.at(1).members(), Membership::Initial(3));
  // The encoder writes a Members of the entry as given: the same shapes, encoded, are
  // rejected too.
  Message m = SampleAccept();
  m.entries.resize(1);
  m.entries[0].commands.clear();
  m.entries[0].members = Membership{1, 0, 0b1000};
  EXPECT_EQ(DecodeMessage(EncodeMessage(m), 1 << 20).status().code(), Code::kCorruption);
  m.entries[0].members = Membership{1, 0b11, 0b10};
  EXPECT_EQ(DecodeMessage(EncodeMessage(m), 1 << 20).status().code(), Code::kCorruption);
  m.entries[0].members = Membership{1, 0b11, 0};
  m.entries[0].noop = true;
  EXPECT_EQ(DecodeMessage(EncodeMessage(m), 1 << 20).status().code(), Code::kCorruption);
  m.entries[0].noop = false;
  m.entries[0].commands = {Command{1, 1, "p"}};
  EXPECT_EQ(DecodeMessage(EncodeMessage(m), 1 << 20).status().code(), Code::kCorruption);
  m.entries[0].commands.clear();
  EXPECT_TRUE(DecodeMessage(EncodeMessage(m), 1 << 20).ok());
}

}  // namespace
}  // namespace geokv::paxos
