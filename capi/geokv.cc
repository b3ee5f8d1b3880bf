// The C ABI over geokv::Node (an embedded store, geokv_open) and geokv::Client (a cluster,
// geokv_connect). Every extern "C" body runs inside Guard(), so no exception crosses the
// ABI; every error leaves its message in the calling thread's errmsg.
#include "geokv/geokv.h"

#include <netdb.h>
#include <pthread.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
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

#include "core/server/client.h"
#include "core/server/config.h"
#include "core/server/log.h"
#include "core/server/node.h"
#include "core/storage/wiredtiger_storage.h"
#include "core/engine/policy.h"
#include "core/engine/request.h"
#include "core/server/server.h"
#include "replication/crdt/causal_context.h"
#include "replication/crdt/codec.h"

namespace {
// Bumped in the child after every fork(): a handle made in an earlier generation was
// inherited, and belongs to the parent.
std::atomic<uint64_t> g_fork_generation{0};
void OnForkChild() { g_fork_generation.fetch_add(1); }
uint64_t ForkGeneration() {
  static const int registered = pthread_atfork(nullptr, nullptr, OnForkChild);
  (void)registered;
  return g_fork_generation.load();
}
}  // namespace

// Exactly one of node (geokv_open) and client (geokv_connect) is set while the handle is
// open; both are null once closed. Shared pointers let a call in flight finish after a
// concurrent close dropped the handle's reference (the Node itself waits for calls inside
// its storage before closing it).
struct geokv_db {
  const uint64_t generation = ForkGeneration();  // of the process that made the handle
  std::mutex mu;
  std::shared_ptr<geokv::Node> node;      // guarded by mu
  std::shared_ptr<geokv::Client> client;  // guarded by mu
  // geokv_open with a config that has a [cluster] section: this process is one node of
  // the cluster, and `client` talks to it.
  std::shared_ptr<geokv::Server> server;  // guarded by mu
};

struct geokv_iter {
  const uint64_t generation = ForkGeneration();
  std::mutex mu;                      // serializes next and close on one iterator
  std::shared_ptr<geokv::Node> node;  // keeps the Node object alive; it may be closed
  std::string prefix;
  std::string last_key;               // resume point of the next page
  std::vector<geokv::storage::Entry> page;
  size_t next = 0;                    // index into page
  bool exhausted = false;
};

