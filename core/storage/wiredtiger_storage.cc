#include "core/storage/wiredtiger_storage.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <wiredtiger.h>

#include <cerrno>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <algorithm>
#include <system_error>
#include <utility>

#include <spdlog/spdlog.h>

#include "core/storage/journal.h"

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

constexpr char kLockFile[] = "geokv.lock";

// Takes flock(LOCK_EX) on <dir>/geokv.lock (dir canonical) and writes our pid into it. flock
// belongs to the open file description, so a second open of the same directory in this
// process conflicts as much as one from another process. Returns the fd, or a status
// naming the holder.
StatusOr<int> LockDir(const std::string& dir) {
  const std::string path = dir + "/" + kLockFile;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return IOError("cannot create the lock file " + path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {0};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    if (err != EWOULDBLOCK) return IOError("cannot lock " + path + ": " + std::strerror(err));
    const long holder = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
    std::string who = holder <= 0 ? std::string("another handle")
                      : holder == static_cast<long>(::getpid())
                          ? "this process (pid " + std::to_string(holder) + "), under this or another spelling of the path"
                          : "process " + std::to_string(holder);
    return Status(Code::kBusy, "data dir " + dir + " is already open by " + who +
                                   "; close that handle first (one handle per directory)");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // The pid only makes the busy message friendlier; the lock itself is held.
  }
  return fd;
}

void UnlockDir(int fd) {
  if (fd < 0) return;
  ::flock(fd, LOCK_UN);
  ::close(fd);
}

// "file:data.wt, WT_SESSION.open_cursor: ..." -> "data.wt"; "" when no file is named.
std::string FileNamed(std::string_view message) {
  const size_t at = message.find("file:");
  if (at == std::string_view::npos) return "";
  const size_t start = at + 5;
  size_t end = message.find_first_of(",: ", start);
  if (end == std::string_view::npos) end = message.size();
  return std::string(message.substr(start, end - start));
}

