// The C ABI over geokv::Node. Every extern "C" body runs inside Guard(), so no exception
// crosses the ABI; every error leaves its message in the calling thread's errmsg.
#include "geokv/geokv.h"

#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/node.h"

struct geokv_db {
  std::mutex mu;
  std::shared_ptr<geokv::Node> node;  // guarded by mu; null once closed
};

struct geokv_iter {
  std::shared_ptr<geokv::Node> node;  // keeps the Node object alive; it may be closed
  std::string prefix;
  std::string last_key;               // resume point of the next page
  std::vector<geokv::storage::Entry> page;
  size_t next = 0;                    // index into page
  bool exhausted = false;
};

namespace {

thread_local std::string t_errmsg;

int Fail(int code, std::string message) {
  t_errmsg = std::move(message);
  return code;
}

int Ok() {
  t_errmsg.clear();
  return GEOKV_OK;
}

int CodeOf(geokv::Code code) {
  using geokv::Code;
  switch (code) {
    case Code::kOk: return GEOKV_OK;
    case Code::kNotFound: return GEOKV_ENOTFOUND;
    case Code::kInvalidArgument: return GEOKV_EINVAL;
    case Code::kKeyTooLarge: return GEOKV_EKEYSIZE;
    case Code::kValueTooLarge: return GEOKV_EVALSIZE;
    case Code::kWrongMode: return GEOKV_EWRONGMODE;
    case Code::kIOError: return GEOKV_EIO;
    case Code::kCorruption: return GEOKV_ECORRUPT;
    case Code::kBusy: return GEOKV_EBUSY;
    case Code::kClosed: return GEOKV_ECLOSED;
    case Code::kPanic: return GEOKV_EPANIC;
    case Code::kUnavailable: return GEOKV_EUNAVAILABLE;
    case Code::kTimeout: return GEOKV_ETIMEOUT;
    case Code::kConfig: return GEOKV_ECONFIG;
    case Code::kVersion: return GEOKV_EVERSION;
    case Code::kConflict: return GEOKV_ECONFLICT;
    case Code::kInternal: return GEOKV_EINTERNAL;
  }
  return GEOKV_EINTERNAL;
}

int FromStatus(const geokv::Status& s) {
  if (s.ok()) return Ok();
  return Fail(CodeOf(s.code()), s.message());
}

template <typename Fn>
int Guard(Fn&& fn) noexcept {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return Fail(GEOKV_ENOMEM, "out of memory");
  } catch (const std::exception& e) {
    return Fail(GEOKV_EINTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return Fail(GEOKV_EINTERNAL, "internal error: unknown exception");
  }
}

// Tracks which handle pointers are live, and remembers recently closed ones (keeping their
// memory) so that use-after-close and double close get GEOKV_ECLOSED instead of touching
// freed memory. Beyond kClosedRemembered, the oldest closed handles are freed.
template <typename T>
class Registry {
 public:
  T* Add(std::unique_ptr<T> handle) {
    std::lock_guard lock(mu_);
    T* raw = handle.release();
    live_.insert(raw);
    return raw;
  }
  // GEOKV_OK when live, GEOKV_ECLOSED when recently closed, GEOKV_EINVAL otherwise.
  int Check(const T* handle, const char* what) const {
    std::lock_guard lock(mu_);
    if (live_.count(const_cast<T*>(handle)) != 0) return GEOKV_OK;
    for (const auto& closed : closed_) {
      if (closed.get() == handle) return Fail(GEOKV_ECLOSED, std::string(what) + " was already closed");
    }
    return Fail(GEOKV_EINVAL, std::string(what) + " is not a live geokv handle");
  }
  // Moves a live handle to the closed list; false when it was not live.
  bool Retire(T* handle) {
    std::lock_guard lock(mu_);
    if (live_.erase(handle) == 0) return false;
    closed_.emplace_back(handle);
    if (closed_.size() > kClosedRemembered) closed_.pop_front();
    return true;
  }

