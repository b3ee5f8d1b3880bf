// Node: one geokv node embedded in this process.
//
// Today a Node is a single region with no replication: it validates every request against
// the configured limits and keeps the data durably in its Storage (WiredTiger). Replication
// modes, policy routing and the event loop join it as the protocols land; callers already
// speak to the one class that will own them.
//
// Thread-safety: every method may be called concurrently from any thread, Close included:
// Close refuses new calls at once (kClosed), waits for the calls already inside the
// storage to finish, then closes it, so no call ever touches a closed storage. Ownership:
// Open returns the only owner; the Node owns its Storage.
#ifndef GEOKV_CORE_SERVER_NODE_H_
#define GEOKV_CORE_SERVER_NODE_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "core/server/config.h"
#include "core/engine/storage.h"

namespace geokv {

class Node {
 public:
  // Opens the node's store in config.data_dir (created when missing). Errors: kConfig for
  // an invalid config; the Storage's errors (kBusy when the data dir is already open,
  // kInvalidArgument when it is not a directory, kIOError).
  static StatusOr<std::unique_ptr<Node>> Open(const Config& config);
  // Same, over a caller-supplied Storage (the simulator's MemoryStorage).
  static StatusOr<std::unique_ptr<Node>> Open(const Config& config,
                                              std::unique_ptr<storage::Storage> storage);

  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Errors common to all: kInvalidArgument (empty key), kKeyTooLarge, kValueTooLarge,
  // kClosed, and the Storage's (kIOError, kPanic, kTimeout).
  Status Put(std::string_view key, std::string_view value);
  StatusOr<std::string> Get(std::string_view key);  // kNotFound when absent
  Status Delete(std::string_view key);              // deleting an absent key is OK

  // Up to `limit` entries whose keys start with `prefix`, after key `after` (exclusive,
  // empty: from the start), in key order. kInvalidArgument when limit is 0 or too large.
  static constexpr size_t kScanLimitMax = 10000;
  // Journal file size of an embedded store (no preallocation): a store of a few keys takes
  // a few MB of disk.
  static constexpr size_t kEmbeddedLogFileBytes = 2u << 20;
  StatusOr<std::vector<storage::Entry>> Scan(std::string_view prefix, std::string_view after,
                                             size_t limit);

  // Flushes and releases the store and its lock, after the calls in flight. Idempotent.
  Status Close();
  bool closed() const;

  // Forgets the store without closing it: for a child process after fork(), where the
  // parent still owns the files (closing them here would checkpoint them behind the
  // parent's back). Later calls fail with kClosed. The storage object is leaked on purpose.
  void Abandon();

  const Config& config() const { return config_; }

 private:
  Node(Config config, std::unique_ptr<storage::Storage> storage);
  Status CheckKey(std::string_view key) const;
  // Enters a call: kClosed once Close began; otherwise the call counts as in flight until
  // the returned guard is destroyed.
  class CallGuard;
  StatusOr<CallGuard> Enter();
  void Exit();

  static constexpr std::string_view kDataTable = "data";

  // Constant after construction.
  const Config config_;
  std::unique_ptr<storage::Storage> storage_;  // released (leaked) only by Abandon

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;  // in_flight_ dropped to 0
  bool closed_ = false;              // guarded by mu_
  size_t in_flight_ = 0;             // calls inside storage_; guarded by mu_
};

}  // namespace geokv

#endif  // GEOKV_CORE_SERVER_NODE_H_
