// Storage: the durable, transactional byte store under a node (one per node).
//
// A Storage holds named tables of (key, value) byte strings. Writes are grouped into a
// WriteBatch that is applied atomically; when Write returns OK the batch is as durable as
// the Durability asked for. Implementations: WiredTigerStorage (production: one WiredTiger
// connection, journal on, group commit) and MemoryStorage (the simulator: models what was
// synced and what a crash loses). Both pass tests/core/storage/storage_test.cc.
//
// Thread-safety: every method may be called from any thread concurrently, except that
// Close must not race with other calls. Ownership: the caller owns the Storage.
#ifndef GEOKV_CORE_ENGINE_STORAGE_H_
#define GEOKV_CORE_ENGINE_STORAGE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace geokv::storage {

// How durable a write is when Write returns.
enum class Durability {
  kSync,   // on stable storage (fsync); survives power loss. Group-committed.
  kWrite,  // handed to the operating system; survives a process crash, not power loss.
  kNone,   // in the engine's memory; a process crash may lose the last writes.
};

// Parses "sync" | "write" | "none".
StatusOr<Durability> ParseDurability(std::string_view text);
std::string_view DurabilityName(Durability d);

// One atomic group of puts and deletes, across tables.
class WriteBatch {
 public:
  struct Op {
    bool is_delete;
    std::string table;
    std::string key;
    std::string value;  // empty for deletes
  };

  void Put(std::string_view table, std::string_view key, std::string_view value);
  void Delete(std::string_view table, std::string_view key);
  void Clear() { ops_.clear(); bytes_ = 0; }

  const std::vector<Op>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }
  // Sum of key and value bytes, for limits.
  size_t bytes() const { return bytes_; }

 private:
  std::vector<Op> ops_;
  size_t bytes_ = 0;
};

// A (key, value) pair returned by scans.
struct Entry {
  std::string key;
  std::string value;
};

class Storage {
 public:
  virtual ~Storage() = default;

  // Applies `batch` atomically with the given durability. Keys must not be empty (the
  // engine has no empty key). Deleting an absent key is OK. Errors: kIOError (engine failure,
  // with the engine's text), kPanic (the engine panicked; every later call fails the same
  // way), kTimeout (the commit did not finish within the configured deadline; its outcome
  // is then unknown), kClosed, kInvalidArgument (empty table name). A kSync write makes
  // every earlier write durable too, as a journal fsync does; so does an EMPTY kSync batch
  // (a Paxos acceptor may answer from state an earlier, unsynced round wrote, e.g. a
  // snapshot, and must sync it first even when this round writes nothing).
  virtual Status Write(const WriteBatch& batch, Durability durability) = 0;

  // Reads one key. kNotFound when absent; kInvalidArgument for an empty key.
  virtual StatusOr<std::string> Get(std::string_view table, std::string_view key) = 0;

  // Returns up to `limit` entries of `table` whose keys start with `prefix`, in key order,
  // starting strictly after `after` when `after` is non-empty. Paging by repeated calls
  // with the last key returned gives a consistent-per-page view.
  virtual StatusOr<std::vector<Entry>> Scan(std::string_view table, std::string_view prefix,
                                            std::string_view after, size_t limit) = 0;

  // Flushes and releases everything; later calls fail with kClosed. Idempotent.
  virtual Status Close() = 0;

  // Convenience wrappers over Write.
  Status Put(std::string_view table, std::string_view key, std::string_view value,
             Durability durability);
  Status Delete(std::string_view table, std::string_view key, Durability durability);
};

}  // namespace geokv::storage

#endif  // GEOKV_CORE_ENGINE_STORAGE_H_
