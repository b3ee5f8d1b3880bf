#include "replication/paxos/memory_storage.h"

namespace geokv::paxos {

StatusOr<std::vector<Entry>> MemoryStorage::LoadEntries() const {
  std::vector<Entry> out;
  out.reserve(durable_log_.size());
  for (const auto& [slot, e] : durable_log_) out.push_back(e);
  return out;
}

Status MemoryStorage::Save(const HardState* hs, const std::vector<Entry>& entries) {
  Write w;
  if (hs != nullptr) w.hs = *hs;
  w.entries = entries;
  pending_.push_back(std::move(w));
  return Status::Ok();
}

Status MemoryStorage::SaveSnapshot(const Snapshot& snapshot) {
  Write w;
  w.snapshot = snapshot;
  pending_.push_back(std::move(w));
  return Status::Ok();
}

Status MemoryStorage::Sync() {
  for (auto& w : pending_) {
    if (w.snapshot) {
      if (!durable_snapshot_ || durable_snapshot_->index < w.snapshot->index) {
        durable_log_.erase(durable_log_.begin(), durable_log_.upper_bound(w.snapshot->index));
        durable_snapshot_ = std::move(w.snapshot);
      }
    }
    if (w.hs) durable_hs_ = *w.hs;
    for (auto& e : w.entries) {
      if (e.slot > durable_snapshot_index()) durable_log_[e.slot] = std::move(e);
    }
  }
  pending_.clear();
  ++syncs_;
  return Status::Ok();
}

void MemoryStorage::Crash() { pending_.clear(); }

const Entry* MemoryStorage::DurableEntry(uint64_t slot) const {
  auto it = durable_log_.find(slot);
  return it == durable_log_.end() ? nullptr : &it->second;
}

}  // namespace geokv::paxos