bool LooksCorrupt(std::string_view message) {
  for (std::string_view word : {"checksum", "corrupt", "salvage", "WT_TRY_SALVAGE", "magic number", "block header"}) {
    if (message.find(word) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace

static std::string ConnectionConfig(const WiredTigerStorage::Options& options, bool salvage) {
  std::string config =
      "create,session_max=256,"
      "log=(enabled=true,archive=true,file_max=" +
      std::to_string(std::max<size_t>(options.log_file_bytes_max, 100u << 10)) +
      ",prealloc=" + (options.log_prealloc ? "true" : "false") + "),"
      "cache_size=" + std::to_string(options.cache_mb) + "MB,"
      "checkpoint=(wait=" + std::to_string(options.checkpoint_interval_s) + "),"
      "transaction_sync=(enabled=false,method=fsync)";
  if (salvage) config += ",salvage=true";
  return config;
}

struct WiredTigerStorage::EventHandler {
  WT_EVENT_HANDLER base{};  // must stay first: WiredTiger passes &base back to us
  WiredTigerStorage* owner = nullptr;  // null while opening and repairing
  std::mutex mu;
  std::string damage;  // the last error message that spoke of damage; guarded by mu

  std::string Damage() {
    std::lock_guard lock(mu);
    return damage;
  }

  static int OnError(WT_EVENT_HANDLER* handler, WT_SESSION*, int error, const char* message) {
    auto* self = reinterpret_cast<EventHandler*>(handler);
    const std::string_view text = message != nullptr ? message : "(no message)";
    // A damaged block comes with a hex dump of it: for debugging, not for the host's log.
    if (text.find("corrupt_dump") != std::string_view::npos) {
      spdlog::debug("wiredtiger: {}", text);
    } else {
      spdlog::error("wiredtiger: {}", text);
    }
    if (LooksCorrupt(text) || error == WT_TRY_SALVAGE) {
      std::lock_guard lock(self->mu);
      self->damage.assign(text);
    }
    if (error == WT_PANIC && self->owner != nullptr) self->owner->OnPanic(text);
    return 0;  // handled: WiredTiger prints nothing itself
  }

  static int OnMessage(WT_EVENT_HANDLER*, WT_SESSION*, const char* message) {
    spdlog::debug("wiredtiger: {}", message != nullptr ? message : "");
    return 0;
  }
};

// Sessions for readers: a WT_SESSION is single-threaded, so each reader borrows one. A
// pooled session keeps its cursors open, one per table, so that a read does not pay for
// open_cursor (a URI lookup and a handle) every time; the borrower resets the cursor it used
// before returning the session, so an idle session pins no page and no snapshot.
class WiredTigerStorage::SessionPool {
 public:
  struct Reader {
    WT_SESSION* session = nullptr;
    // Open cursors by table name (few tables: a short vector beats a map here).
    std::vector<std::pair<std::string, WT_CURSOR*>> cursors;

    WT_CURSOR* Cached(std::string_view table) const {
      for (const auto& [name, c] : cursors) {
        if (name == table) return c;
      }
      return nullptr;
    }
    // Closes and forgets the cursor on `table` (after an error left it in doubt).
    void Drop(std::string_view table) {
      for (auto it = cursors.begin(); it != cursors.end(); ++it) {
        if (it->first == table) {
          it->second->close(it->second);
          cursors.erase(it);
          return;
        }
      }
    }
  };

  explicit SessionPool(WT_CONNECTION* conn) : conn_(conn) {}
  ~SessionPool() { CloseAll(); }

  // Returns a reader or nullptr with `ret` set.
  Reader* Acquire(int* ret) {
    if (Reader* r = spare_.exchange(nullptr, std::memory_order_acquire)) {
      *ret = 0;
      return r;
    }
    {
      std::lock_guard lock(mu_);
      if (!free_.empty()) {
        Reader* r = free_.back().release();
        free_.pop_back();
        *ret = 0;
        return r;
      }
    }
    WT_SESSION* s = nullptr;
    *ret = conn_->open_session(conn_, nullptr, nullptr, &s);
    if (*ret != 0) return nullptr;
    auto* r = new Reader;
    r->session = s;
    return r;
  }

  void Release(Reader* r) {
    Reader* empty = nullptr;
    if (spare_.compare_exchange_strong(empty, r, std::memory_order_release, std::memory_order_relaxed)) return;
    std::unique_ptr<Reader> owned(r);
    {
      std::lock_guard lock(mu_);
      if (free_.size() < kIdleMax) {
        free_.push_back(std::move(owned));
        return;
      }
    }
    owned->session->close(owned->session, nullptr);  // closes its cursors too
  }

  void CloseAll() {
    if (std::unique_ptr<Reader> r{spare_.exchange(nullptr)}) r->session->close(r->session, nullptr);
    std::lock_guard lock(mu_);
    for (auto& r : free_) r->session->close(r->session, nullptr);
    free_.clear();
  }

 private:
  static constexpr size_t kIdleMax = 32;
  WT_CONNECTION* const conn_;
  // One idle reader outside the mutex: a lone reader takes and returns it with one atomic
  // exchange each instead of two lock round trips. Owned by the pool while stored here.
  std::atomic<Reader*> spare_{nullptr};
  std::mutex mu_;
  std::vector<std::unique_ptr<Reader>> free_;  // guarded by mu_
};

// One Write in the queue: its batch, its durability and, once finished, its result (fields
// after `durability` guarded by queue_mu_). `batch` points at the caller's batch while the
// writer commits it itself, and at `copy` once the writer waits behind another: a waiter may
// give up at its deadline while the committing writer is still reading its batch.
struct WiredTigerStorage::Pending {
  const WriteBatch* batch = nullptr;
  Durability durability = Durability::kSync;
  WriteBatch copy;
  bool taken = false;     // a leader is committing it
  bool finished = false;
  Status status;
};

// What the committing writer uses: one session and a cursor per table, and the group being
// committed. Only the current leader touches it (one at a time: `committing_`), from
// whichever thread that is.
struct WiredTigerStorage::CommitState {
  WT_SESSION* session = nullptr;
  std::vector<std::pair<std::string, CursorPtr>> cursors;  // by table (few: a vector)
  std::vector<const Pending*> group;  // kept to reuse its allocation
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

  // One identity per directory whatever its spelling: WiredTiger's own in-process check
  // compares path strings, so two spellings would both open it and corrupt it.
  const fs::path canonical = fs::canonical(options.dir, ec);
  if (ec) return IOError("cannot resolve data dir " + options.dir + ": " + ec.message());
  Options resolved = options;
  resolved.dir = canonical.string();
  auto lock = LockDir(resolved.dir);
  if (!lock.ok()) return lock.status();

  std::unique_ptr<WiredTigerStorage> self(new WiredTigerStorage(resolved));
  self->lock_fd_ = *lock;
  if (fs::exists(canonical / "WiredTiger", ec)) {
    // Before WiredTiger's recovery, which would take damage for the end of the journal and
    // drop the acknowledged writes after it (see journal.h).
    const auto started = std::chrono::steady_clock::now();
    auto scan = journal::Check(resolved.dir);
    if (!scan.ok()) return scan.status();
    spdlog::debug("journal check of {}: {} files, {} bytes, {} records in {} us", resolved.dir, scan->files,
                  scan->bytes, scan->records,
                  std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started)
                      .count());
    if (!scan->damage.empty()) return self->JournalDamaged(scan->damage);
  }
  self->handler_ = std::make_unique<EventHandler>();
  self->handler_->base.handle_error = EventHandler::OnError;
  self->handler_->base.handle_message = EventHandler::OnMessage;

  const std::string& dir = self->options_.dir;
  const std::string config = ConnectionConfig(resolved, /*salvage=*/false);
  WT_CONNECTION* conn = nullptr;
  int ret = wiredtiger_open(dir.c_str(), &self->handler_->base, config.c_str(), &conn);
  if (ret == EBUSY) {
    return Status(Code::kBusy, "data dir " + dir + " is already open by another process");
  }
  if (ret == WT_TRY_SALVAGE || (ret != 0 && !self->handler_->Damage().empty())) {
    return self->Damaged(self->handler_->Damage());
  }
  if (ret != 0) {
    return Status(ret == WT_PANIC ? Code::kPanic : Code::kIOError,
                  "cannot open the store in " + dir + ": " + wiredtiger_strerror(ret));
  }
  self->conn_ = conn;
  self->handler_->owner = self.get();
  self->readers_ = std::make_unique<SessionPool>(conn);
  self->commit_state_ = std::make_unique<CommitState>();
  int sret = 0;
  SessionPool::Reader* reader = self->readers_->Acquire(&sret);
  if (reader == nullptr) return self->CheckWt(sret, "opening a session");
  Status checked = self->CheckStores(reader->session);
  self->readers_->Release(reader);
  if (!checked.ok()) return checked;
  return self;
}

namespace {

// Tables named in WiredTiger's metadata ("table:data" -> "data").
Status ListTables(WT_SESSION* session, std::vector<std::string>* tables) {
  WT_CURSOR* raw = nullptr;
  int ret = session->open_cursor(session, "metadata:", nullptr, nullptr, &raw);
  if (ret != 0) return IOError(std::string("reading the store's catalog: ") + wiredtiger_strerror(ret));
  CursorPtr c(raw);
  while ((ret = c->next(c.get())) == 0) {
    const char* key = nullptr;
    if ((ret = c->get_key(c.get(), &key)) != 0) break;
    std::string_view k(key);
    if (k.substr(0, 6) == "table:") tables->emplace_back(k.substr(6));
  }
  if (ret != WT_NOTFOUND) return IOError(std::string("reading the store's catalog: ") + wiredtiger_strerror(ret));
  return Status::Ok();
}

}  // namespace

// Reads the first and the last entry of every table: that reads each file's descriptor,
// root and edge pages, so the common damage (a truncated or overwritten file) is found at
// open instead of at the first unlucky read. Damage deeper inside a large file is found
// when it is read (kCorruption then too), or by Repair, which verifies everything.
Status WiredTigerStorage::CheckStores(WT_SESSION* session) {
  std::vector<std::string> tables;
  GEOKV_RETURN_IF_ERROR(ListTables(session, &tables));
  for (const auto& table : tables) {
    WT_CURSOR* raw = nullptr;
    GEOKV_RETURN_IF_ERROR(CheckWt(session->open_cursor(session, ("table:" + table).c_str(), nullptr, nullptr, &raw),
                                  "opening table " + table));
    CursorPtr c(raw);
    int ret = c->next(c.get());
    if (ret == 0 || ret == WT_NOTFOUND) ret = c->reset(c.get());
    if (ret == 0) ret = c->prev(c.get());
    if (ret != 0 && ret != WT_NOTFOUND) return CheckWt(ret, "reading table " + table);
  }
  return Status::Ok();
}

Status WiredTigerStorage::JournalDamaged(const std::vector<journal::Damage>& damage) const {
  std::string what = damage.front().Describe();
  if (damage.size() > 1) what += " (and " + std::to_string(damage.size() - 1) + " more damaged stretches)";
  return Status(Code::kCorruption,
                "the store in " + options_.dir + " is damaged (" + what +
                    "); opening it would silently lose the writes after the damage: run `geokv repair " +
                    options_.dir + "` (or geokv_repair), which keeps what can still be read and reports what was lost");
}

Status WiredTigerStorage::Damaged(std::string_view detail) const {
  std::string file = FileNamed(detail);
  return Status(Code::kCorruption,
                "the store in " + options_.dir + " is damaged" + (file.empty() ? "" : " (file " + file + ")") +
                    ": close it and run `geokv repair " + options_.dir +
                    "` (or geokv_repair), which keeps what can still be read and reports what was lost");
}

StatusOr<WiredTigerStorage::RepairReport> WiredTigerStorage::Repair(const std::string& dir_in) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (dir_in.empty()) return InvalidArgument("data dir is empty");
  const fs::path canonical = fs::canonical(dir_in, ec);
  if (ec) return InvalidArgument("cannot resolve data dir " + dir_in + ": " + ec.message());
  const std::string dir = canonical.string();
  if (!fs::exists(canonical / "WiredTiger", ec)) return InvalidArgument(dir + " holds no geokv store");
  auto lock = LockDir(dir);
  if (!lock.ok()) return lock.status();
  struct Unlock {
    int fd;
    ~Unlock() { UnlockDir(fd); }
  } unlock{*lock};

  // The journal first: recovery (inside wiredtiger_open) would stop at its damage and drop
  // every commit after it; made readable-and-empty, the damaged records alone are lost.
  auto scan = journal::Check(dir);
  if (!scan.ok()) return scan.status();
  RepairReport report;
  if (!scan->damage.empty()) {
    GEOKV_RETURN_IF_ERROR(journal::DropDamage(dir, scan->damage));
    for (const auto& d : scan->damage) {
      spdlog::warn("repair: dropped the damaged {} in {}; the writes in it are lost", d.Describe(), dir);
      report.journal_dropped.push_back(d.Describe());
      if (std::find(report.journal_files.begin(), report.journal_files.end(), d.file) == report.journal_files.end()) {
        report.journal_files.push_back(d.file);
      }
    }
  }

  EventHandler handler;
  handler.base.handle_error = EventHandler::OnError;
  handler.base.handle_message = EventHandler::OnMessage;
  Options options;
  options.dir = dir;
  options.log_file_bytes_max = 2u << 20;
  options.log_prealloc = false;
  WT_CONNECTION* conn = nullptr;
  int ret = wiredtiger_open(dir.c_str(), &handler.base, ConnectionConfig(options, /*salvage=*/true).c_str(), &conn);
  if (ret == EBUSY) return Status(Code::kBusy, "data dir " + dir + " is already open by another process");
  if (ret != 0) {
    return Status(Code::kCorruption, "the store in " + dir + " is beyond repair: " + wiredtiger_strerror(ret) +
                                         (handler.Damage().empty() ? "" : " (" + handler.Damage() + ")"));
  }
  struct CloseConn {
    WT_CONNECTION* c;
    ~CloseConn() { c->close(c, nullptr); }
  } close_conn{conn};
  WT_SESSION* session = nullptr;
  if ((ret = conn->open_session(conn, nullptr, nullptr, &session)) != 0) {
    return IOError(std::string("opening a session: ") + wiredtiger_strerror(ret));
  }
  std::vector<std::string> tables;
  GEOKV_RETURN_IF_ERROR(ListTables(session, &tables));
  // Keys readable from start to end; -1 when a read fails.
  auto count = [&](const std::string& uri) -> int64_t {
    WT_CURSOR* raw = nullptr;
    if (session->open_cursor(session, uri.c_str(), nullptr, nullptr, &raw) != 0) return -1;
    CursorPtr c(raw);
    int64_t n = 0;
    int r;
    while ((r = c->next(c.get())) == 0) ++n;
    return r == WT_NOTFOUND ? n : -1;
  };
  for (const auto& table : tables) {
    const std::string uri = "table:" + table;
    // verify first: it reads damaged blocks without panicking the connection, which a
    // plain cursor would do.
    const bool damaged = session->verify(session, uri.c_str(), nullptr) != 0;
    if (!damaged) {
      const int64_t keys = count(uri);
      if (keys < 0) return Status(Code::kCorruption, "table " + table + " in " + dir + " verified but cannot be read");
      report.keys_before += keys;
      report.keys_after += keys;
      continue;
    }
    report.damaged.push_back(table);
    if ((ret = session->salvage(session, uri.c_str(), "force=true")) != 0) {
      return Status(Code::kCorruption, "table " + table + " in " + dir + " could not be salvaged: " +
                                           wiredtiger_strerror(ret));
    }
    const int64_t after = count(uri);
    if (after < 0) return Status(Code::kCorruption, "table " + table + " in " + dir + " is still unreadable after salvage");
    report.keys_after += after;
    spdlog::warn("repair: salvaged table {} in {}: {} keys kept", table, dir, after);
  }
  if ((ret = session->checkpoint(session, nullptr)) != 0) {
    return IOError(std::string("checkpoint after repair: ") + wiredtiger_strerror(ret));
  }
  return report;
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
  int ret = 0;
  if (conn_ != nullptr) {
    ret = conn_->close(conn_, nullptr);
    conn_ = nullptr;
  }
  UnlockDir(lock_fd_);  // after WiredTiger let go of the files
  lock_fd_ = -1;
  if (ret != 0) return IOError("closing the store in " + options_.dir + ": " + wiredtiger_strerror(ret));
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
  return Status(Code::kPanic, "the storage engine stopped after a fatal error (" + panic_message_ +
                                  "); this handle refuses further work: close it and open the directory "
                                  "again, which runs recovery; if that open reports damage, repair the store "
                                  "(`geokv repair DIR` or geokv_repair)");
}

Status WiredTigerStorage::CheckWt(int ret, std::string_view what) {
  if (ret == 0) return Status::Ok();
  if (ret == WT_NOTFOUND) return NotFound(std::string(what) + ": not found");
  // WiredTiger panics on a checksum failure: say "damaged, repair it", not "panic, reopen".
  const std::string damage = handler_ ? handler_->Damage() : std::string();
  if (ret == WT_TRY_SALVAGE || !damage.empty()) {
    if (ret == WT_PANIC) OnPanic(std::string(what) + ": " + wiredtiger_strerror(ret));
    return Damaged(damage);
  }
  if (ret == WT_PANIC) {
    OnPanic(std::string(what) + ": " + wiredtiger_strerror(ret));
    return PanicStatus();
  }
  if (ret == EBUSY) return Status(Code::kBusy, std::string(what) + ": " + wiredtiger_strerror(ret));
  return IOError(std::string(what) + " in " + options_.dir + ": " + wiredtiger_strerror(ret));
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
  // An empty batch has nothing to commit, but an empty kSync batch still syncs the journal
  // (every earlier write becomes durable): it joins the queue like any write.
  if (batch.empty() && durability != Durability::kSync) return Status::Ok();

  // Group commit without a hand-off (the writer-queue scheme of leveldb): the writer at the
  // head of the queue commits itself and every writer queued behind it, in one transaction
  // and one log flush, while the others wait for their result.
  std::unique_lock lock(queue_mu_);
  if (stopping_) return Status(Code::kClosed, "storage is closed");
  if (!committing_ && queue_.empty()) {
    // Nobody to wait for or to take along: commit this batch in place, uncopied. Writers
    // arriving meanwhile queue up behind it (committing_) and form the next group.
    committing_ = true;
    lock.unlock();
    Pending self;
    self.batch = &batch;
    self.durability = durability;
    const Pending* group[] = {&self};
    Status s = CommitGroup(*commit_state_, group, 1);
    lock.lock();
    committing_ = false;
    lock.unlock();
    queue_cv_.notify_all();
    return s;
  }

  auto pending = std::make_shared<Pending>();
  pending->copy = batch;
  pending->batch = &pending->copy;
  pending->durability = durability;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.commit_timeout_ms);
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
  // The queue keeps every member of the group alive until it is popped below.
  std::vector<const Pending*>& group = commit_state_->group;
  group.clear();
  size_t bytes = 0;
  for (auto it = queue_.begin(); it != queue_.end() && group.size() < options_.group_commit_batches_max; ++it) {
    if (!group.empty() && bytes + (*it)->batch->bytes() > options_.group_commit_bytes_max) break;
    bytes += (*it)->batch->bytes();
    (*it)->taken = true;
    group.push_back(it->get());
  }
  const size_t count = group.size();
  committing_ = true;
  lock.unlock();
  Status s = CommitGroup(*commit_state_, group.data(), count);
  lock.lock();
  for (size_t i = 0; i < count; ++i) {
    queue_.front()->status = s;
    queue_.front()->finished = true;
    queue_.pop_front();  // the group is the head of the queue, in order
  }
  committing_ = false;
  queue_cv_.notify_all();
  return pending->status;
}

