// geokv.hpp: a header-only C++17 wrapper over the C ABI (geokv.h), in the spirit of cppzmq.
//
// Handles are move-only RAII objects; a failed call throws geokv::error carrying the
// GEOKV_E* code and the library's message; expected absence is std::optional. handle()
// returns the underlying C handle as an escape hatch.
//
// Thread-safety: as the C ABI. A geokv::db may be shared by threads (by reference), and
// db::close may race with calls on other threads: each of those finishes or throws
// geokv::error with GEOKV_ECLOSED, and none touches a freed handle (close returns once they
// have left the C ABI). Moving, assigning or destroying a db that other threads are using
// is still a bug of the caller. A geokv::iterator belongs to one thread at a time.
//
// A geokv::db is an embedded store (the constructors) or a cluster connection
// (db::connect). put/get/erase work on both; scan only on an embedded store; the
// operations of the replication modes (cas, add, set_*, mv_*, policy_*, status) only on a
// connection, else they throw geokv::error with GEOKV_EWRONGMODE.
#ifndef GEOKV_CAPI_INCLUDE_GEOKV_GEOKV_HPP_
#define GEOKV_CAPI_INCLUDE_GEOKV_GEOKV_HPP_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "geokv/geokv.h"

namespace geokv {

// A failed geokv call: code() is one of the GEOKV_E* values.
class error : public std::runtime_error {
 public:
  error(int code, const std::string& message)
      : std::runtime_error(std::string(geokv_strerror(code)) + ": " + message), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

namespace detail {
inline int check(int rc) {
  if (rc < 0) throw error(rc, geokv_errmsg());
  return rc;
}
inline const uint8_t* bytes(std::string_view s) noexcept {
  return reinterpret_cast<const uint8_t*>(s.data());
}
// Frees the geokv_list_t it holds when it goes out of scope.
struct list_guard {
  geokv_list_t* list = nullptr;
  ~list_guard() { geokv_list_free(list); }
};
inline std::vector<std::string> copy_list(const geokv_list_t* list) {
  std::vector<std::string> out;
  out.reserve(list->count);
  for (size_t i = 0; i < list->count; ++i) {
    out.emplace_back(reinterpret_cast<const char*>(list->items[i]), list->lengths[i]);
  }
  return out;
}
}  // namespace detail

// Options of db::open; every setter returns *this for chaining.
class options {
 public:
  options() noexcept : raw_(GEOKV_OPTIONS_INIT) {}
  options& durability(uint32_t d) noexcept { raw_.durability = d; return *this; }
  options& key_bytes_max(uint64_t n) noexcept { raw_.key_bytes_max = n; return *this; }
  options& value_bytes_max(uint64_t n) noexcept { raw_.value_bytes_max = n; return *this; }
  options& commit_timeout_ms(uint32_t ms) noexcept { raw_.commit_timeout_ms = ms; return *this; }
  // The string must outlive the db::open call.
  options& config_path(const char* path) noexcept { raw_.config_path = path; return *this; }
  const geokv_options_t* raw() const noexcept { return &raw_; }

 private:
  geokv_options_t raw_;
};

// Options of db::connect; every setter returns *this for chaining. The strings are copied.
class connect_options {
 public:
  connect_options() noexcept : raw_(GEOKV_CONNECT_OPTIONS_INIT) {}
  connect_options& timeout_ms(uint32_t ms) noexcept { raw_.timeout_ms = ms; return *this; }
  // CURVE: the nodes' public key (Z85; or one per endpoint, comma-separated) and this
  // client's key pair.
  connect_options& curve(std::string server_key, std::string public_key, std::string secret_key) {
    server_key_ = std::move(server_key);
    public_key_ = std::move(public_key);
    secret_key_ = std::move(secret_key);
    curve_ = true;
    return *this;
  }
  // Points into this object: valid while it lives and is not modified.
  const geokv_connect_options_t* raw() const noexcept {
    raw_.curve_server_key = curve_ ? server_key_.c_str() : nullptr;
    raw_.curve_public_key = curve_ ? public_key_.c_str() : nullptr;
    raw_.curve_secret_key = curve_ ? secret_key_.c_str() : nullptr;
    return &raw_;
  }

