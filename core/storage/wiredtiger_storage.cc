#include "core/storage/wiredtiger_storage.h"

#include <unistd.h>
#include <wiredtiger.h>

#include <cerrno>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <algorithm>
#include <map>
#include <system_error>
#include <utility>

#include <spdlog/spdlog.h>

namespace geokv::storage {

namespace {

WT_ITEM Item(std::string_view bytes) {
  WT_ITEM item{};
  item.data = bytes.data();
  item.size = bytes.size();
  return item;
}

std::string_view View(const WT_ITEM& item) {
  return {static_cast<const char*>(item.data), item.size};
}

// Closes a cursor when it leaves scope.
struct CursorCloser {
  void operator()(WT_CURSOR* c) const { if (c != nullptr) c->close(c); }
};
using CursorPtr = std::unique_ptr<WT_CURSOR, CursorCloser>;

}  // namespace

struct WiredTigerStorage::EventHandler {
  WT_EVENT_HANDLER base{};  // must stay first: WiredTiger passes &base back to us
  WiredTigerStorage* owner = nullptr;

  static int OnError(WT_EVENT_HANDLER* handler, WT_SESSION*, int error, const char* message) {
    auto* self = reinterpret_cast<EventHandler*>(handler);
    spdlog::error("wiredtiger: {}", message != nullptr ? message : "(no message)");
    if (error == WT_PANIC) self->owner->OnPanic(message != nullptr ? message : "WT_PANIC");
    return 0;  // handled: WiredTiger prints nothing itself
  }

  static int OnMessage(WT_EVENT_HANDLER*, WT_SESSION*, const char* message) {
    spdlog::debug("wiredtiger: {}", message != nullptr ? message : "");
    return 0;
  }
};

// Sessions for readers: a WT_SESSION is single-threaded, so each reader borrows one.
class WiredTigerStorage::SessionPool {
 public:
  explicit SessionPool(WT_CONNECTION* conn) : conn_(conn) {}
  ~SessionPool() { CloseAll(); }

  // Returns a session or nullptr with `ret` set.
  WT_SESSION* Acquire(int* ret) {
    {
      std::lock_guard lock(mu_);
      if (!free_.empty()) {
        WT_SESSION* s = free_.back();
        free_.pop_back();
        *ret = 0;
        return s;
      }
    }
    WT_SESSION* s = nullptr;
    *ret = conn_->open_session(conn_, nullptr, nullptr, &s);
    return *ret == 0 ? s : nullptr;
  }

  void Release(WT_SESSION* s) {
    std::lock_guard lock(mu_);
    if (free_.size() < kIdleMax) {
      free_.push_back(s);
      return;
    }
    s->close(s, nullptr);
  }

  void CloseAll() {
    std::lock_guard lock(mu_);
    for (WT_SESSION* s : free_) s->close(s, nullptr);
    free_.clear();
  }