Status WiredTigerStorage::CommitGroup(CommitState& state, const Pending* const* group, size_t count) {
  if (panicked_.load()) return PanicStatus();
  if (state.session == nullptr) {
    GEOKV_RETURN_IF_ERROR(CheckWt(conn_->open_session(conn_, nullptr, nullptr, &state.session),
                                  "opening commit session"));
  }
  WT_SESSION* session = state.session;
  auto& cursors = state.cursors;
  auto cursor_for = [&](const std::string& table) -> StatusOr<WT_CURSOR*> {
    for (const auto& [name, c] : cursors) {
      if (name == table) return c.get();
    }
    GEOKV_RETURN_IF_ERROR(EnsureTable(session, table));
    WT_CURSOR* c = nullptr;
    const std::string uri = "table:" + table;
    GEOKV_RETURN_IF_ERROR(CheckWt(session->open_cursor(session, uri.c_str(), nullptr, nullptr, &c),
                                  "opening cursor on " + table));
    cursors.emplace_back(table, CursorPtr(c));
    return c;
  };

  GEOKV_RETURN_IF_ERROR(CheckWt(session->begin_transaction(session, nullptr), "begin transaction"));
  bool sync = false, write = false;
  Status status;
  bool wrote = false;
  for (size_t i = 0; i < count; ++i) {
    const Pending* p = group[i];
    sync |= p->durability == Durability::kSync;
    write |= p->durability == Durability::kWrite;
    wrote |= !p->batch->empty();
    for (const auto& op : p->batch->ops()) {
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
      if (ret != 0) {  // the message is built only on failure: no allocation per op
        status = CheckWt(ret, op.is_delete ? "delete in " + op.table : "put in " + op.table);
        break;
      }
    }
    if (!status.ok()) break;
  }
  if (!status.ok()) {
    session->rollback_transaction(session, nullptr);
    return status;
  }
  // Without sync the commit inherits the connection's transaction_sync=(enabled=false), the
  // same as "sync=off" without parsing a configuration string on every commit.
  GEOKV_RETURN_IF_ERROR(CheckWt(session->commit_transaction(session, sync ? "sync=on" : nullptr),
                                "commit transaction"));
  if (sync) {
    // A transaction that wrote nothing writes no journal record, so its commit syncs
    // nothing: flush the journal explicitly (cheap when the commit just did).
    if (!wrote) GEOKV_RETURN_IF_ERROR(CheckWt(session->log_flush(session, "sync=on"), "journal sync"));
  }
  if (!sync && write) {
    // Hand the log records to the OS: survives a process crash without paying for an fsync.
    GEOKV_RETURN_IF_ERROR(CheckWt(session->log_flush(session, "sync=off"), "log flush"));
  }
  for (auto& [table, c] : cursors) c->reset(c.get());
  commits_.fetch_add(1, std::memory_order_relaxed);
  writes_.fetch_add(count, std::memory_order_relaxed);
  return Status::Ok();
}