 private:
  static constexpr size_t kClosedRemembered = 4096;
  mutable std::mutex mu_;
  std::unordered_set<T*> live_;
  std::deque<std::unique_ptr<T>> closed_;
};

Registry<geokv_db>& Dbs() {
  static auto* registry = new Registry<geokv_db>();  // never destroyed: handles may outlive exit
  return *registry;
}
Registry<geokv_iter>& Iters() {
  static auto* registry = new Registry<geokv_iter>();
  return *registry;
}

// Resolves a db handle to its Node, or fails with the right code.
int NodeOf(geokv_db_t* db, std::shared_ptr<geokv::Node>* node) {
  if (db == nullptr) return Fail(GEOKV_EINVAL, "db handle is NULL");
  int rc = Dbs().Check(db, "db handle");
  if (rc != GEOKV_OK) return rc;
  std::lock_guard lock(db->mu);
  if (!db->node) return Fail(GEOKV_ECLOSED, "db handle was already closed");
  *node = db->node;
  return GEOKV_OK;
}

int CheckBytes(const uint8_t* p, size_t len, const char* what) {
  if (p == nullptr && len > 0) return Fail(GEOKV_EINVAL, std::string(what) + " is NULL");
  return GEOKV_OK;
}

std::string_view View(const uint8_t* p, size_t len) {
  return len == 0 ? std::string_view() : std::string_view(reinterpret_cast<const char*>(p), len);
}

int BuildConfig(geokv::Config* config, const char* path, const geokv_options_t* options) {
  if (options != nullptr && (options->version < 1 || options->version > GEOKV_OPTIONS_VERSION)) {
    return Fail(GEOKV_EVERSION, "options version " + std::to_string(options->version) +
                                    " is unknown to this library (it knows 1.." +
                                    std::to_string(GEOKV_OPTIONS_VERSION) + ")");
  }
  if (options != nullptr && options->config_path != nullptr) {
    auto loaded = geokv::Config::LoadFile(options->config_path);
    if (!loaded.ok()) return FromStatus(loaded.status());
    *config = *loaded;
  }
  if (path != nullptr) config->data_dir = path;
  if (config->data_dir.empty()) {
    return Fail(GEOKV_EINVAL, "no data directory: pass a path or a config file with data_dir");
  }
  if (options != nullptr) {
    switch (options->durability) {
      case GEOKV_DURABILITY_DEFAULT: break;
      case GEOKV_DURABILITY_SYNC: config->durability = geokv::storage::Durability::kSync; break;
      case GEOKV_DURABILITY_WRITE: config->durability = geokv::storage::Durability::kWrite; break;
      case GEOKV_DURABILITY_NONE: config->durability = geokv::storage::Durability::kNone; break;
      default:
        return Fail(GEOKV_EINVAL, "options.durability " + std::to_string(options->durability) + " is unknown");
    }
    if (options->key_bytes_max != 0) config->limits.key_bytes_max = options->key_bytes_max;
    if (options->value_bytes_max != 0) config->limits.value_bytes_max = options->value_bytes_max;
    if (options->commit_timeout_ms != 0) config->commit_timeout_ms = options->commit_timeout_ms;
  }
  geokv::Status valid = config->Validate();
  if (!valid.ok()) return Fail(GEOKV_EINVAL, "options: " + valid.message());
  return GEOKV_OK;
}

}  // namespace

