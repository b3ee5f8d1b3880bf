#include "replication/paxos/message.h"

#include <flatbuffers/flatbuffers.h>

#include <vector>

#include "replication/wire/paxos_generated.h"

namespace geokv::paxos {
namespace fb = ::geokv::wire::paxos;

namespace {

fb::Ballot ToWire(const Ballot& b) { return fb::Ballot(b.round, b.node); }
Ballot FromWire(const fb::Ballot* b) {
  if (b == nullptr) return Ballot{};
  return Ballot{b->round(), b->node()};
}

flatbuffers::Offset<fb::Members> EncodeMembers(flatbuffers::FlatBufferBuilder& fbb,
                                              const Membership& m) {
  return fb::CreateMembers(fbb, m.epoch, m.voters, m.learners);
}

StatusOr<Membership> DecodeMembers(const fb::Members* w) {
  Membership m{w->epoch(), w->voters(), w->learners()};
  if (m.voters == 0 || (m.voters & m.learners) != 0) {
    return Corruption("paxos message: membership without voters or with a voting learner");
  }
  return m;
}

flatbuffers::Offset<fb::Entry> EncodeEntry(flatbuffers::FlatBufferBuilder& fbb, const Entry& e) {
  std::vector<flatbuffers::Offset<fb::Command>> cmds;
  cmds.reserve(e.commands.size());
  for (const auto& c : e.commands) {
    auto payload = fbb.CreateVector(reinterpret_cast<const uint8_t*>(c.payload.data()),
                                    c.payload.size());
    cmds.push_back(fb::CreateCommand(fbb, c.client_id, c.seq, payload));
  }
  auto vec = fbb.CreateVector(cmds);
  flatbuffers::Offset<fb::Members> members;
  if (e.members) members = EncodeMembers(fbb, *e.members);
  const fb::Ballot b = ToWire(e.ballot);
  return fb::CreateEntry(fbb, e.slot, &b, e.noop, e.chosen, vec, e.epoch, members);
}

}  // namespace

uint64_t HashBytes(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string EncodeMessage(const Message& m) {
  flatbuffers::FlatBufferBuilder fbb(256);
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Entry>>> entries;
  if (!m.entries.empty()) {
    std::vector<flatbuffers::Offset<fb::Entry>> es;
    es.reserve(m.entries.size());
    for (const auto& e : m.entries) es.push_back(EncodeEntry(fbb, e));
    entries = fbb.CreateVector(es);
  }
  flatbuffers::Offset<flatbuffers::Vector<uint64_t>> slots;
  if (!m.slots.empty()) slots = fbb.CreateVector(m.slots);
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> snap_data;
  flatbuffers::Offset<flatbuffers::Vector<const fb::Session*>> sessions;
  flatbuffers::Offset<fb::Members> snap_members;
  if (m.snapshot && m.snapshot->members.voters != 0) {
    snap_members = EncodeMembers(fbb, m.snapshot->members);
  }
  if (m.snapshot) {
    snap_data = fbb.CreateVector(reinterpret_cast<const uint8_t*>(m.snapshot->data.data()),
                                 m.snapshot->data.size());
    std::vector<fb::Session> ss;
    ss.reserve(m.snapshot->sessions.size());
    for (const auto& [client, seq] : m.snapshot->sessions) ss.emplace_back(client, seq);
    sessions = fbb.CreateVectorOfStructs(ss);
  }
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> chunk_data;
  if (m.chunk && !m.chunk->bytes.empty()) {
    chunk_data = fbb.CreateVector(reinterpret_cast<const uint8_t*>(m.chunk->bytes.data()),
                                  m.chunk->bytes.size());
  }
  const fb::Ballot ballot = ToWire(m.ballot);
  const fb::Ballot promised = ToWire(m.promised);
  const fb::Ballot waiver = ToWire(m.waiver);
  fb::MessageBuilder b(fbb);
  b.add_type(static_cast<fb::Type>(m.type));
  b.add_from(m.from);
  b.add_to(m.to);
  b.add_ballot(&ballot);
  b.add_commit(m.commit);
  b.add_from_slot(m.from_slot);
  b.add_last_slot(m.last_slot);
  b.add_complete(m.complete);
  b.add_round(m.round);
  if (!m.promised.IsZero()) b.add_promised(&promised);
  if (!m.waiver.IsZero()) b.add_waiver(&waiver);
  if (!m.entries.empty()) b.add_entries(entries);
  if (!m.slots.empty()) b.add_slots(slots);
  if (m.snapshot) {
    b.add_snapshot_index(m.snapshot->index);
    b.add_snapshot_data(snap_data);
    b.add_sessions(sessions);
    if (m.snapshot->members.voters != 0) b.add_snapshot_members(snap_members);
  }
  if (m.chunk) {
    b.add_chunk_index(m.chunk->index);
    b.add_chunk_offset(m.chunk->offset);
    b.add_chunk_total(m.chunk->total_bytes);
    b.add_chunk_hash(m.chunk->hash);
    if (!m.chunk->bytes.empty()) b.add_chunk_data(chunk_data);
  }
  if (m.compacted_index > 0) b.add_compacted_index(m.compacted_index);
  if (m.granted) b.add_granted(true);
  fbb.Finish(b.Finish());
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

StatusOr<Message> DecodeMessage(std::string_view bytes, size_t message_bytes_max) {
  if (bytes.empty()) return Corruption("paxos message: empty");
  if (bytes.size() > message_bytes_max) return Corruption("paxos message: too large");
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  // Depth 8 and a table bound sized to the per-message limits: a buffer cannot make the
  // verifier walk more than what a legal message contains.
  flatbuffers::Verifier verifier(data, bytes.size(), /*max_depth=*/8,
                                 /*max_tables=*/1000000);
  if (!fb::VerifyMessageBuffer(verifier)) return Corruption("paxos message: verifier failed");
  const fb::Message* w = fb::GetMessage(data);
  const auto type = static_cast<uint8_t>(w->type());
  if (type >= kMessageTypeCount) return Corruption("paxos message: unknown type");
  Message m;
  m.type = static_cast<MessageType>(type);
  m.from = w->from();
  m.to = w->to();
  m.ballot = FromWire(w->ballot());
  m.commit = w->commit();
  m.from_slot = w->from_slot();
  m.last_slot = w->last_slot();
  m.complete = w->complete();
  m.round = w->round();
  m.promised = FromWire(w->promised());
  m.waiver = FromWire(w->waiver());
  if (const auto* es = w->entries()) {
    if (es->size() > kEntriesPerMessageMax) return Corruption("paxos message: too many entries");
    m.entries.reserve(es->size());
    for (const fb::Entry* we : *es) {
      Entry e;
      e.slot = we->slot();
      if (e.slot == 0) return Corruption("paxos message: slot 0");
      e.ballot = FromWire(we->ballot());
      e.noop = we->noop();
      e.chosen = we->chosen();
      if (const auto* cs = we->commands()) {
        if (cs->size() > kCommandsPerEntryMax) return Corruption("paxos message: entry too big");
        e.commands.reserve(cs->size());
        for (const fb::Command* wc : *cs) {
          Command c;
          c.client_id = wc->client_id();
          c.seq = wc->seq();
          if (const auto* p = wc->payload()) {
            c.payload.assign(reinterpret_cast<const char*>(p->data()), p->size());
          }
          e.commands.push_back(std::move(c));
        }
      }
      if (e.noop && !e.commands.empty()) return Corruption("paxos message: no-op with commands");
      e.epoch = we->epoch();
      if (const auto* wm = we->members()) {
        auto members = DecodeMembers(wm);
        if (!members.ok()) return members.status();
        if (e.noop || !e.commands.empty()) {
          return Corruption("paxos message: membership change shares its slot");
        }
        e.members = *members;
      }
      m.entries.push_back(std::move(e));
    }
  }
  if (const auto* ss = w->slots()) {
    if (ss->size() > kSlotsPerMessageMax) return Corruption("paxos message: too many slots");
    m.slots.assign(ss->begin(), ss->end());
  }
  if (w->snapshot_index() > 0) {
    Snapshot snap;
    snap.index = w->snapshot_index();
    if (const auto* d = w->snapshot_data()) {
      snap.data.assign(reinterpret_cast<const char*>(d->data()), d->size());
    }
    if (const auto* ss = w->sessions()) {
      snap.sessions.reserve(ss->size());
      for (const fb::Session* s : *ss) snap.sessions.emplace_back(s->client_id(), s->seq());
    }
    if (const auto* wm = w->snapshot_members()) {
      auto members = DecodeMembers(wm);
      if (!members.ok()) return members.status();
      snap.members = *members;
    }
    m.snapshot = std::move(snap);
  }
  if (w->chunk_index() > 0) {
    SnapshotChunk c;
    c.index = w->chunk_index();
    c.offset = w->chunk_offset();
    c.total_bytes = w->chunk_total();
    c.hash = w->chunk_hash();
    if (const auto* d = w->chunk_data()) {
      c.bytes.assign(reinterpret_cast<const char*>(d->data()), d->size());
    }
    if (c.total_bytes == 0 || c.total_bytes > kSnapshotBytesMax || c.offset > c.total_bytes ||
        c.bytes.size() > c.total_bytes - c.offset) {
      return Corruption("paxos message: snapshot chunk out of bounds");
    }
    if (m.type == MessageType::kInstallSnapshot && c.bytes.empty()) {
      return Corruption("paxos message: empty snapshot chunk");
    }
    m.chunk = std::move(c);
  }
  if (m.type == MessageType::kInstallSnapshot && !m.snapshot && !m.chunk) {
    return Corruption("paxos message: snapshot without index");
  }
  if (m.type == MessageType::kSnapshotAck && !m.chunk) {
    return Corruption("paxos message: snapshot ack without chunk");
  }
  m.compacted_index = w->compacted_index();
  m.granted = w->granted();
  return m;
}

}  // namespace geokv::paxos
