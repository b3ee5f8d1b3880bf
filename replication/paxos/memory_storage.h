// In-memory Storage that models synced and unsynced writes, for tests and the simulator:
// Crash() throws away everything written since the last Sync(), as a power loss would.
// The durable view is exposed so the simulator can assert persist-before-send.
//
// Ownership: owns its contents. Thread-safety: none (one simulation thread).
#ifndef GEOKV_REPLICATION_PAXOS_MEMORY_STORAGE_H_
#define GEOKV_REPLICATION_PAXOS_MEMORY_STORAGE_H_

#include <map>
#include <optional>
#include <vector>

#include "replication/paxos/storage.h"

namespace geokv::paxos {

class MemoryStorage : public Storage {
 public:
  StatusOr<HardState> LoadHardState() const override { return durable_hs_; }
  StatusOr<std::vector<Entry>> LoadEntries() const override;
  StatusOr<std::optional<Snapshot>> LoadSnapshot() const override { return durable_snapshot_; }
  Status Save(const HardState* hs, const std::vector<Entry>& entries) override;
  Status SaveSnapshot(const Snapshot& snapshot) override;
  Status Sync() override;

  // Simulated power loss: unsynced writes are gone.
  void Crash();

  const HardState& durable_hard_state() const { return durable_hs_; }
  // The durable entry of `slot`, or nullptr.
  const Entry* DurableEntry(uint64_t slot) const;
  uint64_t durable_snapshot_index() const {
    return durable_snapshot_ ? durable_snapshot_->index : 0;
  }
  size_t durable_entries() const { return durable_log_.size(); }
  size_t unsynced_writes() const { return pending_.size(); }
  uint64_t syncs() const { return syncs_; }

 private:
  struct Write {
    std::optional<HardState> hs;
    std::vector<Entry> entries;
    std::optional<Snapshot> snapshot;
  };
  HardState durable_hs_;
  std::optional<Snapshot> durable_snapshot_;
  std::map<uint64_t, Entry> durable_log_;
  std::vector<Write> pending_;  // in write order; Sync applies them all
  uint64_t syncs_ = 0;
};

}  // namespace geokv::paxos

#endif  // GEOKV_REPLICATION_PAXOS_MEMORY_STORAGE_H_
