// CrdtStore: where a node's eventual-mode state lives in its Storage — every key's CRDT
// state, the retained delta log, the unsealed deltas and the dissemination progress — and
// how a Disseminator's Ready is turned into writes (into the engine's round batch, like
// PaxosLog, so one fsync covers both protocols).
//
// Ownership: borrows the Storage. Thread-safety: none; the engine's event loop uses it.
#ifndef GEOKV_CORE_ENGINE_CRDT_STORE_H_
#define GEOKV_CORE_ENGINE_CRDT_STORE_H_

#include <cstdint>

#include "core/engine/storage.h"
#include "replication/crdt/disseminator.h"

namespace geokv {

class CrdtStore {
 public:
  explicit CrdtStore(storage::Storage& store) : store_(store) {}

  // Reads what survived (recovery). kCorruption when a log, open-batch or progress record
  // fails to decode. Key states are returned as stored, whatever their size: the
  // Disseminator decodes them under its limits, which accept every state joins produce,
  // and reports one that does not decode through open_status() (never dropped).
  StatusOr<crdt::DurableImage> Load();
  // Adds the persistence part of `ready` to `batch`.
  void Persist(const crdt::Ready& ready, storage::WriteBatch* batch);

 private:
  storage::Storage& store_;
  uint64_t log_first_seq_ = 1;  // lowest delta-log batch that may still be stored
};

}  // namespace geokv

#endif  // GEOKV_CORE_ENGINE_CRDT_STORE_H_
