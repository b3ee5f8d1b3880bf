// PaxosStore: one replica's Paxos storage kept the way the engine keeps it, for the Paxos
// unit tests, the Paxos simulator and the Paxos benchmark: the production PaxosLog
// (core/engine/paxos_log.h) over a storage::MemoryStorage. A Ready is persisted as
// Engine::Process persists it: snapshot first, then hard state and entries, in one
// WriteBatch, written with kSync when the Ready says must_sync (and kNone otherwise). So the
// log encoding, the truncation by a snapshot and the recovery these runs exercise are the
// code that runs in production; only the disk is in memory (MemoryStorage's crash model).
//
// The durable view (DurableHardState, DurableEntry, DurableSnapshotIndex) decodes what a
// crash now would keep, with PaxosLog's own decoding, so that the simulator can check
// persist-before-send on every message.
//
// Ownership: owns its MemoryStorage; a Replica opened from log() must not outlive it.
// Neither copyable nor movable (the logs point into it). Thread-safety: none; one thread.
#ifndef GEOKV_CORE_SIM_PAXOS_STORE_H_
#define GEOKV_CORE_SIM_PAXOS_STORE_H_

#include <cstddef>
#include <cstdint>
#include <optional>

#include "base/status.h"
#include "core/engine/memory_storage.h"
#include "core/engine/paxos_log.h"
#include "replication/paxos/replica.h"

namespace geokv::sim {

class PaxosStore {
 public:
  // `group` is the Paxos group id the records are keyed by (one group per store here).
  explicit PaxosStore(uint32_t group = 0);
  PaxosStore(const PaxosStore&) = delete;
  PaxosStore& operator=(const PaxosStore&) = delete;

  // What a Replica opens from (Replica::Open reads it once): the current contents, which
  // after Crash() are what survived.
  const paxos::Storage& log() const { return log_; }

  // Persists `rd` (step 1 of the Ready contract) as the engine does; nothing is written for
  // a Ready with nothing to persist. Errors: those of storage::MemoryStorage::Write and of
  // PaxosLog.
  Status Persist(const paxos::Ready& rd);
  // Makes every earlier write durable, as the fsync of a later round would.
  Status Sync();
  // Power loss and restart: every write not yet synced is lost except the first
  // `keep_volatile` of them (storage::MemoryStorage::Crash).
  void Crash(size_t keep_volatile = 0);

  // What a crash now would keep, decoded by PaxosLog.
  StatusOr<paxos::HardState> DurableHardState() const { return durable_log_.LoadHardState(); }
  // The durable entry of `slot`, or nullopt.
  StatusOr<std::optional<paxos::Entry>> DurableEntry(uint64_t slot) const {
    return durable_log_.LoadEntry(slot);
  }
  // The index of the durable snapshot (0: none).
  StatusOr<uint64_t> DurableSnapshotIndex() const;

  // The storage underneath (its crash model, volatile_writes(), Durable()).
  storage::MemoryStorage& memory() { return memory_; }

 private:
  storage::MemoryStorage memory_;
  storage::WriteBatch batch_;     // one Ready's records; cleared before each
  bool sync_needed_ = false;      // set by PaxosLog::Sync (unused: must_sync decides)
  PaxosLog log_;                  // over memory_ (what the replica reads and writes)
  storage::WriteBatch no_batch_;  // the durable log is only read
  bool no_sync_ = false;
  PaxosLog durable_log_;          // over memory_.Durable()
};

}  // namespace geokv::sim

#endif  // GEOKV_CORE_SIM_PAXOS_STORE_H_
