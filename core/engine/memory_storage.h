// MemoryStorage: the Storage contract in memory, for the deterministic simulator.
//
// It models durability like a write-ahead log: a kSync write makes itself and every earlier
// write durable; kWrite and kNone writes stay volatile until then. Crash() throws away
// everything volatile, exactly what a real node loses on power failure, or keeps a prefix of
// it (the journal pages that happened to reach the disk), so simulated crashes test what
// recovery must survive.
//
// Durable() is a read-only Storage over exactly what a crash now would keep, so a test can
// decode it with the production code (PaxosLog) and check what was durable when a message
// left (persist before send).
//
// Thread-safety: all methods are safe to call concurrently (one mutex); the simulator uses
// one thread anyway. Ownership: the caller owns it; the durable view belongs to it.
#ifndef GEOKV_CORE_ENGINE_MEMORY_STORAGE_H_
#define GEOKV_CORE_ENGINE_MEMORY_STORAGE_H_

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/engine/storage.h"

namespace geokv::storage {

class MemoryStorage final : public Storage {
 public:
  MemoryStorage() = default;

  Status Write(const WriteBatch& batch, Durability durability) override;
  StatusOr<std::string> Get(std::string_view table, std::string_view key) override;
  StatusOr<std::vector<Entry>> Scan(std::string_view table, std::string_view prefix,
                                    std::string_view after, size_t limit) override;
  Status Close() override;

  // Loses every write not yet made durable except the first `keep_volatile` of them, and
  // reopens (the simulator's crash + restart).
  void Crash(size_t keep_volatile = 0);
  // Number of writes that a crash now would lose.
  size_t volatile_writes() const;

  // What survives Crash(0), as a Storage: Get and Scan read the durable state (they fail
  // with kClosed while this storage is closed); Write fails with kInvalidArgument (the view
  // is read-only); Close does nothing. Valid as long as this MemoryStorage lives.
  Storage& Durable() { return durable_view_; }

 private:
  using Tables = std::map<std::string, std::map<std::string, std::string, std::less<>>, std::less<>>;

  class DurableView final : public Storage {
   public:
    explicit DurableView(MemoryStorage* owner) : owner_(owner) {}
    Status Write(const WriteBatch& batch, Durability durability) override;
    StatusOr<std::string> Get(std::string_view table, std::string_view key) override;
    StatusOr<std::vector<Entry>> Scan(std::string_view table, std::string_view prefix,
                                      std::string_view after, size_t limit) override;
    Status Close() override { return Status::Ok(); }

   private:
    MemoryStorage* const owner_;
  };

  static void Apply(const WriteBatch& batch, Tables& tables);
  // Get and Scan over `tables`; the caller holds mu_.
  StatusOr<std::string> GetLocked(const Tables& tables, std::string_view table, std::string_view key) const;
  StatusOr<std::vector<Entry>> ScanLocked(const Tables& tables, std::string_view table,
                                          std::string_view prefix, std::string_view after,
                                          size_t limit) const;

  mutable std::mutex mu_;
  Tables current_;                      // what reads see (guarded by mu_)
  Tables durable_;                      // what survives Crash() (guarded by mu_)
  std::vector<WriteBatch> volatile_;    // applied to current_, not yet to durable_ (guarded by mu_)
  bool closed_ = false;                 // guarded by mu_
  DurableView durable_view_{this};
};

}  // namespace geokv::storage

#endif  // GEOKV_CORE_ENGINE_MEMORY_STORAGE_H_
