// MemoryStorage: the Storage contract in memory, for the deterministic simulator.
//
// It models durability like a write-ahead log: a kSync write makes itself and every earlier
// write durable; kWrite and kNone writes stay volatile until then. Crash() throws away
// everything volatile, exactly what a real node loses on power failure, or keeps a prefix of
// it (the journal pages that happened to reach the disk), so simulated crashes test what
// recovery must survive.
//
// Thread-safety: all methods are safe to call concurrently (one mutex); the simulator uses
// one thread anyway. Ownership: the caller owns it.
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

 private:
  using Tables = std::map<std::string, std::map<std::string, std::string, std::less<>>, std::less<>>;
  static void Apply(const WriteBatch& batch, Tables& tables);

  mutable std::mutex mu_;
  Tables current_;                      // what reads see (guarded by mu_)
  Tables durable_;                      // what survives Crash() (guarded by mu_)
  std::vector<WriteBatch> volatile_;    // applied to current_, not yet to durable_ (guarded by mu_)
  bool closed_ = false;                 // guarded by mu_
};

}  // namespace geokv::storage

#endif  // GEOKV_CORE_ENGINE_MEMORY_STORAGE_H_
