// WiredTigerStorage: the production Storage, one WiredTiger connection per node.
//
// The journal (WiredTiger's log) is always on, so a committed transaction survives a crash
// as far as its Durability says. Concurrent writers are grouped into one transaction and
// one log flush (group commit: many writers, one fsync): the writer at the head of the
// queue commits for everyone queued behind it, so a lone writer pays no thread hand-off
// and no copy of its batch (only a writer that has to wait behind another copies its batch,
// so that a timed-out wait never leaves the committing writer reading freed memory).
// Reads use a pool of sessions, each keeping one open cursor per table (reset after every
// read, so no page or snapshot stays pinned), and never wait for writers.
//
// A data directory is identified by its canonical path and locked for the life of the
// object with flock() on <dir>/geokv.lock, so a second open under any spelling (trailing
// '/', "/.", a relative path, a symlink), in this process or another, is kBusy naming the
// holder's pid.
//
// Errors speak of the store, not of WiredTiger's internals. Damage found at open or later
// (a checksum failure, WT_TRY_SALVAGE) is kCorruption naming the damaged file and the repair
// path (Repair below; `geokv repair DIR`). Open reads the journal itself before WiredTiger's
// recovery does (journal.h): damage there that would drop acknowledged writes is
// kCorruption naming the journal file, where recovery would have opened without them. A WT_PANIC (reported through the event handler or
// a return code) turns the store into one that refuses every later call with kPanic; the
// process does not crash, and closing and reopening runs WiredTiger's recovery.
//
// Thread-safety: Write, Get and Scan may be called concurrently from any threads. Close
// must not race with them. Ownership: the caller owns the object; Close (or the destructor)
// releases the connection and the data-directory lock.
#ifndef GEOKV_CORE_STORAGE_WIREDTIGER_STORAGE_H_
#define GEOKV_CORE_STORAGE_WIREDTIGER_STORAGE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/engine/storage.h"
#include "core/storage/journal.h"

struct __wt_connection;
struct __wt_cursor;
struct __wt_session;

namespace geokv::storage {

class WiredTigerStorage final : public Storage {
 public:
  struct Options {
    std::string dir;                      // WiredTiger home; created when missing
    size_t cache_mb = 64;                 // WiredTiger cache size
    size_t group_commit_batches_max = 128;  // batches per transaction/fsync
    size_t group_commit_bytes_max = 8u << 20;  // key+value bytes per transaction
    size_t write_queue_max = 4096;        // queued batches before writers wait for room
    int64_t commit_timeout_ms = 30000;    // deadline of one Write call
    int checkpoint_interval_s = 60;       // WiredTiger checkpoint period (bounds recovery time)
    // Size of one journal file, and whether WiredTiger creates the next ones ahead of time.
    // The defaults suit a server; an embedded store uses small files and no preallocation
    // so that an almost empty store takes a few MB of disk, not hundreds.
    size_t log_file_bytes_max = 100u << 20;
    bool log_prealloc = true;
  };

  // What Repair found and did.
  struct RepairReport {
    std::vector<std::string> damaged;  // tables that failed verification (then salvaged)
    // Damaged stretches of the journal, dropped so that recovery replays the commits after
    // them (one line each, journal::Damage::Describe); the writes inside them are lost.
    std::vector<std::string> journal_dropped;
    std::vector<std::string> journal_files;  // the journal files those stretches were in
    uint64_t keys_before = 0;          // keys readable before the repair (damaged tables: 0)
    uint64_t keys_after = 0;           // keys readable after it
  };

  // Salvages the store in `dir`, which must not be open: first drops the damaged stretches
  // of the journal (journal::DropDamage) so that recovery replays every readable commit,
  // then reopens WiredTiger with its metadata salvage on, verifies every table and salvages
  // the damaged ones (their unreadable pages are dropped; what could be read is kept). Errors: kBusy (open
  // elsewhere), kInvalidArgument (not a store), kCorruption (beyond repair), kIOError.
  static StatusOr<RepairReport> Repair(const std::string& dir);

  // Opens (creating when missing) the store in options.dir. Errors: kInvalidArgument (dir
  // is not a directory, or empty), kIOError (cannot create or write it), kBusy (already
  // open by this or another process), kIOError/kCorruption from WiredTiger itself.
  static StatusOr<std::unique_ptr<WiredTigerStorage>> Open(const Options& options);

  ~WiredTigerStorage() override;
  WiredTigerStorage(const WiredTigerStorage&) = delete;
  WiredTigerStorage& operator=(const WiredTigerStorage&) = delete;

  Status Write(const WriteBatch& batch, Durability durability) override;
  StatusOr<std::string> Get(std::string_view table, std::string_view key) override;
  StatusOr<std::vector<Entry>> Scan(std::string_view table, std::string_view prefix,
                                    std::string_view after, size_t limit) override;
  Status Close() override;

  // Transactions (and so log flushes) committed so far; with writes() it shows how well
  // group commit is grouping. (Updated by the committing writer; read as a snapshot.)
  uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }
  uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }

  // Delivers a WT_PANIC through the same event-handler path WiredTiger uses, so tests can
  // check that the store refuses further work instead of crashing.
  void TestOnlyRaisePanic();

  struct EventHandler;  // WiredTiger's callback table plus a pointer back to us

 private:
  struct Pending;
  struct CommitState;
  class SessionPool;

  explicit WiredTigerStorage(Options options);
  Status CheckStores(__wt_session* session);
  Status Damaged(std::string_view detail) const;
  Status JournalDamaged(const std::vector<journal::Damage>& damage) const;
  Status CheckWt(int ret, std::string_view what);
  Status PanicStatus() const;
  Status EnsureTable(__wt_session* session, const std::string& table);
  static Status ValidateTable(std::string_view table);
  Status CommitGroup(CommitState& state, const Pending* const* group, size_t count);
  void OnPanic(std::string_view message);
  template <typename Fn>
  Status WithReadCursor(std::string_view table, Fn&& fn);
  Status OpenReadCursor(__wt_session* session, std::string_view table, __wt_cursor** cursor);
  Status ScanCursor(__wt_cursor* cursor, const std::string& name, std::string_view prefix,
                    std::string_view after, size_t limit, std::vector<Entry>* out);

  // Constant after Open.
  const Options options_;  // options_.dir is the canonical path
  int lock_fd_ = -1;       // holds flock(LOCK_EX) on <dir>/geokv.lock until Close
  __wt_connection* conn_ = nullptr;
  std::unique_ptr<EventHandler> handler_;
  std::unique_ptr<SessionPool> readers_;

  std::atomic<bool> panicked_{false};
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> writes_{0};

  mutable std::mutex panic_mu_;
  std::string panic_message_;  // guarded by panic_mu_

  std::mutex tables_mu_;
  std::set<std::string, std::less<>> tables_;  // tables known to exist; guarded by tables_mu_

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;        // a group finished, or the queue changed
  std::deque<std::shared_ptr<Pending>> queue_;  // waiting and committing writes; guarded by queue_mu_
  bool committing_ = false;                 // a leader is committing a group; guarded by queue_mu_
  bool stopping_ = false;                   // guarded by queue_mu_
  std::unique_ptr<CommitState> commit_state_;  // used by the leader only (see committing_)
};

}  // namespace geokv::storage

#endif  // GEOKV_CORE_STORAGE_WIREDTIGER_STORAGE_H_