namespace {

thread_local std::string t_errmsg;

// Messages are one line of text: a key with a NUL or control bytes (which a node may
// quote) is printed escaped, so it cannot cut the C string short or split the line.
std::string Printable(std::string message) {
  if (std::none_of(message.begin(), message.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
      })) {
    return message;
  }
  std::string out;
  out.reserve(message.size() + 16);
  for (char c : message) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

int Fail(int code, std::string message) {
  t_errmsg = Printable(std::move(message));
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
    case Code::kPermissionDenied: return GEOKV_EPERM;
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

constexpr char kForked[] =
    "this handle was opened by the parent process before fork(); open a new handle in this process";

bool Inherited(uint64_t generation) { return generation != ForkGeneration(); }

constexpr char kEmbeddedHasNoModes[] = "an embedded store holds plain keys; connect to a cluster for modes";

// Resolves a db handle to its Node or its Client (one of the two is set on GEOKV_OK), or
// fails with the right code.
int Resolve(geokv_db_t* db, std::shared_ptr<geokv::Node>* node, std::shared_ptr<geokv::Client>* client) {
  if (db == nullptr) return Fail(GEOKV_EINVAL, "db handle is NULL");
  int rc = Dbs().Check(db, "db handle");
  if (rc != GEOKV_OK) return rc;
  if (Inherited(db->generation)) return Fail(GEOKV_EFORKED, kForked);
  std::lock_guard lock(db->mu);
  if (!db->node && !db->client) return Fail(GEOKV_ECLOSED, "db handle was already closed");
  *node = db->node;
  *client = db->client;
  return GEOKV_OK;
}

// Resolves a db handle to its Node; a connected handle is GEOKV_EWRONGMODE.
int NodeOf(geokv_db_t* db, std::shared_ptr<geokv::Node>* node) {
  std::shared_ptr<geokv::Client> client;
  int rc = Resolve(db, node, &client);
  if (rc != GEOKV_OK) return rc;
  if (client) {
    return Fail(GEOKV_EWRONGMODE, "a cluster connection offers no ordered iteration; iterate an embedded store");
  }
  return GEOKV_OK;
}

// Resolves a db handle to its Client; an embedded handle is GEOKV_EWRONGMODE.
int ClientOf(geokv_db_t* db, std::shared_ptr<geokv::Client>* client) {
  std::shared_ptr<geokv::Node> node;
  int rc = Resolve(db, &node, client);
  if (rc != GEOKV_OK) return rc;
  if (node) return Fail(GEOKV_EWRONGMODE, kEmbeddedHasNoModes);
  return GEOKV_OK;
}

int CheckBytes(const uint8_t* p, size_t len, const char* what) {
  if (p == nullptr && len > 0) return Fail(GEOKV_EINVAL, std::string(what) + " is NULL");
  return GEOKV_OK;
}

// The largest key_bytes_max a node accepts (core/config.h); longer keys are refused here,
// shorter ones by the node against its own limit.
constexpr size_t kClusterKeyBytesMax = 65536;
// What fits in one client protocol message with a maximal key and room for the envelope;
// a node refuses more than its own value_bytes_max (default 1 MiB) anyway.
constexpr size_t kClusterValueBytesMax = geokv::kMessageBytesMax - 128 * 1024;

// A key sent to a cluster: 1..kClusterKeyBytesMax bytes.
int CheckClusterKey(const uint8_t* key, size_t len, const char* what) {
  if (key == nullptr && len > 0) return Fail(GEOKV_EINVAL, std::string(what) + " is NULL");
  if (len == 0) return Fail(GEOKV_EINVAL, std::string(what) + " is empty");
  if (len > kClusterKeyBytesMax) {
    return Fail(GEOKV_EKEYSIZE, std::string(what) + " is " + std::to_string(len) + " bytes; no cluster accepts more than " +
                                    std::to_string(kClusterKeyBytesMax));
  }
  return GEOKV_OK;
}

int CheckClusterValue(const uint8_t* value, size_t len, const char* what) {
  if (value == nullptr && len > 0) return Fail(GEOKV_EINVAL, std::string(what) + " is NULL");
  if (len > kClusterValueBytesMax) {
    return Fail(GEOKV_EVALSIZE, std::string(what) + " is " + std::to_string(len) +
                                    " bytes; a client message carries at most " + std::to_string(kClusterValueBytesMax));
  }
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
        return Fail(GEOKV_ECONFIG, "options.durability " + std::to_string(options->durability) +
                                       " is unknown (GEOKV_DURABILITY_DEFAULT, _SYNC, _WRITE or _NONE)");
    }
    if (options->key_bytes_max > geokv::Limits::kKeyBytesCeiling) {
      return Fail(GEOKV_ECONFIG, "options.key_bytes_max " + std::to_string(options->key_bytes_max) +
                                     " is above the ceiling " + std::to_string(geokv::Limits::kKeyBytesCeiling));
    }
    if (options->value_bytes_max > geokv::Limits::kValueBytesCeiling) {
      return Fail(GEOKV_ECONFIG, "options.value_bytes_max " + std::to_string(options->value_bytes_max) +
                                     " is above the ceiling " + std::to_string(geokv::Limits::kValueBytesCeiling));
    }
    constexpr uint32_t kCommitTimeoutMsMax = 3600 * 1000;
    if (options->commit_timeout_ms > kCommitTimeoutMsMax) {
      return Fail(GEOKV_ECONFIG, "options.commit_timeout_ms " + std::to_string(options->commit_timeout_ms) +
                                     " is above " + std::to_string(kCommitTimeoutMsMax) + " (one hour)");
    }
    if (options->key_bytes_max != 0) config->limits.key_bytes_max = options->key_bytes_max;
    if (options->value_bytes_max != 0) config->limits.value_bytes_max = options->value_bytes_max;
    if (options->commit_timeout_ms != 0) config->commit_timeout_ms = options->commit_timeout_ms;
  }
  geokv::Status valid = config->Validate();
  if (!valid.ok()) return Fail(GEOKV_ECONFIG, "options: " + valid.message());
  return GEOKV_OK;
}

// Sends one request and maps the answer's status (the message keeps the node's words).
int CallCluster(geokv::Client& client, geokv::Request request, geokv::Response* response) {
  *response = client.Call(std::move(request));
  return FromStatus(response->status);
}