 private:
  mutable geokv_connect_options_t raw_;
  bool curve_ = false;
  std::string server_key_, public_key_, secret_key_;
};

// A prefix iteration. next() returns the next (key, value), valid until the next call.
class iterator {
 public:
  using entry = std::pair<std::string_view, std::string_view>;

  iterator() noexcept = default;
  explicit iterator(geokv_iter_t* raw) noexcept : raw_(raw) {}
  ~iterator() { geokv_iter_close(raw_); }
  iterator(iterator&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  iterator& operator=(iterator&& other) noexcept {
    if (this != &other) {
      geokv_iter_close(raw_);
      raw_ = std::exchange(other.raw_, nullptr);
    }
    return *this;
  }
  iterator(const iterator&) = delete;
  iterator& operator=(const iterator&) = delete;

  std::optional<entry> next() {
    const uint8_t *k = nullptr, *v = nullptr;
    size_t kn = 0, vn = 0;
    if (detail::check(geokv_iter_next(raw_, &k, &kn, &v, &vn)) == GEOKV_DONE) return std::nullopt;
    return entry{std::string_view(reinterpret_cast<const char*>(k), kn),
                 std::string_view(reinterpret_cast<const char*>(v), vn)};
  }

  geokv_iter_t* handle() const noexcept { return raw_; }

 private:
  geokv_iter_t* raw_ = nullptr;
};

// An open database: an embedded node, or a connection to a cluster (db::connect).
class db {
 public:
  db() noexcept = default;
  // Takes ownership of a handle from geokv_open or geokv_connect.
  explicit db(geokv_db_t* raw) noexcept : raw_(raw) {}
  // Connects to a cluster: endpoints are comma-separated client endpoints
  // ("tcp://127.0.0.1:7200,tcp://127.0.0.1:7201"). Does not wait for a node.
  static db connect(const std::string& endpoints, const connect_options& opts = connect_options()) {
    geokv_db_t* raw = nullptr;
    detail::check(geokv_connect(&raw, endpoints.c_str(), opts.raw()));
    return db(raw);
  }
  explicit db(const std::string& path, const options& opts = options()) : db(path.c_str(), opts) {}
  // path may be nullptr when opts.config_path names a data_dir.
  explicit db(const char* path, const options& opts = options()) {
    geokv_db_t* raw = nullptr;
    detail::check(geokv_open(&raw, path, opts.raw()));
    raw_.store(raw);
  }
  ~db() { close_quietly(); }
  db(db&& other) noexcept
      : raw_(other.raw_.exchange(nullptr)), closed_(other.closed_.exchange(false)) {}
  db& operator=(db&& other) noexcept {
    if (this != &other) {
      close_quietly();
      raw_.store(other.raw_.exchange(nullptr));
      closed_.store(other.closed_.exchange(false));
    }
    return *this;
  }
  db(const db&) = delete;
  db& operator=(const db&) = delete;

  void put(std::string_view key, std::string_view value) {
    detail::check(with_handle([&](geokv_db_t* h) {
      return geokv_put(h, detail::bytes(key), key.size(), detail::bytes(value), value.size());
    }));
  }

  std::optional<std::string> get(std::string_view key) {
    uint8_t* value = nullptr;
    size_t len = 0;
    int rc = with_handle([&](geokv_db_t* h) {
      return geokv_get(&value, &len, h, detail::bytes(key), key.size());
    });
    if (rc == GEOKV_ENOTFOUND) return std::nullopt;
    detail::check(rc);
    std::string out(reinterpret_cast<const char*>(value), len);
    geokv_free(value);
    return out;
  }

  void erase(std::string_view key) {
    detail::check(with_handle([&](geokv_db_t* h) {
      return geokv_delete(h, detail::bytes(key), key.size());
    }));
  }

  iterator scan(std::string_view prefix = {}) {
    geokv_iter_t* it = nullptr;
    detail::check(with_handle([&](geokv_db_t* h) {
      return geokv_iter_open(&it, h, detail::bytes(prefix), prefix.size());
    }));
    return iterator(it);
  }

  // ---- cluster connections only (an embedded store throws GEOKV_EWRONGMODE) ----

