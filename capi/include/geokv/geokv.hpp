// geokv.hpp: a header-only C++17 wrapper over the C ABI (geokv.h), in the spirit of cppzmq.
//
// Handles are move-only RAII objects; a failed call throws geokv::error carrying the
// GEOKV_E* code and the library's message; expected absence is std::optional. handle()
// returns the underlying C handle as an escape hatch.
//
// Thread-safety: as the C ABI. A geokv::db may be shared by threads (by reference); a
// geokv::iterator belongs to one thread at a time.
#ifndef GEOKV_CAPI_INCLUDE_GEOKV_GEOKV_HPP_
#define GEOKV_CAPI_INCLUDE_GEOKV_GEOKV_HPP_

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

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

// An open database (an embedded node).
class db {
 public:
  db() noexcept = default;
  explicit db(const std::string& path, const options& opts = options()) : db(path.c_str(), opts) {}
  // path may be nullptr when opts.config_path names a data_dir.
  explicit db(const char* path, const options& opts = options()) {
    detail::check(geokv_open(&raw_, path, opts.raw()));
  }
  ~db() { geokv_close(raw_); }
  db(db&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  db& operator=(db&& other) noexcept {
    if (this != &other) {
      geokv_close(raw_);
      raw_ = std::exchange(other.raw_, nullptr);
    }
    return *this;
  }
  db(const db&) = delete;
  db& operator=(const db&) = delete;

  void put(std::string_view key, std::string_view value) {
    detail::check(geokv_put(raw_, detail::bytes(key), key.size(), detail::bytes(value), value.size()));
  }

  std::optional<std::string> get(std::string_view key) {
    uint8_t* value = nullptr;
    size_t len = 0;
    int rc = geokv_get(&value, &len, raw_, detail::bytes(key), key.size());
    if (rc == GEOKV_ENOTFOUND) return std::nullopt;
    detail::check(rc);
    std::string out(reinterpret_cast<const char*>(value), len);
    geokv_free(value);
    return out;
  }

  void erase(std::string_view key) {
    detail::check(geokv_delete(raw_, detail::bytes(key), key.size()));
  }

  iterator scan(std::string_view prefix = {}) {
    geokv_iter_t* it = nullptr;
    detail::check(geokv_iter_open(&it, raw_, detail::bytes(prefix), prefix.size()));
    return iterator(it);
  }

  // Closes now (the destructor would otherwise); throws if closing fails.
  void close() { detail::check(geokv_close(std::exchange(raw_, nullptr))); }

  explicit operator bool() const noexcept { return raw_ != nullptr; }
  geokv_db_t* handle() const noexcept { return raw_; }

 private:
  geokv_db_t* raw_ = nullptr;
};

}  // namespace geokv

#endif  // GEOKV_CAPI_INCLUDE_GEOKV_GEOKV_HPP_