// Copies items into one malloc'd block: the geokv_list header, then the items and lengths
// arrays, then each item's bytes followed by a NUL. geokv_list_free frees it with free().
int MakeList(const std::vector<std::string>& items, geokv_list_t** out) {
  size_t bytes = sizeof(geokv_list_t);
  const size_t align = alignof(std::max_align_t);
  bytes = (bytes + align - 1) / align * align;
  const size_t items_at = bytes;
  bytes += items.size() * sizeof(const uint8_t*);
  const size_t lengths_at = bytes;
  bytes += items.size() * sizeof(size_t);
  const size_t data_at = bytes;
  for (const auto& item : items) bytes += item.size() + 1;
  auto* block = static_cast<unsigned char*>(std::malloc(bytes));
  if (block == nullptr) return Fail(GEOKV_ENOMEM, "out of memory copying a list");
  auto* list = reinterpret_cast<geokv_list_t*>(block);
  auto* ptrs = reinterpret_cast<const uint8_t**>(block + items_at);
  auto* lengths = reinterpret_cast<size_t*>(block + lengths_at);
  unsigned char* data = block + data_at;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i].empty()) std::memcpy(data, items[i].data(), items[i].size());
    data[items[i].size()] = 0;
    ptrs[i] = data;
    lengths[i] = items[i].size();
    data += items[i].size() + 1;
  }
  list->count = items.size();
  list->items = ptrs;
  list->lengths = lengths;
  *out = list;
  return GEOKV_OK;
}

std::vector<std::string> SplitCommas(const char* text) {
  std::vector<std::string> out;
  std::string_view s(text);
  size_t start = 0;
  for (;;) {
    const size_t end = s.find(',', start);
    out.emplace_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

// What is wrong with an endpoint ("" when nothing): tcp://host:port with a port in
// 1..65535 and a host that resolves (checked now, so a typo fails at connect rather than
// as a timeout on the first request), or ipc://path.
std::string EndpointProblem(const std::string& e) {
  constexpr char kShape[] = "is not an address like tcp://host:port";
  if (e.find_first_of(" \t\r\n") != std::string::npos) return kShape;
  if (e.rfind("ipc://", 0) == 0) return e.size() > 6 ? "" : kShape;
  if (e.rfind("tcp://", 0) != 0) return std::string(kShape) + " (only tcp:// and ipc:// are supported)";
  const std::string rest = e.substr(6);
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) return std::string(kShape) + " (no port)";
  std::string host = rest.substr(0, colon);
  const std::string port = rest.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) {
    return "has port \"" + port + "\"; a port is a number in 1..65535";
  }
  const long number = std::stol(port);
  if (number < 1 || number > 65535) return "has port " + port + "; a port is a number in 1..65535";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "*") return "has host \"*\", which a client cannot connect to";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) return "has host \"" + host + "\", which does not resolve (" + gai_strerror(rc) + ")";
  ::freeaddrinfo(found);
  return "";
}

int BuildClientOptions(geokv::ClientOptions* client, const char* endpoints, const geokv_connect_options_t* options) {
  if (endpoints == nullptr) return Fail(GEOKV_EINVAL, "endpoints is NULL");
  if (options != nullptr &&
      (options->version < 1 || options->version > GEOKV_CONNECT_OPTIONS_VERSION)) {
    return Fail(GEOKV_EVERSION, "connect options version " + std::to_string(options->version) +
                                    " is unknown to this library (it knows 1.." +
                                    std::to_string(GEOKV_CONNECT_OPTIONS_VERSION) + ")");
  }
  if (endpoints[0] == '\0') return Fail(GEOKV_EINVAL, "endpoints is empty: give tcp://host:port[,...]");
  constexpr size_t kEndpointsMax = 64;
  client->endpoints = SplitCommas(endpoints);
  if (client->endpoints.size() > kEndpointsMax) {
    return Fail(GEOKV_EINVAL, std::to_string(client->endpoints.size()) + " endpoints; at most " +
                                  std::to_string(kEndpointsMax));
  }
  for (size_t i = 0; i < client->endpoints.size(); ++i) {
    const std::string problem = EndpointProblem(client->endpoints[i]);
    if (!problem.empty()) {
      return Fail(GEOKV_EINVAL, "endpoint " + std::to_string(i + 1) + " (\"" + client->endpoints[i] + "\") " + problem);
    }
  }
  if (options != nullptr) {
    constexpr uint32_t kTimeoutMsMax = 3600 * 1000;
    if (options->timeout_ms > kTimeoutMsMax) {
      return Fail(GEOKV_ECONFIG, "options.timeout_ms " + std::to_string(options->timeout_ms) + " is above " +
                                     std::to_string(kTimeoutMsMax) + " (one hour)");
    }
    if (options->timeout_ms != 0) client->timeout_ms = options->timeout_ms;
    const bool any = options->curve_server_key != nullptr || options->curve_public_key != nullptr ||
                     options->curve_secret_key != nullptr;
    if (any) {
      if (options->curve_server_key == nullptr || options->curve_public_key == nullptr ||
          options->curve_secret_key == nullptr) {
        return Fail(GEOKV_EINVAL, "CURVE needs all three of curve_server_key, curve_public_key and curve_secret_key");
      }
      client->server_public_keys_z85 = SplitCommas(options->curve_server_key);
      client->public_key_z85 = options->curve_public_key;
      client->secret_key_z85 = options->curve_secret_key;
      constexpr size_t kZ85KeyChars = 40;
      for (const auto& key : client->server_public_keys_z85) {
        if (key.size() != kZ85KeyChars) {
          return Fail(GEOKV_EINVAL, "curve_server_key: each key is 40 Z85 characters (got " +
                                        std::to_string(key.size()) + ")");
        }
      }
      if (client->public_key_z85.size() != kZ85KeyChars || client->secret_key_z85.size() != kZ85KeyChars) {
        return Fail(GEOKV_EINVAL, "curve_public_key and curve_secret_key are 40 Z85 characters each");
      }
      if (client->server_public_keys_z85.size() != 1 &&
          client->server_public_keys_z85.size() != client->endpoints.size()) {
        return Fail(GEOKV_EINVAL, "curve_server_key: give one key, or one per endpoint (" +
                                      std::to_string(client->endpoints.size()) + ")");
      }
    }
  }
  return GEOKV_OK;
}

