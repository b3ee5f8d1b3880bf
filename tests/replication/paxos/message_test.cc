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

}  // namespace
}  // namespace geokv::paxos
