// CrdtStore: where one CRDT replica of a node (the eventual keys of one shard, under one
// replica id) lives in its Storage — every key's CRDT state, the retained delta log, the
// unsealed deltas and the dissemination progress, each row under the replica's prefix — and
// how a Disseminator's Ready is turned into writes (into the engine's round batch, like
// PaxosLog, so one fsync covers both protocols).
//
// Ownership: borrows the Storage. Thread-safety: none; the engine's event loop uses it.
#ifndef GEOKV_CORE_ENGINE_CRDT_STORE_H_
#define GEOKV_CORE_ENGINE_CRDT_STORE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/engine/storage.h"
#include "replication/crdt/disseminator.h"

namespace geokv {

class CrdtStore {
 public:
  // The replica `replica_id` of shard `shard`.
  CrdtStore(storage::Storage& store, uint32_t shard, uint32_t replica_id);

  // The (shard, replica id) of every replica with rows in `store`, ascending.
  // kVersion when the store holds eventual keys in the layout of an earlier version (one
  // replica per node, not per shard).
  static StatusOr<std::vector<std::pair<uint32_t, uint32_t>>> List(storage::Storage& store);

  // Reads what survived (recovery). kCorruption when a log, open-batch or progress record
  // fails to decode. Key states are returned as stored, whatever their size: the
  // Disseminator decodes them under its limits, which accept every state joins produce,
  // and reports one that does not decode through open_status() (never dropped).
  StatusOr<crdt::DurableImage> Load();
  // Adds the persistence part of `ready` to `batch`.
  void Persist(const crdt::Ready& ready, storage::WriteBatch* batch);
  // Adds the deletion of every row of this replica to `batch`.
  Status Erase(storage::WriteBatch* batch);

 private:
  storage::Storage& store_;
  const std::string prefix_;  // shard and replica id, 4 bytes big-endian each
  bool listed_ = false;       // the row that lists this replica (List) is written
  uint64_t log_first_seq_ = 1;  // lowest delta-log batch that may still be stored
};

}  // namespace geokv

#endif  // GEOKV_CORE_ENGINE_CRDT_STORE_H_