// The common path of the keyed cluster operations: validate, resolve, call.
int KeyedCall(geokv_db_t* db, geokv::Request request, const uint8_t* key, size_t key_len,
              geokv::Response* response) {
  std::shared_ptr<geokv::Client> client;
  int rc = CheckClusterKey(key, key_len, "key");
  if (rc == GEOKV_OK) rc = ClientOf(db, &client);
  if (rc != GEOKV_OK) return rc;
  request.key.assign(View(key, key_len));
  return CallCluster(*client, std::move(request), response);
}

// A causal context from geokv_mv_get. Checked here too, so a damaged one is refused before
// it travels (and whatever the node does with it).
int CheckMvContext(const uint8_t* context, size_t len) {
  int rc = CheckClusterValue(context, len, "context");
  if (rc != GEOKV_OK || len == 0) return rc;
  geokv::crdt::CausalContext decoded;
  geokv::crdt::Decoder dec(View(context, len));
  geokv::Status s = decoded.DecodeFrom(&dec);
  if (s.ok()) s = dec.Finish();
  if (!s.ok()) return Fail(GEOKV_EINVAL, "context is not one geokv_mv_get returned: " + s.message());
  return GEOKV_OK;
}

int SetElementCall(geokv::Op op, geokv_db_t* db, const uint8_t* key, size_t key_len, const uint8_t* element,
                   size_t element_len, geokv::Response* response) {
  int rc = CheckClusterValue(element, element_len, "element");
  if (rc != GEOKV_OK) return rc;
  geokv::Request request;
  request.op = op;
  request.value.assign(View(element, element_len));
  return KeyedCall(db, std::move(request), key, key_len, response);
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
    case GEOKV_EFORKED: return "GEOKV_EFORKED";
    case GEOKV_EPERM: return "GEOKV_EPERM";
    default: return "GEOKV_E(unknown)";
  }
}

int geokv_log_set_level(int level) {
  return Guard([&] { return FromStatus(geokv::SetLogLevelNumber(level)); });
}

int geokv_log_level(void) {
  return Guard([&] { return geokv::LogLevelNumber(); });
}

int geokv_log_set_callback(geokv_log_fn fn, void* payload) {
  return Guard([&] {
    geokv::SetLogCallback(fn, payload);
    return Ok();
  });
}

int geokv_repair(uint64_t* tables_salvaged, uint64_t* keys_kept, const char* path) {
  return Guard([&] {
    if (path == nullptr) return Fail(GEOKV_EINVAL, "path is NULL");
    geokv::EnsureLogging();
    auto report = geokv::storage::WiredTigerStorage::Repair(path);
    if (!report.ok()) return FromStatus(report.status());
    // Damaged files repaired: tables rebuilt, and journal files whose damaged records were
    // dropped (each dropped stretch is logged at warning level, naming file and bytes).
    if (tables_salvaged != nullptr) *tables_salvaged = report->damaged.size() + report->journal_files.size();
    if (keys_kept != nullptr) *keys_kept = report->keys_after;
    return Ok();
  });
}

