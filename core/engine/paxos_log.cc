#include "core/engine/paxos_log.h"

#include "replication/paxos/message.h"

namespace geokv {

namespace {

constexpr std::string_view kLogTable = "paxos_log";
constexpr std::string_view kStateTable = "paxos_state";
// A log record holds one entry (at most one Paxos message); the snapshot record holds a
// whole shard, which may be as large as a snapshot can be.
constexpr size_t kRecordBytesMax = 64 << 20;
constexpr size_t kSnapshotRecordBytesMax = paxos::kSnapshotBytesMax + paxos::kMessageOverheadBytes;

void AppendBigEndian(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t ReadBigEndian(std::string_view in) {
  uint64_t v = 0;
  for (char c : in) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

}  // namespace

std::string PaxosLog::EntryKey(uint64_t slot) const {
  std::string k;
  AppendBigEndian(k, group_, 4);
  AppendBigEndian(k, slot, 8);  // big-endian: the table's order is slot order
  return k;
}

std::string PaxosLog::StateKey(char what) const {
  std::string k;
  AppendBigEndian(k, group_, 4);
  k.push_back(what);
  return k;
}

StatusOr<paxos::HardState> PaxosLog::LoadHardState() const {
  auto bytes = store_.Get(kStateTable, StateKey('h'));
  if (bytes.status().IsNotFound()) return paxos::HardState{};
  if (!bytes.ok()) return bytes.status();
  auto m = paxos::DecodeMessage(*bytes, kRecordBytesMax);
  if (!m.ok()) return Corruption("paxos hard state of group " + std::to_string(group_) + ": " + m.status().message());
  return paxos::HardState{m->promised, m->commit};
}

StatusOr<std::vector<paxos::Entry>> PaxosLog::LoadEntries() const {
  std::vector<paxos::Entry> out;
  std::string prefix;
  AppendBigEndian(prefix, group_, 4);
  std::string after;
  for (;;) {
    auto page = store_.Scan(kLogTable, prefix, after, 1024);
    if (!page.ok()) return page.status();
    for (const auto& e : *page) {
      auto m = paxos::DecodeMessage(e.value, kRecordBytesMax);
      if (!m.ok() || m->entries.size() != 1 || m->entries[0].slot != ReadBigEndian(e.key.substr(4))) {
        return Corruption("paxos log record of group " + std::to_string(group_) + " is damaged");
      }
      out.push_back(std::move(m->entries[0]));
    }
    if (page->size() < 1024) break;
    after = page->back().key;
  }
  return out;
}

StatusOr<std::optional<paxos::Entry>> PaxosLog::LoadEntry(uint64_t slot) const {
  auto bytes = store_.Get(kLogTable, EntryKey(slot));
  if (bytes.status().IsNotFound()) return std::optional<paxos::Entry>();
  if (!bytes.ok()) return bytes.status();
  auto m = paxos::DecodeMessage(*bytes, kRecordBytesMax);
  if (!m.ok() || m->entries.size() != 1 || m->entries[0].slot != slot) {
    return Corruption("paxos log record of group " + std::to_string(group_) + " is damaged");
  }
  return std::optional<paxos::Entry>(std::move(m->entries[0]));
}

StatusOr<std::optional<paxos::Snapshot>> PaxosLog::LoadSnapshot() const {
  auto bytes = store_.Get(kStateTable, StateKey('s'));
  if (bytes.status().IsNotFound()) return std::optional<paxos::Snapshot>();
  if (!bytes.ok()) return bytes.status();
  auto m = paxos::DecodeMessage(*bytes, kSnapshotRecordBytesMax);
  if (!m.ok() || !m->snapshot) return Corruption("paxos snapshot of group " + std::to_string(group_) + " is damaged");
  return std::optional<paxos::Snapshot>(std::move(*m->snapshot));
}

Status PaxosLog::Save(const paxos::HardState* hs, const std::vector<paxos::Entry>& entries) {
  if (hs != nullptr) {
    paxos::Message m;
    m.promised = hs->promised;
    m.commit = hs->commit;
    batch_->Put(kStateTable, StateKey('h'), paxos::EncodeMessage(m));
  }
  for (const auto& e : entries) {
    paxos::Message m;
    m.type = paxos::MessageType::kAccept;
    m.entries.push_back(e);
    batch_->Put(kLogTable, EntryKey(e.slot), paxos::EncodeMessage(m));
  }
  return Status::Ok();
}

Status PaxosLog::SaveSnapshot(const paxos::Snapshot& snapshot) {
  paxos::Message m;
  m.type = paxos::MessageType::kInstallSnapshot;
  m.snapshot = snapshot;
  batch_->Put(kStateTable, StateKey('s'), paxos::EncodeMessage(m));
  // Drop the log up to the snapshot: what is durable, and what this round already queued.
  std::string prefix;
  AppendBigEndian(prefix, group_, 4);
  std::string after;
  for (;;) {
    auto page = store_.Scan(kLogTable, prefix, after, 1024);
    if (!page.ok()) return page.status();
    bool past = false;
    for (const auto& e : *page) {
      if (ReadBigEndian(e.key.substr(4)) > snapshot.index) { past = true; break; }
      batch_->Delete(kLogTable, e.key);
    }
    if (past || page->size() < 1024) break;
    after = page->back().key;
  }
  return Status::Ok();
}

Status PaxosLog::Erase(storage::WriteBatch* out) const {
  std::string prefix;
  AppendBigEndian(prefix, group_, 4);
  std::string after;
  for (;;) {
    auto rows = store_.Scan(kLogTable, prefix, after, 1024);
    if (!rows.ok()) return rows.status();
    for (const auto& row : *rows) out->Delete(kLogTable, row.key);
    if (rows->size() < 1024) break;
    after = rows->back().key;
  }
  out->Delete(kStateTable, StateKey('h'));
  out->Delete(kStateTable, StateKey('s'));
  return Status::Ok();
}

Status PaxosLog::Sync() {
  *sync_needed_ = true;
  return Status::Ok();
}

}  // namespace geokv