  // Compare-and-set on a strong key: stores value when the key holds *expected (or is
  // absent, for std::nullopt). true when stored, false when the current value differs.
  bool cas(std::string_view key, std::optional<std::string_view> expected, std::string_view value) {
    const uint8_t* e = expected ? detail::bytes(*expected) : nullptr;
    const size_t elen = expected ? expected->size() : 0;
    // A non-NULL pointer for an empty expected value: NULL would mean "absent".
    static const uint8_t kEmpty = 0;
    if (expected && e == nullptr) e = &kEmpty;
    int rc = with_handle([&](geokv_db_t* h) {
      return geokv_cas(h, detail::bytes(key), key.size(), e, elen, detail::bytes(value), value.size());
    });
    if (rc == GEOKV_ECONFLICT) return false;
    detail::check(rc);
    return true;
  }

  // Adds delta to a strong or counter key; the value after the add (counter: as the
  // answering region sees it).
  int64_t add(std::string_view key, int64_t delta) {
    int64_t result = 0;
    detail::check(with_handle([&](geokv_db_t* h) {
      return geokv_add(&result, h, detail::bytes(key), key.size(), delta);
    }));
    return result;
  }

  void set_add(std::string_view key, std::string_view element) {
    detail::check(with_handle([&](geokv_db_t* h) {
      return geokv_set_add(h, detail::bytes(key), key.size(), detail::bytes(element), element.size());
    }));
  }
  void set_remove(std::string_view key, std::string_view element) {
    detail::check(with_handle([&](geokv_db_t* h) {
      return geokv_set_remove(h, detail::bytes(key), key.size(), detail::bytes(element), element.size());
    }));
  }
  bool set_contains(std::string_view key, std::string_view element) {
    int present = 0;
    detail::check(with_handle([&](geokv_db_t* h) {
      return geokv_set_contains(&present, h, detail::bytes(key), key.size(), detail::bytes(element),
                                     element.size());
    }));
    return present != 0;
  }
  // The members in byte order.
  std::vector<std::string> set_members(std::string_view key) {
    detail::list_guard members;
    detail::check(with_handle([&](geokv_db_t* h) {
      return geokv_set_members(&members.list, h, detail::bytes(key), key.size());
    }));
    return detail::copy_list(members.list);
  }

  // A multi-value register as the answering region sees it: its concurrent values (none
  // when absent) and the causal context to hand to the next mv_put / mv_delete.
  struct mv_read {
    std::vector<std::string> values;
    std::string context;
  };
  mv_read mv_get(std::string_view key) {
    detail::list_guard values;
    uint8_t* context = nullptr;
    size_t context_len = 0;
    detail::check(with_handle([&](geokv_db_t* h) {
      return geokv_mv_get(&values.list, &context, &context_len, h, detail::bytes(key), key.size());
    }));
    struct release {
      uint8_t* p;
      ~release() { geokv_free(p); }
    } guard{context};
    return mv_read{detail::copy_list(values.list), std::string(reinterpret_cast<const char*>(context), context_len)};
  }
  // Replaces the values `context` (from mv_get; empty: none) covers with value.
  void mv_put(std::string_view key, std::string_view value, std::string_view context = {}) {
    detail::check(with_handle([&](geokv_db_t* h) {
      return geokv_mv_put(h, detail::bytes(key), key.size(), detail::bytes(value), value.size(),
                               detail::bytes(context), context.size());
    }));
  }
  void mv_delete(std::string_view key, std::string_view context = {}) {
    detail::check(with_handle([&](geokv_db_t* h) {
      return geokv_mv_delete(h, detail::bytes(key), key.size(), detail::bytes(context), context.size());
    }));
  }