int geokv_open(geokv_db_t** db, const char* path, const geokv_options_t* options) {
  return Guard([&] {
    if (db == nullptr) return Fail(GEOKV_EINVAL, "db out-pointer is NULL");
    geokv::EnsureLogging();
    geokv::Config config;
    int rc = BuildConfig(&config, path, options);
    if (rc != GEOKV_OK) return rc;
    if (config.cluster) {
      // An embedded node that joins its cluster: serve it here, and speak to it as a client.
      auto server = geokv::Server::Start(config);
      if (!server.ok()) return FromStatus(server.status());
      std::string endpoint = (*server)->client_endpoint();
      const auto any = endpoint.find("0.0.0.0");
      if (any != std::string::npos) endpoint.replace(any, 7, "127.0.0.1");
      geokv::ClientOptions co;
      co.endpoints = {endpoint};
      co.timeout_ms = config.cluster->request_timeout_ms + 1000;
      auto client = geokv::Client::Connect(co);
      if (!client.ok()) return FromStatus(client.status());
      auto handle = std::make_unique<geokv_db>();
      handle->server = std::shared_ptr<geokv::Server>(std::move(server).value());
      handle->client = std::shared_ptr<geokv::Client>(std::move(client).value());
      *db = Dbs().Add(std::move(handle));
      return Ok();
    }
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
    std::shared_ptr<geokv::Client> client;
    std::shared_ptr<geokv::Server> server;
    {
      std::lock_guard lock(db->mu);
      node = std::move(db->node);
      client = std::move(db->client);
      server = std::move(db->server);
    }
    if (!Dbs().Retire(db) || (!node && !client)) return Fail(GEOKV_ECLOSED, "db handle was already closed");
    if (Inherited(db->generation)) {
      // The parent owns the files and the sockets: closing them here would checkpoint the
      // store behind its back (or hang in ZeroMQ). Forget them instead.
      if (node) node->Abandon();
      new std::shared_ptr<geokv::Node>(std::move(node));
      new std::shared_ptr<geokv::Client>(std::move(client));
      new std::shared_ptr<geokv::Server>(std::move(server));
      return Ok();
    }
    if (node) return FromStatus(node->Close());
    if (server) server->Stop();  // flushes and releases the data directory
    return Ok();  // the Client closes its sockets when the last call in flight drops it
  });
}

int geokv_put(geokv_db_t* db, const uint8_t* key, size_t key_len, const uint8_t* value,
              size_t value_len) {
  return Guard([&] {
    std::shared_ptr<geokv::Node> node;
    std::shared_ptr<geokv::Client> client;
    int rc = Resolve(db, &node, &client);
    if (rc == GEOKV_OK) rc = CheckBytes(key, key_len, "key");
    if (rc == GEOKV_OK) rc = CheckBytes(value, value_len, "value");
    if (rc != GEOKV_OK) return rc;
    if (node) return FromStatus(node->Put(View(key, key_len), View(value, value_len)));
    if ((rc = CheckClusterKey(key, key_len, "key")) != GEOKV_OK) return rc;
    if ((rc = CheckClusterValue(value, value_len, "value")) != GEOKV_OK) return rc;
    geokv::Request request;
    request.op = geokv::Op::kPut;
    request.key.assign(View(key, key_len));
    request.value.assign(View(value, value_len));
    geokv::Response response;
    return CallCluster(*client, std::move(request), &response);
  });
}

int geokv_get(uint8_t** value, size_t* value_len, geokv_db_t* db, const uint8_t* key,
              size_t key_len) {
  return Guard([&] {
    if (value == nullptr || value_len == nullptr) return Fail(GEOKV_EINVAL, "value out-pointer is NULL");
    std::shared_ptr<geokv::Node> node;
    std::shared_ptr<geokv::Client> client;
    int rc = Resolve(db, &node, &client);
    if (rc == GEOKV_OK) rc = CheckBytes(key, key_len, "key");
    if (rc != GEOKV_OK) return rc;
    std::string got;
    if (node) {
      auto read = node->Get(View(key, key_len));
      if (!read.ok()) return FromStatus(read.status());
      got = std::move(read).value();
    } else {
      if ((rc = CheckClusterKey(key, key_len, "key")) != GEOKV_OK) return rc;
      geokv::Request request;
      request.op = geokv::Op::kGet;
      request.key.assign(View(key, key_len));
      geokv::Response response;
      if ((rc = CallCluster(*client, std::move(request), &response)) != GEOKV_OK) return rc;
      if (!response.found) return Fail(GEOKV_ENOTFOUND, "no such key");
      got = std::move(response.value);
    }
    auto* bytes = static_cast<uint8_t*>(std::malloc(got.size() == 0 ? 1 : got.size()));
    if (bytes == nullptr) return Fail(GEOKV_ENOMEM, "out of memory copying the value");
    if (!got.empty()) std::memcpy(bytes, got.data(), got.size());
    *value = bytes;
    *value_len = got.size();
    return Ok();
  });
}