 private:
  static constexpr size_t kIdleMax = 32;
  WT_CONNECTION* const conn_;
  std::mutex mu_;
  std::vector<WT_SESSION*> free_;  // guarded by mu_
};

// One queued Write: the batch, its durability and, once finished, its result (fields
// after `durability` guarded by queue_mu_).
struct WiredTigerStorage::Pending {
  WriteBatch batch;
  Durability durability;
  bool taken = false;     // a leader is committing it
  bool finished = false;
  Status status;
};

// What the committing writer uses: one session and a cursor per table. Only the current
// leader touches it (one at a time: `committing_`), from whichever thread that is.
struct WiredTigerStorage::CommitState {
  WT_SESSION* session = nullptr;
  std::map<std::string, CursorPtr, std::less<>> cursors;
};

WiredTigerStorage::WiredTigerStorage(Options options) : options_(std::move(options)) {}

StatusOr<std::unique_ptr<WiredTigerStorage>> WiredTigerStorage::Open(const Options& options) {
  namespace fs = std::filesystem;
  if (options.dir.empty()) return InvalidArgument("data dir is empty");
  std::error_code ec;
  if (fs::exists(options.dir, ec) && !fs::is_directory(options.dir, ec)) {
    return InvalidArgument("data dir " + options.dir + " exists and is not a directory");
  }
  fs::create_directories(options.dir, ec);
  if (ec) return IOError("cannot create data dir " + options.dir + ": " + ec.message());
  if (::access(options.dir.c_str(), W_OK | X_OK) != 0) {
    return IOError("data dir " + options.dir + " is not writable: " + std::strerror(errno));
  }

  std::unique_ptr<WiredTigerStorage> self(new WiredTigerStorage(options));
  self->handler_ = std::make_unique<EventHandler>();
  self->handler_->base.handle_error = EventHandler::OnError;
  self->handler_->base.handle_message = EventHandler::OnMessage;
  self->handler_->owner = self.get();

  const std::string config =
      "create,log=(enabled=true,archive=true),session_max=256,"
      "cache_size=" + std::to_string(options.cache_mb) + "MB,"
      "checkpoint=(wait=" + std::to_string(options.checkpoint_interval_s) + "),"
      "transaction_sync=(enabled=false,method=fsync)";
  WT_CONNECTION* conn = nullptr;
  int ret = wiredtiger_open(options.dir.c_str(), &self->handler_->base, config.c_str(), &conn);
  if (ret == EBUSY) {
    return Status(Code::kBusy, "data dir " + options.dir +
                                   " is already open (by this or another process)");
  }
  if (ret != 0) {
    return Status(ret == WT_PANIC ? Code::kPanic : Code::kIOError,
                  "cannot open WiredTiger in " + options.dir + ": " + wiredtiger_strerror(ret));
  }
  self->conn_ = conn;
  self->readers_ = std::make_unique<SessionPool>(conn);
  self->commit_state_ = std::make_unique<CommitState>();
  return self;
}

WiredTigerStorage::~WiredTigerStorage() {
  Status s = Close();
  if (!s.ok()) spdlog::error("closing storage: {}", s.ToString());
}

Status WiredTigerStorage::Close() {
  if (closed_.exchange(true)) return Status::Ok();
  {
    // New writes are refused; queued ones are still committed by their writers.
    std::unique_lock lock(queue_mu_);
    stopping_ = true;
    queue_cv_.wait(lock, [&] { return queue_.empty() && !committing_; });
  }
  queue_cv_.notify_all();
  if (commit_state_) {
    commit_state_->cursors.clear();
    if (commit_state_->session != nullptr) commit_state_->session->close(commit_state_->session, nullptr);
    commit_state_.reset();
  }
  if (readers_) readers_->CloseAll();
  if (conn_ == nullptr) return Status::Ok();
  int ret = conn_->close(conn_, nullptr);
  conn_ = nullptr;
  if (ret != 0) return IOError(std::string("closing WiredTiger: ") + wiredtiger_strerror(ret));
  return Status::Ok();
}

void WiredTigerStorage::TestOnlyRaisePanic() {
  handler_->base.handle_error(&handler_->base, nullptr, WT_PANIC, "injected WT_PANIC (test)");
}

void WiredTigerStorage::OnPanic(std::string_view message) {
  {
    std::lock_guard lock(panic_mu_);
    if (panic_message_.empty()) panic_message_ = std::string(message);
  }
  panicked_.store(true);
}

Status WiredTigerStorage::PanicStatus() const {
  std::lock_guard lock(panic_mu_);
  return Status(Code::kPanic, "storage engine panicked (" + panic_message_ +
                                  "); the store refuses further work; reopen it to run recovery");
}

Status WiredTigerStorage::CheckWt(int ret, std::string_view what) {
  if (ret == 0) return Status::Ok();
  if (ret == WT_NOTFOUND) return NotFound(std::string(what) + ": not found");
  if (ret == WT_PANIC) {
    OnPanic(std::string(what) + ": " + wiredtiger_strerror(ret));
    return PanicStatus();
  }
  if (ret == EBUSY) return Status(Code::kBusy, std::string(what) + ": " + wiredtiger_strerror(ret));
  return IOError(std::string(what) + ": " + wiredtiger_strerror(ret));
}

Status WiredTigerStorage::ValidateTable(std::string_view table) {
  if (table.empty() || table.size() > 64) return InvalidArgument("table name must be 1..64 characters");
  for (char c : table) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return InvalidArgument("table name may hold only letters, digits and '_': " + std::string(table));
  }
  return Status::Ok();
}

Status WiredTigerStorage::EnsureTable(WT_SESSION* session, const std::string& table) {
  {
    std::lock_guard lock(tables_mu_);
    if (tables_.count(table) != 0) return Status::Ok();
  }
  // create is idempotent for an existing table with the same format.
  const std::string uri = "table:" + table;
  GEOKV_RETURN_IF_ERROR(CheckWt(session->create(session, uri.c_str(), "key_format=u,value_format=u"),
                                "creating table " + table));
  std::lock_guard lock(tables_mu_);
  tables_.insert(table);
  return Status::Ok();
}