Status WiredTigerStorage::OpenReadCursor(WT_SESSION* session, std::string_view table, WT_CURSOR** cursor) {
  const std::string name(table);
  GEOKV_RETURN_IF_ERROR(EnsureTable(session, name));
  return CheckWt(session->open_cursor(session, ("table:" + name).c_str(), nullptr, nullptr, cursor),
                 "opening cursor on " + name);
}

// Runs fn(cursor, table) with the cursor on `table` of a pooled reader session, then resets
// the cursor (releasing its page and snapshot) and returns the session. A cursor whose
// operation failed is closed rather than kept.
template <typename Fn>
Status WiredTigerStorage::WithReadCursor(std::string_view table, Fn&& fn) {
  if (closed_.load()) return Status(Code::kClosed, "storage is closed");
  if (panicked_.load()) return PanicStatus();
  GEOKV_RETURN_IF_ERROR(ValidateTable(table));
  int ret = 0;
  SessionPool::Reader* reader = readers_->Acquire(&ret);
  if (reader == nullptr) return CheckWt(ret, "opening session");
  struct Release {
    SessionPool* pool;
    SessionPool::Reader* r;
    ~Release() { pool->Release(r); }
  } release{readers_.get(), reader};
  WT_CURSOR* cursor = reader->Cached(table);
  if (cursor == nullptr) {
    GEOKV_RETURN_IF_ERROR(OpenReadCursor(reader->session, table, &cursor));
    reader->cursors.emplace_back(std::string(table), cursor);
  }
  Status s = fn(cursor, table);
  if (s.ok() || s.code() == Code::kNotFound) {
    if (cursor->reset(cursor) == 0) return s;
  }
  reader->Drop(table);
  return s;
}

StatusOr<std::string> WiredTigerStorage::Get(std::string_view table, std::string_view key) {
  if (key.empty()) return InvalidArgument("key is empty");
  std::string value;
  GEOKV_RETURN_IF_ERROR(WithReadCursor(table, [&](WT_CURSOR* c, std::string_view name) -> Status {
    WT_ITEM k = Item(key);
    c->set_key(c, &k);
    const int ret = c->search(c);
    if (ret == WT_NOTFOUND) return NotFound("no such key");
    if (ret != 0) return CheckWt(ret, "get in " + std::string(name));
    WT_ITEM v{};
    const int vret = c->get_value(c, &v);
    if (vret != 0) return CheckWt(vret, "reading value in " + std::string(name));
    value.assign(View(v));
    return Status::Ok();
  }));
  return value;
}

StatusOr<std::vector<Entry>> WiredTigerStorage::Scan(std::string_view table, std::string_view prefix,
                                                     std::string_view after, size_t limit) {
  std::vector<Entry> out;
  GEOKV_RETURN_IF_ERROR(WithReadCursor(table, [&](WT_CURSOR* cursor, std::string_view name) {
    return ScanCursor(cursor, std::string(name), prefix, after, limit, &out);
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
