#include "core/sim/paxos_store.h"

namespace geokv::sim {

PaxosStore::PaxosStore(uint32_t group)
    : log_(memory_, group, &batch_, &sync_needed_),
      durable_log_(memory_.Durable(), group, &no_batch_, &no_sync_) {}

Status PaxosStore::Persist(const paxos::Ready& rd) {
  batch_.Clear();
  sync_needed_ = false;
  if (rd.snapshot) {
    Status s = log_.SaveSnapshot(*rd.snapshot);
    if (!s.ok()) return s;
  }
  Status s = log_.Save(rd.hard_state ? &*rd.hard_state : nullptr, rd.entries);
  if (!s.ok()) return s;
  // As the engine: a requested sync happens even with nothing new to write (it covers what
  // earlier Readies wrote unsynced, e.g. a snapshot an Accepted now relies on).
  if (batch_.empty() && !rd.must_sync) return Status::Ok();
  const auto durability = rd.must_sync ? storage::Durability::kSync : storage::Durability::kNone;
  s = memory_.Write(batch_, durability);
  batch_.Clear();
  return s;
}

Status PaxosStore::Sync() { return memory_.Write(storage::WriteBatch(), storage::Durability::kSync); }

void PaxosStore::Crash(size_t keep_volatile) { memory_.Crash(keep_volatile); }

StatusOr<uint64_t> PaxosStore::DurableSnapshotIndex() const {
  auto snapshot = durable_log_.LoadSnapshot();
  if (!snapshot.ok()) return snapshot.status();
  return *snapshot ? (*snapshot)->index : uint64_t{0};
}

}  // namespace geokv::sim