Status WiredTigerStorage::Write(const WriteBatch& batch, Durability durability) {
  if (closed_.load()) return Status(Code::kClosed, "storage is closed");
  if (panicked_.load()) return PanicStatus();
  for (const auto& op : batch.ops()) {
    GEOKV_RETURN_IF_ERROR(ValidateTable(op.table));
    if (op.key.empty()) return InvalidArgument("key is empty");
  }
  if (batch.empty()) return Status::Ok();

  // Group commit without a hand-off (the writer-queue scheme of leveldb): the writer at the
  // head of the queue commits itself and every writer queued behind it, in one transaction
  // and one log flush, while the others wait for their result.
  auto pending = std::make_shared<Pending>();
  pending->batch = batch;
  pending->durability = durability;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.commit_timeout_ms);
  std::unique_lock lock(queue_mu_);
  if (!queue_cv_.wait_until(lock, deadline, [&] {
        return stopping_ || queue_.size() < options_.write_queue_max;
      })) {
    return Status(Code::kTimeout, "write queue stayed full for " +
                                      std::to_string(options_.commit_timeout_ms) + " ms");
  }
  if (stopping_) return Status(Code::kClosed, "storage is closed");
  queue_.push_back(pending);
  for (;;) {
    if (pending->finished) return pending->status;
    if (!committing_ && queue_.front() == pending) break;  // lead the next group
    if (queue_cv_.wait_until(lock, deadline) == std::cv_status::timeout && !pending->finished &&
        (committing_ || queue_.front() != pending)) {
      if (!pending->taken) {
        queue_.erase(std::find(queue_.begin(), queue_.end(), pending));
        queue_cv_.notify_all();
        return Status(Code::kTimeout, "the write waited " + std::to_string(options_.commit_timeout_ms) +
                                          " ms for earlier commits and was not made");
      }
      return Status(Code::kTimeout, "commit did not finish within " +
                                        std::to_string(options_.commit_timeout_ms) +
                                        " ms; its outcome is unknown");
    }
  }
  std::vector<std::shared_ptr<Pending>> group;
  size_t bytes = 0;
  for (auto it = queue_.begin(); it != queue_.end() && group.size() < options_.group_commit_batches_max; ++it) {
    if (!group.empty() && bytes + (*it)->batch.bytes() > options_.group_commit_bytes_max) break;
    bytes += (*it)->batch.bytes();
    (*it)->taken = true;
    group.push_back(*it);
  }
  committing_ = true;
  lock.unlock();
  Status s = CommitGroup(*commit_state_, group);
  lock.lock();
  for (auto& p : group) {
    p->status = s;
    p->finished = true;
    queue_.pop_front();  // the group is the head of the queue, in order
  }
  committing_ = false;
  queue_cv_.notify_all();
  return pending->status;
}

Status WiredTigerStorage::CommitGroup(CommitState& state,
                                      const std::vector<std::shared_ptr<Pending>>& group) {
  if (panicked_.load()) return PanicStatus();
  if (state.session == nullptr) {
    GEOKV_RETURN_IF_ERROR(CheckWt(conn_->open_session(conn_, nullptr, nullptr, &state.session),
                                  "opening commit session"));
  }
  WT_SESSION* session = state.session;
  auto& cursors = state.cursors;
  auto cursor_for = [&](const std::string& table) -> StatusOr<WT_CURSOR*> {
    auto it = cursors.find(table);
    if (it != cursors.end()) return it->second.get();
    GEOKV_RETURN_IF_ERROR(EnsureTable(session, table));
    WT_CURSOR* c = nullptr;
    const std::string uri = "table:" + table;
    GEOKV_RETURN_IF_ERROR(CheckWt(session->open_cursor(session, uri.c_str(), nullptr, nullptr, &c),
                                  "opening cursor on " + table));
    cursors.emplace(table, CursorPtr(c));
    return c;
  };

  GEOKV_RETURN_IF_ERROR(CheckWt(session->begin_transaction(session, nullptr), "begin transaction"));
  bool sync = false, write = false;
  Status status;
  for (const auto& p : group) {
    sync |= p->durability == Durability::kSync;
    write |= p->durability == Durability::kWrite;
    for (const auto& op : p->batch.ops()) {
      auto c = cursor_for(op.table);
      if (!c.ok()) { status = c.status(); break; }
      WT_ITEM key = Item(op.key);
      (*c)->set_key(*c, &key);
      int ret;
      if (op.is_delete) {
        ret = (*c)->remove(*c);
        if (ret == WT_NOTFOUND) ret = 0;  // deleting an absent key is not an error
      } else {
        WT_ITEM value = Item(op.value);
        (*c)->set_value(*c, &value);
        ret = (*c)->insert(*c);
      }
      status = CheckWt(ret, op.is_delete ? "delete in " + op.table : "put in " + op.table);
      if (!status.ok()) break;
    }
    if (!status.ok()) break;
  }
  if (!status.ok()) {
    session->rollback_transaction(session, nullptr);
    return status;
  }
  GEOKV_RETURN_IF_ERROR(CheckWt(session->commit_transaction(session, sync ? "sync=on" : "sync=off"),
                                "commit transaction"));
  if (!sync && write) {
    // Hand the log records to the OS: survives a process crash without paying for an fsync.
    GEOKV_RETURN_IF_ERROR(CheckWt(session->log_flush(session, "sync=off"), "log flush"));
  }
  for (auto& [table, c] : cursors) c->reset(c.get());
  commits_.fetch_add(1, std::memory_order_relaxed);
  writes_.fetch_add(group.size(), std::memory_order_relaxed);
  return Status::Ok();
}

