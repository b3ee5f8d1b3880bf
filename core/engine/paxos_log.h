// PaxosLog: the acceptor state and log of one Paxos group, kept in the node's Storage.
//
// Writes do not go to the Storage directly: Save and SaveSnapshot add to a WriteBatch the
// engine owns, and Sync marks it as needing an fsync. The engine writes that batch once per
// round of its event loop, covering every group's Ready (group commit: one fsync for all
// of them), before it sends any message of that round (persist before send).
//
// Records are encoded with the Paxos message codec (replication/paxos/message.h), so what
// is read back at recovery passes the same verification as what arrives from the network.
//
// Ownership: borrows the Storage, the batch and the flag; they must outlive it.
// Thread-safety: none; the engine's event loop uses it.
#ifndef GEOKV_CORE_ENGINE_PAXOS_LOG_H_
#define GEOKV_CORE_ENGINE_PAXOS_LOG_H_

#include <cstdint>
#include <string>

#include "core/engine/storage.h"
#include "replication/paxos/storage.h"

namespace geokv {

class PaxosLog final : public paxos::Storage {
 public:
  PaxosLog(storage::Storage& store, uint32_t group, storage::WriteBatch* batch, bool* sync_needed)
      : store_(store), group_(group), batch_(batch), sync_needed_(sync_needed) {}

  StatusOr<paxos::HardState> LoadHardState() const override;
  StatusOr<std::vector<paxos::Entry>> LoadEntries() const override;
  StatusOr<std::optional<paxos::Snapshot>> LoadSnapshot() const override;
  // The stored entry of one slot (nullopt if there is none): one read, where LoadEntries
  // reads the whole log (the simulator checks a slot per message it sends).
  StatusOr<std::optional<paxos::Entry>> LoadEntry(uint64_t slot) const;
  Status Save(const paxos::HardState* hs, const std::vector<paxos::Entry>& entries) override;
  Status SaveSnapshot(const paxos::Snapshot& snapshot) override;
  Status Sync() override;
  // Adds to `out` the deletion of everything this group keeps (its promises, log and
  // snapshot): the node no longer holds a replica of the group.
  Status Erase(storage::WriteBatch* out) const;

 private:
  std::string EntryKey(uint64_t slot) const;
  std::string StateKey(char what) const;

  storage::Storage& store_;
  const uint32_t group_;
  storage::WriteBatch* const batch_;
  bool* const sync_needed_;
};

}  // namespace geokv

#endif  // GEOKV_CORE_ENGINE_PAXOS_LOG_H_