int geokv_delete(geokv_db_t* db, const uint8_t* key, size_t key_len) {
  return Guard([&] {
    std::shared_ptr<geokv::Node> node;
    std::shared_ptr<geokv::Client> client;
    int rc = Resolve(db, &node, &client);
    if (rc == GEOKV_OK) rc = CheckBytes(key, key_len, "key");
    if (rc != GEOKV_OK) return rc;
    if (node) return FromStatus(node->Delete(View(key, key_len)));
    if ((rc = CheckClusterKey(key, key_len, "key")) != GEOKV_OK) return rc;
    geokv::Request request;
    request.op = geokv::Op::kDelete;
    request.key.assign(View(key, key_len));
    geokv::Response response;
    return CallCluster(*client, std::move(request), &response);
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
    const size_t key_max = handle->node->config().limits.key_bytes_max;
    if (prefix_len > key_max) {  // before copying it
      return Fail(GEOKV_EKEYSIZE, "prefix is " + std::to_string(prefix_len) + " bytes; the key limit is " +
                                      std::to_string(key_max));
    }
    if (handle->node->closed()) return Fail(GEOKV_ECLOSED, "db handle was already closed");
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
    if (Inherited(iter->generation)) return Fail(GEOKV_EFORKED, kForked);
    std::lock_guard lock(iter->mu);
    if (!iter->node) return Fail(GEOKV_ECLOSED, "iter handle was already closed");
    // Entries already fetched are not served once the store is closed: the caller would
    // take them for a live view.
    if (iter->node->closed()) return Fail(GEOKV_ECLOSED, "the iterator's db handle was closed");
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
    std::lock_guard lock(iter->mu);
    if (Inherited(iter->generation)) {
      new std::shared_ptr<geokv::Node>(std::move(iter->node));  // the parent's: never closed here
      return Ok();
    }
    iter->node.reset();
    iter->page.clear();
    iter->page.shrink_to_fit();
    return Ok();
  });
}

int geokv_connect(geokv_db_t** db, const char* endpoints, const geokv_connect_options_t* options) {
  return Guard([&] {
    if (db == nullptr) return Fail(GEOKV_EINVAL, "db out-pointer is NULL");
    geokv::ClientOptions client_options;
    int rc = BuildClientOptions(&client_options, endpoints, options);
    if (rc != GEOKV_OK) return rc;
    auto client = geokv::Client::Connect(client_options);
    if (!client.ok()) return FromStatus(client.status());
    auto handle = std::make_unique<geokv_db>();
    handle->client = std::shared_ptr<geokv::Client>(std::move(client).value());
    *db = Dbs().Add(std::move(handle));
    return Ok();
  });
}

void geokv_list_free(geokv_list_t* list) { std::free(list); }

int geokv_cas(geokv_db_t* db, const uint8_t* key, size_t key_len, const uint8_t* expected, size_t expected_len,
              const uint8_t* value, size_t value_len) {
  return Guard([&] {
    if (expected == nullptr && expected_len > 0) {
      return Fail(GEOKV_EINVAL, "expected is NULL with expected_len > 0 (NULL with 0 means: expect the key absent)");
    }
    int rc = CheckClusterValue(expected, expected_len, "expected");
    if (rc == GEOKV_OK) rc = CheckClusterValue(value, value_len, "value");
    if (rc != GEOKV_OK) return rc;
    if (expected_len + value_len > kClusterValueBytesMax) {
      return Fail(GEOKV_EVALSIZE, "expected and value together are " + std::to_string(expected_len + value_len) +
                                      " bytes; a client message carries at most " +
                                      std::to_string(kClusterValueBytesMax));
    }
    geokv::Request request;
    request.op = geokv::Op::kCas;
    request.has_expected = expected != nullptr;
    request.expected.assign(View(expected, expected_len));
    request.value.assign(View(value, value_len));
    geokv::Response response;
    return KeyedCall(db, std::move(request), key, key_len, &response);
  });
}

int geokv_add(int64_t* result, geokv_db_t* db, const uint8_t* key, size_t key_len, int64_t delta) {
  return Guard([&] {
    if (result == nullptr) return Fail(GEOKV_EINVAL, "result out-pointer is NULL");
    geokv::Request request;
    request.op = geokv::Op::kAdd;
    request.delta = delta;
    geokv::Response response;
    int rc = KeyedCall(db, std::move(request), key, key_len, &response);
    if (rc != GEOKV_OK) return rc;
    *result = response.number;
    return GEOKV_OK;
  });
}

int geokv_set_add(geokv_db_t* db, const uint8_t* key, size_t key_len, const uint8_t* element, size_t element_len) {
  return Guard([&] {
    geokv::Response response;
    return SetElementCall(geokv::Op::kSetAdd, db, key, key_len, element, element_len, &response);
  });
}

