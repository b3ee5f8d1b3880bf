#include "core/engine/memory_storage.h"

namespace geokv::storage {

namespace {
Status ClosedError() { return Status(Code::kClosed, "storage is closed"); }
}  // namespace

void MemoryStorage::Apply(const WriteBatch& batch, Tables& tables) {
  for (const auto& op : batch.ops()) {
    auto& table = tables[op.table];
    if (op.is_delete) {
      table.erase(op.key);
    } else {
      table.insert_or_assign(op.key, op.value);
    }
  }
}

Status MemoryStorage::Write(const WriteBatch& batch, Durability durability) {
  for (const auto& op : batch.ops()) {
    if (op.table.empty()) return InvalidArgument("table name is empty");
    if (op.key.empty()) return InvalidArgument("key is empty");
  }
  std::lock_guard lock(mu_);
  if (closed_) return ClosedError();
  Apply(batch, current_);
  if (durability == Durability::kSync) {
    // A sync covers every earlier write too, as a log fsync does.
    for (const auto& pending : volatile_) Apply(pending, durable_);
    volatile_.clear();
    Apply(batch, durable_);
  } else {
    volatile_.push_back(batch);
  }
  return Status::Ok();
}

StatusOr<std::string> MemoryStorage::GetLocked(const Tables& tables, std::string_view table,
                                               std::string_view key) const {
  if (key.empty()) return InvalidArgument("key is empty");
  if (closed_) return ClosedError();
  auto t = tables.find(table);
  if (t == tables.end()) return NotFound("no such key");
  auto it = t->second.find(key);
  if (it == t->second.end()) return NotFound("no such key");
  return it->second;
}

StatusOr<std::vector<Entry>> MemoryStorage::ScanLocked(const Tables& tables, std::string_view table,
                                                       std::string_view prefix, std::string_view after,
                                                       size_t limit) const {
  if (closed_) return ClosedError();
  std::vector<Entry> out;
  auto t = tables.find(table);
  if (t == tables.end()) return out;
  const auto& rows = t->second;
  auto it = (after.empty() || after < prefix) ? rows.lower_bound(prefix) : rows.upper_bound(after);
  for (; it != rows.end() && out.size() < limit; ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    out.push_back(Entry{it->first, it->second});
  }
  return out;
}

StatusOr<std::string> MemoryStorage::Get(std::string_view table, std::string_view key) {
  std::lock_guard lock(mu_);
  return GetLocked(current_, table, key);
}

StatusOr<std::vector<Entry>> MemoryStorage::Scan(std::string_view table, std::string_view prefix,
                                                 std::string_view after, size_t limit) {
  std::lock_guard lock(mu_);
  return ScanLocked(current_, table, prefix, after, limit);
}

Status MemoryStorage::DurableView::Write(const WriteBatch&, Durability) {
  return InvalidArgument("the durable view of a MemoryStorage is read-only");
}

StatusOr<std::string> MemoryStorage::DurableView::Get(std::string_view table, std::string_view key) {
  std::lock_guard lock(owner_->mu_);
  return owner_->GetLocked(owner_->durable_, table, key);
}

StatusOr<std::vector<Entry>> MemoryStorage::DurableView::Scan(std::string_view table,
                                                              std::string_view prefix,
                                                              std::string_view after, size_t limit) {
  std::lock_guard lock(owner_->mu_);
  return owner_->ScanLocked(owner_->durable_, table, prefix, after, limit);
}

Status MemoryStorage::Close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  return Status::Ok();
}

void MemoryStorage::Crash(size_t keep_volatile) {
  std::lock_guard lock(mu_);
  // The journal is written in order: what reached the disk before the crash is a prefix.
  for (size_t i = 0; i < keep_volatile && i < volatile_.size(); ++i) Apply(volatile_[i], durable_);
  current_ = durable_;
  volatile_.clear();
  closed_ = false;
}

size_t MemoryStorage::volatile_writes() const {
  std::lock_guard lock(mu_);
  return volatile_.size();
}

}  // namespace geokv::storage
