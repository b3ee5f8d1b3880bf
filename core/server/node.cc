#include "core/server/node.h"

#include <utility>

#include <spdlog/spdlog.h>

#include "core/server/log.h"
#include "core/storage/wiredtiger_storage.h"

namespace geokv {

StatusOr<std::unique_ptr<Node>> Node::Open(const Config& config) {
  GEOKV_RETURN_IF_ERROR(config.Validate());
  storage::WiredTigerStorage::Options options;
  options.dir = config.data_dir;
  options.cache_mb = config.cache_mb;
  options.group_commit_batches_max = config.group_commit_batches_max;
  options.commit_timeout_ms = config.commit_timeout_ms;
  // An embedded store is often tiny: small journal files, created as they fill.
  options.log_file_bytes_max = kEmbeddedLogFileBytes;
  options.log_prealloc = false;
  auto storage = storage::WiredTigerStorage::Open(options);
  if (!storage.ok()) return storage.status();
  return Open(config, std::move(storage).value());
}

StatusOr<std::unique_ptr<Node>> Node::Open(const Config& config,
                                           std::unique_ptr<storage::Storage> storage) {
  GEOKV_RETURN_IF_ERROR(config.Validate());
  if (storage == nullptr) return InvalidArgument("storage is null");
  spdlog::debug("node open: data_dir={} durability={}", config.data_dir,
                storage::DurabilityName(config.durability));
  return std::unique_ptr<Node>(new Node(config, std::move(storage)));
}

Node::Node(Config config, std::unique_ptr<storage::Storage> storage)
    : config_(std::move(config)), storage_(std::move(storage)) {}

Node::~Node() {
  Status s = Close();
  if (!s.ok()) spdlog::error("closing node: {}", s.ToString());
}

class Node::CallGuard {
 public:
  explicit CallGuard(Node* node) : node_(node) {}
  CallGuard(CallGuard&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
  CallGuard& operator=(CallGuard&&) = delete;
  ~CallGuard() {
    if (node_ != nullptr) node_->Exit();
  }

 private:
  Node* node_;
};

StatusOr<Node::CallGuard> Node::Enter() {
  std::lock_guard lock(mu_);
  if (closed_) return Status(Code::kClosed, "the store was closed; open it again for a new handle");
  ++in_flight_;
  return CallGuard(this);
}

void Node::Exit() {
  std::lock_guard lock(mu_);
  if (--in_flight_ == 0) idle_cv_.notify_all();
}

Status Node::Close() {
  {
    std::unique_lock lock(mu_);
    if (closed_) return Status::Ok();
    closed_ = true;
    idle_cv_.wait(lock, [&] { return in_flight_ == 0; });
  }
  if (storage_ == nullptr) return Status::Ok();
  return storage_->Close();
}

bool Node::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

void Node::Abandon() {
  std::lock_guard lock(mu_);
  closed_ = true;
  // In a forked child only this thread exists, so nothing is in flight.
  (void)storage_.release();
}

Status Node::CheckKey(std::string_view key) const {
  if (key.empty()) return InvalidArgument("key is empty");
  if (key.size() > config_.limits.key_bytes_max) {
    return Status(Code::kKeyTooLarge, "key is " + std::to_string(key.size()) + " bytes; the limit is " +
                                          std::to_string(config_.limits.key_bytes_max));
  }
  return Status::Ok();
}

Status Node::Put(std::string_view key, std::string_view value) {
  auto guard = Enter();
  if (!guard.ok()) return guard.status();
  GEOKV_RETURN_IF_ERROR(CheckKey(key));
  if (value.size() > config_.limits.value_bytes_max) {
    return Status(Code::kValueTooLarge, "value is " + std::to_string(value.size()) +
                                            " bytes; the limit is " +
                                            std::to_string(config_.limits.value_bytes_max));
  }
  return storage_->Put(kDataTable, key, value, config_.durability);
}

StatusOr<std::string> Node::Get(std::string_view key) {
  auto guard = Enter();
  if (!guard.ok()) return guard.status();
  GEOKV_RETURN_IF_ERROR(CheckKey(key));
  return storage_->Get(kDataTable, key);
}

Status Node::Delete(std::string_view key) {
  auto guard = Enter();
  if (!guard.ok()) return guard.status();
  GEOKV_RETURN_IF_ERROR(CheckKey(key));
  return storage_->Delete(kDataTable, key, config_.durability);
}

StatusOr<std::vector<storage::Entry>> Node::Scan(std::string_view prefix, std::string_view after,
                                                 size_t limit) {
  auto guard = Enter();
  if (!guard.ok()) return guard.status();
  if (limit == 0 || limit > kScanLimitMax) {
    return InvalidArgument("scan limit must be in [1, " + std::to_string(kScanLimitMax) + "]");
  }
  if (prefix.size() > config_.limits.key_bytes_max) {
    return Status(Code::kKeyTooLarge, "prefix is " + std::to_string(prefix.size()) + " bytes; the key limit is " +
                                          std::to_string(config_.limits.key_bytes_max));
  }
  return storage_->Scan(kDataTable, prefix, after, limit);
}

}  // namespace geokv