extern "C" {

int geokv_version(void) { return GEOKV_VERSION_NUMBER; }

const char* geokv_version_string(void) {
#define GEOKV_STR2(x) #x
#define GEOKV_STR(x) GEOKV_STR2(x)
  return GEOKV_STR(GEOKV_VERSION_MAJOR) "." GEOKV_STR(GEOKV_VERSION_MINOR) "." GEOKV_STR(GEOKV_VERSION_PATCH);
#undef GEOKV_STR
#undef GEOKV_STR2
}

const char* geokv_errmsg(void) { return t_errmsg.c_str(); }

const char* geokv_strerror(int code) {
  switch (code) {
    case GEOKV_OK: return "GEOKV_OK";
    case GEOKV_DONE: return "GEOKV_DONE";
    case GEOKV_ENOTFOUND: return "GEOKV_ENOTFOUND";
    case GEOKV_EINVAL: return "GEOKV_EINVAL";
    case GEOKV_EKEYSIZE: return "GEOKV_EKEYSIZE";
    case GEOKV_EVALSIZE: return "GEOKV_EVALSIZE";
    case GEOKV_EWRONGMODE: return "GEOKV_EWRONGMODE";
    case GEOKV_EIO: return "GEOKV_EIO";
    case GEOKV_ECORRUPT: return "GEOKV_ECORRUPT";
    case GEOKV_EBUSY: return "GEOKV_EBUSY";
    case GEOKV_ECLOSED: return "GEOKV_ECLOSED";
    case GEOKV_EPANIC: return "GEOKV_EPANIC";
    case GEOKV_EUNAVAILABLE: return "GEOKV_EUNAVAILABLE";
    case GEOKV_ETIMEOUT: return "GEOKV_ETIMEOUT";
    case GEOKV_ECONFIG: return "GEOKV_ECONFIG";
    case GEOKV_EVERSION: return "GEOKV_EVERSION";
    case GEOKV_ECONFLICT: return "GEOKV_ECONFLICT";
    case GEOKV_ENOMEM: return "GEOKV_ENOMEM";
    case GEOKV_EINTERNAL: return "GEOKV_EINTERNAL";
    default: return "GEOKV_E(unknown)";
  }
}

int geokv_open(geokv_db_t** db, const char* path, const geokv_options_t* options) {
  return Guard([&] {
    if (db == nullptr) return Fail(GEOKV_EINVAL, "db out-pointer is NULL");
    geokv::Config config;
    int rc = BuildConfig(&config, path, options);
    if (rc != GEOKV_OK) return rc;
    auto node = geokv::Node::Open(config);
    if (!node.ok()) return FromStatus(node.status());
    auto handle = std::make_unique<geokv_db>();
    handle->node = std::shared_ptr<geokv::Node>(std::move(node).value());
    *db = Dbs().Add(std::move(handle));
    return Ok();
  });
}

int geokv_close(geokv_db_t* db) {
  return Guard([&] {
    if (db == nullptr) return Ok();
    int rc = Dbs().Check(db, "db handle");
    if (rc != GEOKV_OK) return rc;
    std::shared_ptr<geokv::Node> node;
    {
      std::lock_guard lock(db->mu);
      node = std::move(db->node);
    }
    if (!Dbs().Retire(db) || !node) return Fail(GEOKV_ECLOSED, "db handle was already closed");
    return FromStatus(node->Close());
  });
}

int geokv_put(geokv_db_t* db, const uint8_t* key, size_t key_len, const uint8_t* value,
              size_t value_len) {
  return Guard([&] {
    std::shared_ptr<geokv::Node> node;
    int rc = NodeOf(db, &node);
    if (rc == GEOKV_OK) rc = CheckBytes(key, key_len, "key");
    if (rc == GEOKV_OK) rc = CheckBytes(value, value_len, "value");
    if (rc != GEOKV_OK) return rc;
    return FromStatus(node->Put(View(key, key_len), View(value, value_len)));
  });
}

int geokv_get(uint8_t** value, size_t* value_len, geokv_db_t* db, const uint8_t* key,
              size_t key_len) {
  return Guard([&] {
    if (value == nullptr || value_len == nullptr) return Fail(GEOKV_EINVAL, "value out-pointer is NULL");
    std::shared_ptr<geokv::Node> node;
    int rc = NodeOf(db, &node);
    if (rc == GEOKV_OK) rc = CheckBytes(key, key_len, "key");
    if (rc != GEOKV_OK) return rc;
    auto got = node->Get(View(key, key_len));
    if (!got.ok()) return FromStatus(got.status());
    auto* bytes = static_cast<uint8_t*>(std::malloc(got->size() == 0 ? 1 : got->size()));
    if (bytes == nullptr) return Fail(GEOKV_ENOMEM, "out of memory copying the value");
    std::memcpy(bytes, got->data(), got->size());
    *value = bytes;
    *value_len = got->size();
    return Ok();
  });
}

int geokv_delete(geokv_db_t* db, const uint8_t* key, size_t key_len) {
  return Guard([&] {
    std::shared_ptr<geokv::Node> node;
    int rc = NodeOf(db, &node);
    if (rc == GEOKV_OK) rc = CheckBytes(key, key_len, "key");
    if (rc != GEOKV_OK) return rc;
    return FromStatus(node->Delete(View(key, key_len)));
  });
}

void geokv_free(void* bytes) { std::free(bytes); }

int geokv_iter_open(geokv_iter_t** iter, geokv_db_t* db, const uint8_t* prefix, size_t prefix_len) {
  return Guard([&] {
    if (iter == nullptr) return Fail(GEOKV_EINVAL, "iter out-pointer is NULL");
    auto handle = std::make_unique<geokv_iter>();
    int rc = NodeOf(db, &handle->node);
    if (rc == GEOKV_OK) rc = CheckBytes(prefix, prefix_len, "prefix");
    if (rc != GEOKV_OK) return rc;
    handle->prefix.assign(View(prefix, prefix_len));
    *iter = Iters().Add(std::move(handle));
    return Ok();
  });
}

int geokv_iter_next(geokv_iter_t* iter, const uint8_t** key, size_t* key_len, const uint8_t** value,
                    size_t* value_len) {
  return Guard([&] {
    if (iter == nullptr) return Fail(GEOKV_EINVAL, "iter handle is NULL");
    if (key == nullptr || key_len == nullptr || value == nullptr || value_len == nullptr) {
      return Fail(GEOKV_EINVAL, "an out-pointer of geokv_iter_next is NULL");
    }
    int rc = Iters().Check(iter, "iter handle");
    if (rc != GEOKV_OK) return rc;
    if (iter->next >= iter->page.size()) {
      if (iter->exhausted) return Fail(GEOKV_DONE, "");
      constexpr size_t kPageEntries = 256;
      auto page = iter->node->Scan(iter->prefix, iter->last_key, kPageEntries);
      if (!page.ok()) return FromStatus(page.status());
      iter->page = std::move(page).value();
      iter->next = 0;
      if (iter->page.size() < kPageEntries) iter->exhausted = true;
      if (iter->page.empty()) return Fail(GEOKV_DONE, "");
      iter->last_key = iter->page.back().key;
    }
    const auto& e = iter->page[iter->next++];
    *key = reinterpret_cast<const uint8_t*>(e.key.data());
    *key_len = e.key.size();
    *value = reinterpret_cast<const uint8_t*>(e.value.data());
    *value_len = e.value.size();
    return Ok();
  });
}

int geokv_iter_close(geokv_iter_t* iter) {
  return Guard([&] {
    if (iter == nullptr) return Ok();
    int rc = Iters().Check(iter, "iter handle");
    if (rc != GEOKV_OK) return rc;
    if (!Iters().Retire(iter)) return Fail(GEOKV_ECLOSED, "iter handle was already closed");
    iter->node.reset();
    iter->page.clear();
    iter->page.shrink_to_fit();
    return Ok();
  });
}

}  // extern "C"