int geokv_set_remove(geokv_db_t* db, const uint8_t* key, size_t key_len, const uint8_t* element,
                     size_t element_len) {
  return Guard([&] {
    geokv::Response response;
    return SetElementCall(geokv::Op::kSetRemove, db, key, key_len, element, element_len, &response);
  });
}

int geokv_set_contains(int* present, geokv_db_t* db, const uint8_t* key, size_t key_len, const uint8_t* element,
                       size_t element_len) {
  return Guard([&] {
    if (present == nullptr) return Fail(GEOKV_EINVAL, "present out-pointer is NULL");
    geokv::Response response;
    int rc = SetElementCall(geokv::Op::kSetContains, db, key, key_len, element, element_len, &response);
    if (rc != GEOKV_OK) return rc;
    *present = response.found ? 1 : 0;
    return GEOKV_OK;
  });
}

int geokv_set_members(geokv_list_t** members, geokv_db_t* db, const uint8_t* key, size_t key_len) {
  return Guard([&] {
    if (members == nullptr) return Fail(GEOKV_EINVAL, "members out-pointer is NULL");
    geokv::Request request;
    request.op = geokv::Op::kSetMembers;
    geokv::Response response;
    int rc = KeyedCall(db, std::move(request), key, key_len, &response);
    if (rc != GEOKV_OK) return rc;
    std::sort(response.values.begin(), response.values.end());
    if ((rc = MakeList(response.values, members)) != GEOKV_OK) return rc;
    return Ok();
  });
}

int geokv_mv_get(geokv_list_t** values, uint8_t** context, size_t* context_len, geokv_db_t* db, const uint8_t* key,
                 size_t key_len) {
  return Guard([&] {
    if (values == nullptr || context == nullptr || context_len == nullptr) {
      return Fail(GEOKV_EINVAL, "an out-pointer of geokv_mv_get is NULL");
    }
    geokv::Request request;
    request.op = geokv::Op::kMvGet;
    geokv::Response response;
    int rc = KeyedCall(db, std::move(request), key, key_len, &response);
    if (rc != GEOKV_OK) return rc;
    std::sort(response.values.begin(), response.values.end());
    auto* bytes = static_cast<uint8_t*>(std::malloc(response.context.empty() ? 1 : response.context.size()));
    if (bytes == nullptr) return Fail(GEOKV_ENOMEM, "out of memory copying the context");
    if (!response.context.empty()) std::memcpy(bytes, response.context.data(), response.context.size());
    geokv_list_t* list = nullptr;
    if ((rc = MakeList(response.values, &list)) != GEOKV_OK) {
      std::free(bytes);
      return rc;
    }
    *values = list;
    *context = bytes;
    *context_len = response.context.size();
    return Ok();
  });
}

int geokv_mv_put(geokv_db_t* db, const uint8_t* key, size_t key_len, const uint8_t* value, size_t value_len,
                 const uint8_t* context, size_t context_len) {
  return Guard([&] {
    int rc = CheckClusterValue(value, value_len, "value");
    if (rc == GEOKV_OK) rc = CheckMvContext(context, context_len);
    if (rc != GEOKV_OK) return rc;
    geokv::Request request;
    request.op = geokv::Op::kMvPut;
    request.value.assign(View(value, value_len));
    request.context.assign(View(context, context_len));
    geokv::Response response;
    return KeyedCall(db, std::move(request), key, key_len, &response);
  });
}

int geokv_mv_delete(geokv_db_t* db, const uint8_t* key, size_t key_len, const uint8_t* context, size_t context_len) {
  return Guard([&] {
    int rc = CheckMvContext(context, context_len);
    if (rc != GEOKV_OK) return rc;
    geokv::Request request;
    request.op = geokv::Op::kMvDelete;
    request.context.assign(View(context, context_len));
    geokv::Response response;
    return KeyedCall(db, std::move(request), key, key_len, &response);
  });
}

int geokv_policy_set(geokv_db_t* db, const uint8_t* prefix, size_t prefix_len, const char* mode) {
  return Guard([&] {
    if (mode == nullptr) return Fail(GEOKV_EINVAL, "mode is NULL");
    int rc = CheckBytes(prefix, prefix_len, "prefix");
    if (rc != GEOKV_OK) return rc;
    if (prefix_len > kClusterKeyBytesMax) return CheckClusterKey(prefix, prefix_len, "prefix");
    auto parsed = geokv::ParseMode(mode);
    if (!parsed.ok()) {
      return Fail(GEOKV_EINVAL, "mode \"" + std::string(mode) + "\" is unknown (strong, lww, mvreg, counter or set)");
    }
    std::shared_ptr<geokv::Client> client;
    if ((rc = ClientOf(db, &client)) != GEOKV_OK) return rc;
    geokv::Request request;
    request.op = geokv::Op::kPolicySet;
    request.key.assign(View(prefix, prefix_len));
    request.mode = *parsed;
    geokv::Response response;
    return CallCluster(*client, std::move(request), &response);
  });
}