  // Keys under prefix use mode ("strong", "lww", "mvreg", "counter", "set"); an empty
  // prefix sets the default.
  void policy_set(std::string_view prefix, const std::string& mode) {
    detail::check(with_handle([&](geokv_db_t* h) {
      return geokv_policy_set(h, detail::bytes(prefix), prefix.size(), mode.c_str());
    }));
  }
  // Admin: node `node`'s state in the cluster map ("draining", "up", "down", "removed");
  // see geokv_node_set_state.
  void node_set_state(uint32_t node, const std::string& state) {
    detail::check(with_handle([&](geokv_db_t* h) { return geokv_node_set_state(h, node, state.c_str()); }));
  }
  // false when there was no rule for exactly prefix.
  bool policy_remove(std::string_view prefix) {
    int rc = with_handle([&](geokv_db_t* h) {
      return geokv_policy_remove(h, detail::bytes(prefix), prefix.size());
    });
    if (rc == GEOKV_ENOTFOUND) return false;
    detail::check(rc);
    return true;
  }
  // (prefix, mode) rules; the first has the empty prefix and the default mode.
  std::vector<std::pair<std::string, std::string>> policy_list() {
    detail::list_guard prefixes, modes;
    detail::check(with_handle([&](geokv_db_t* h) {
      return geokv_policy_list(&prefixes.list, &modes.list, h);
    }));
    std::vector<std::pair<std::string, std::string>> out;
    out.reserve(prefixes.list->count);
    for (size_t i = 0; i < prefixes.list->count && i < modes.list->count; ++i) {
      out.emplace_back(std::string(reinterpret_cast<const char*>(prefixes.list->items[i]), prefixes.list->lengths[i]),
                       std::string(reinterpret_cast<const char*>(modes.list->items[i]), modes.list->lengths[i]));
    }
    return out;
  }
  // The answering node's view of the cluster, for people.
  std::vector<std::string> status() {
    detail::list_guard lines;
    detail::check(with_handle([&](geokv_db_t* h) {
      return geokv_status(&lines.list, h);
    }));
    return detail::copy_list(lines.list);
  }

  // Closes now (the destructor would otherwise); throws if closing fails. Calls on other
  // threads finish or throw GEOKV_ECLOSED; close returns once none of them is inside the C
  // ABI with this handle (each call is bounded by its own deadline). A second close does
  // nothing.
  void close() {
    closed_.store(true);
    geokv_db_t* raw = raw_.exchange(nullptr);
    if (raw == nullptr) return;
    const int rc = geokv_close(raw);
    drain();
    detail::check(rc);
  }

  // false once closed (or moved from).
  explicit operator bool() const noexcept { return raw_.load() != nullptr; }
  // The C handle; nullptr once closed. Not protected against a concurrent close.
  geokv_db_t* handle() const noexcept { return raw_.load(); }

 private:
  // Counts a call in flight while it uses the C handle, so that close can wait for it.
  class call_guard {
   public:
    explicit call_guard(const db& d) noexcept : d_(d) { d_.calls_.fetch_add(1); }
    ~call_guard() { d_.calls_.fetch_sub(1); }
    call_guard(const call_guard&) = delete;
    call_guard& operator=(const call_guard&) = delete;

   private:
    const db& d_;
  };

  // Runs fn(handle) with the C handle, or throws GEOKV_ECLOSED once closed. The counter is
  // raised before the handle is read: close takes the handle away first and then waits for
  // the counter, so a call either sees no handle or is waited for.
  template <typename Fn>
  int with_handle(Fn&& fn) {
    call_guard guard(*this);
    geokv_db_t* raw = raw_.load();
    if (raw == nullptr) {
      if (closed_.load()) throw error(GEOKV_ECLOSED, "db handle was already closed");
      throw error(GEOKV_EINVAL, "db handle is NULL (default-constructed or moved from)");
    }
    return fn(raw);
  }

  void drain() const noexcept {
    for (int spins = 0; calls_.load() != 0; ++spins) {
      if (spins < 100) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  }

  void close_quietly() noexcept {
    closed_.store(true);
    geokv_db_t* raw = raw_.exchange(nullptr);
    if (raw == nullptr) return;
    geokv_close(raw);
    drain();
  }

  std::atomic<geokv_db_t*> raw_{nullptr};
  std::atomic<bool> closed_{false};  // close() was called: calls answer GEOKV_ECLOSED
  mutable std::atomic<int> calls_{0};  // calls between reading raw_ and leaving the C ABI
};

// What repair() did (geokv_repair): damaged tables rebuilt (0: the store was sound) and
// keys readable afterwards.
struct repair_report {
  uint64_t tables_salvaged = 0;
  uint64_t keys_kept = 0;
};

// Repairs the damaged store in `path`, which no handle may hold open (geokv_repair).
inline repair_report repair(const std::string& path) {
  repair_report r;
  detail::check(geokv_repair(&r.tables_salvaged, &r.keys_kept, path.c_str()));
  return r;
}

// The process-wide level of geokv's log (GEOKV_LOG_*; geokv_log_set_level).
inline void set_log_level(int level) { detail::check(geokv_log_set_level(level)); }
inline int log_level() noexcept { return geokv_log_level(); }

}  // namespace geokv

#endif  // GEOKV_CAPI_INCLUDE_GEOKV_GEOKV_HPP_