// Runs fn(cursor) with a cursor on `table` from a pooled reader session; the cursor is
// closed and the session returned afterwards.
template <typename Fn>
Status WiredTigerStorage::WithReadCursor(std::string_view table, Fn&& fn) {
  if (closed_.load()) return Status(Code::kClosed, "storage is closed");
  if (panicked_.load()) return PanicStatus();
  GEOKV_RETURN_IF_ERROR(ValidateTable(table));
  int ret = 0;
  WT_SESSION* session = readers_->Acquire(&ret);
  if (session == nullptr) return CheckWt(ret, "opening session");
  struct Release {
    SessionPool* pool;
    WT_SESSION* s;
    ~Release() { pool->Release(s); }
  } release{readers_.get(), session};
  const std::string name(table);
  GEOKV_RETURN_IF_ERROR(EnsureTable(session, name));
  WT_CURSOR* raw = nullptr;
  GEOKV_RETURN_IF_ERROR(CheckWt(session->open_cursor(session, ("table:" + name).c_str(), nullptr, nullptr, &raw),
                                "opening cursor on " + name));
  CursorPtr cursor(raw);
  return fn(cursor.get(), name);
}

StatusOr<std::string> WiredTigerStorage::Get(std::string_view table, std::string_view key) {
  if (key.empty()) return InvalidArgument("key is empty");
  std::string value;
  GEOKV_RETURN_IF_ERROR(WithReadCursor(table, [&](WT_CURSOR* c, const std::string& name) -> Status {
    WT_ITEM k = Item(key);
    c->set_key(c, &k);
    const int ret = c->search(c);
    if (ret == WT_NOTFOUND) return NotFound("no such key");
    GEOKV_RETURN_IF_ERROR(CheckWt(ret, "get in " + name));
    WT_ITEM v{};
    GEOKV_RETURN_IF_ERROR(CheckWt(c->get_value(c, &v), "reading value in " + name));
    value.assign(View(v));
    return Status::Ok();
  }));
  return value;
}

StatusOr<std::vector<Entry>> WiredTigerStorage::Scan(std::string_view table, std::string_view prefix,
                                                     std::string_view after, size_t limit) {
  std::vector<Entry> out;
  GEOKV_RETURN_IF_ERROR(WithReadCursor(table, [&](WT_CURSOR* cursor, const std::string& name) {
    return ScanCursor(cursor, name, prefix, after, limit, &out);
  }));
  return out;
}

Status WiredTigerStorage::ScanCursor(WT_CURSOR* c, const std::string& name, std::string_view prefix,
                                     std::string_view after, size_t limit, std::vector<Entry>* out) {
  if (limit == 0) return Status::Ok();
  const bool from_prefix = after.empty() || after < prefix;
  const std::string_view start = from_prefix ? prefix : after;
  int ret = 0;
  if (start.empty()) {
    ret = c->next(c);  // WiredTiger has no empty key to search for: start at the first
  } else {
    WT_ITEM item = Item(start);
    c->set_key(c, &item);
    int exact = 0;
    ret = c->search_near(c, &exact);
    // search_near may land before the start key; step past it (and past `after` itself).
    if (ret == 0 && (exact < 0 || (!from_prefix && exact == 0))) ret = c->next(c);
  }
  if (ret == WT_NOTFOUND) return Status::Ok();
  GEOKV_RETURN_IF_ERROR(CheckWt(ret, "scan in " + name));
  for (;;) {
    WT_ITEM k{}, v{};
    GEOKV_RETURN_IF_ERROR(CheckWt(c->get_key(c, &k), "scan key in " + name));
    const std::string_view key = View(k);
    if (key.substr(0, prefix.size()) != prefix) break;
    GEOKV_RETURN_IF_ERROR(CheckWt(c->get_value(c, &v), "scan value in " + name));
    out->push_back(Entry{std::string(key), std::string(View(v))});
    if (out->size() >= limit) break;
    ret = c->next(c);
    if (ret == WT_NOTFOUND) break;
    GEOKV_RETURN_IF_ERROR(CheckWt(ret, "scan in " + name));
  }
  return Status::Ok();
}

}  // namespace geokv::storage