int geokv_node_set_state(geokv_db_t* db, uint32_t node, const char* state) {
  return Guard([&] {
    if (state == nullptr) return Fail(GEOKV_EINVAL, "state is NULL");
    const std::string_view name(state);
    if (name != "draining" && name != "up" && name != "down" && name != "removed") {
      return Fail(GEOKV_EINVAL, "state \"" + std::string(name) + "\" is not one an operator sets (draining, up, down, removed)");
    }
    std::shared_ptr<geokv::Client> client;
    int rc = ClientOf(db, &client);
    if (rc != GEOKV_OK) return rc;
    geokv::Request request;
    request.op = geokv::Op::kNodeState;
    request.key = std::to_string(node);
    request.value.assign(name);
    geokv::Response response;
    return CallCluster(*client, std::move(request), &response);
  });
}

int geokv_policy_remove(geokv_db_t* db, const uint8_t* prefix, size_t prefix_len) {
  return Guard([&] {
    int rc = CheckBytes(prefix, prefix_len, "prefix");
    if (rc != GEOKV_OK) return rc;
    if (prefix_len > kClusterKeyBytesMax) return CheckClusterKey(prefix, prefix_len, "prefix");
    std::shared_ptr<geokv::Client> client;
    if ((rc = ClientOf(db, &client)) != GEOKV_OK) return rc;
    geokv::Request request;
    request.op = geokv::Op::kPolicyRemove;
    request.key.assign(View(prefix, prefix_len));
    geokv::Response response;
    return CallCluster(*client, std::move(request), &response);
  });
}

int geokv_policy_list(geokv_list_t** prefixes, geokv_list_t** modes, geokv_db_t* db) {
  return Guard([&] {
    if (prefixes == nullptr || modes == nullptr) return Fail(GEOKV_EINVAL, "prefixes or modes out-pointer is NULL");
    std::shared_ptr<geokv::Client> client;
    int rc = ClientOf(db, &client);
    if (rc != GEOKV_OK) return rc;
    geokv::Request request;
    request.op = geokv::Op::kPolicyList;
    geokv::Response response;
    if ((rc = CallCluster(*client, std::move(request), &response)) != GEOKV_OK) return rc;
    // Each rule comes as "prefix=mode" (the default as "=mode (default)"); mode names hold
    // no '=', so the last one separates them whatever bytes the prefix holds.
    std::vector<std::string> p, m;
    for (const std::string& line : response.values) {
      const size_t eq = line.rfind('=');
      if (eq == std::string::npos) return Fail(GEOKV_ECORRUPT, "policy rule without '=': \"" + line + "\"");
      std::string mode = line.substr(eq + 1);
      constexpr std::string_view kDefault = " (default)";
      if (eq == 0 && mode.size() > kDefault.size() &&
          mode.compare(mode.size() - kDefault.size(), kDefault.size(), kDefault) == 0) {
        mode.resize(mode.size() - kDefault.size());
      }
      if (!geokv::ParseMode(mode).ok()) return Fail(GEOKV_ECORRUPT, "policy rule with an unknown mode: \"" + line + "\"");
      p.push_back(line.substr(0, eq));
      m.push_back(std::move(mode));
    }
    geokv_list_t* plist = nullptr;
    geokv_list_t* mlist = nullptr;
    if ((rc = MakeList(p, &plist)) != GEOKV_OK) return rc;
    if ((rc = MakeList(m, &mlist)) != GEOKV_OK) {
      geokv_list_free(plist);
      return rc;
    }
    *prefixes = plist;
    *modes = mlist;
    return Ok();
  });
}

int geokv_status(geokv_list_t** lines, geokv_db_t* db) {
  return Guard([&] {
    if (lines == nullptr) return Fail(GEOKV_EINVAL, "lines out-pointer is NULL");
    std::shared_ptr<geokv::Client> client;
    int rc = ClientOf(db, &client);
    if (rc != GEOKV_OK) return rc;
    geokv::Request request;
    request.op = geokv::Op::kStatus;
    geokv::Response response;
    if ((rc = CallCluster(*client, std::move(request), &response)) != GEOKV_OK) return rc;
    if ((rc = MakeList(response.values, lines)) != GEOKV_OK) return rc;
    return Ok();
  });
}

}  // extern "C"
