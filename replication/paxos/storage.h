// Where a replica's acceptor state (HardState) and log live. The Replica reads it once, when
// it is constructed (recovery after a restart); afterwards the application writes what each
// Ready asks it to persist (Save, then Sync when Ready::must_sync) before sending that
// Ready's messages. Keeping writes in the application is the etcd/raft split: the protocol
// decides what must be durable, the runtime decides how (group commit, WiredTiger).
//
// Ownership: the application owns the Storage and must keep it alive while a Replica built
// on it exists. Thread-safety: implementations need not be thread-safe; a Replica and its
// runtime use one thread.
#ifndef GEOKV_REPLICATION_PAXOS_STORAGE_H_
#define GEOKV_REPLICATION_PAXOS_STORAGE_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "base/status.h"
#include "replication/paxos/types.h"

namespace geokv::paxos {

class Storage {
 public:
  virtual ~Storage() = default;

  // What survived: the durable hard state and every durable log entry, in slot order.
  virtual StatusOr<HardState> LoadHardState() const = 0;
  virtual StatusOr<std::vector<Entry>> LoadEntries() const = 0;
  // The durable snapshot, if any (entries up to its index are gone from LoadEntries).
  virtual StatusOr<std::optional<Snapshot>> LoadSnapshot() const = 0;

  // Records `hs` (if non-null) and `entries` (each replaces its slot). Not durable until
  // Sync(); a crash may drop anything written since the last Sync, but never reorders:
  // what survives is a prefix of the writes.
  virtual Status Save(const HardState* hs, const std::vector<Entry>& entries) = 0;
  // Records `snapshot` and drops the entries up to its index, in order with Save (a Ready
  // that carries both is persisted snapshot first). Same durability rule as Save.
  virtual Status SaveSnapshot(const Snapshot& snapshot) = 0;
  virtual Status Sync() = 0;
};

}  // namespace geokv::paxos

#endif  // GEOKV_REPLICATION_PAXOS_STORAGE_H_
