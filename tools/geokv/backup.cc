#include "tools/geokv/backup.h"

#include <unistd.h>
#include <wiredtiger.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/engine/cluster_map.h"
#include "core/engine/policy.h"
#include "replication/crdt/codec.h"
#include "replication/crdt/crdt_value.h"

namespace geokv::tools {
namespace {

namespace fs = std::filesystem;

constexpr int kFormat = 1;           // of the manifest and the files it lists
constexpr int kShardAttempts = 3;    // whole-shard snapshots tried before the backup fails
constexpr int kCallAttempts = 5;     // one call, while refused before any effect or timed out
constexpr size_t kErrorsShown = 10;  // failed keys named at the end of a restore
constexpr char kManifest[] = "manifest";
constexpr char kEventualFile[] = "eventual.dump";

using Clock = std::chrono::steady_clock;
using Row = std::pair<std::string, std::string>;

std::string ShardFile(uint32_t shard) { return "shard-" + std::to_string(shard) + ".snap"; }

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

uint32_t Crc32c(std::string_view bytes) {
  static const auto fn = wiredtiger_crc32c_func();
  return fn(bytes.data(), bytes.size());
}

// Calls `req` again while the cluster refused it before any effect (an election, a
// leadership moving) or, when `resend_on_timeout` (a read, or a write that may be applied
// twice), while its outcome is unknown; a few times, with a growing pause. The last answer.
Response CallRetrying(Client& client, const Request& req, bool resend_on_timeout) {
  Response r;
  for (int attempt = 1;; ++attempt) {
    r = client.Call(req);
    const Code code = r.status.code();
    const bool retry = code == Code::kUnavailable || code == Code::kBusy || (code == Code::kTimeout && resend_on_timeout);
    if (!retry || attempt == kCallAttempts) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
  }
}

// A whole snapshot of `shard`, chunk by chunk under one token. `chunks` counts the calls.
StatusOr<std::string> ReadShard(Client& client, uint32_t shard, int* chunks) {
  std::string token, bytes;
  int64_t total = -1;
  *chunks = 0;
  while (total < 0 || bytes.size() < static_cast<uint64_t>(total)) {
    Request req;
    req.op = Op::kShardSnapshot;
    req.delta = shard;
    req.key = token;
    req.value = std::to_string(bytes.size());
    const Response r = CallRetrying(client, req, /*resend_on_timeout=*/true);
    if (!r.status.ok()) return r.status;
    ++*chunks;
    if (r.number <= 0 || (total >= 0 && r.number != total) || (!token.empty() && r.context != token) ||
        r.value.empty()) {
      return Status(Code::kInternal, "the node answered chunk " + std::to_string(*chunks) +
                                         " with another snapshot's size or token, or with no bytes");
    }
    total = r.number;
    token = r.context;
    bytes += r.value;
  }
  if (bytes.size() != static_cast<uint64_t>(total)) {
    return Status(Code::kInternal, "the chunks hold " + std::to_string(bytes.size()) + " bytes, the snapshot " +
                                       std::to_string(total));
  }
  return bytes;
}

// The rows of a shard snapshot (Engine::SnapshotOf: a row count, then key and value each).
StatusOr<std::vector<Row>> DecodeRows(std::string_view bytes) {
  crdt::Decoder dec(bytes);
  uint64_t n = 0;
  GEOKV_RETURN_IF_ERROR(dec.GetCount(2, &n, "rows"));
  std::vector<Row> rows;
  rows.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view k, v;
    GEOKV_RETURN_IF_ERROR(dec.GetBytes(kMessageBytesMax, &k, "key"));
    GEOKV_RETURN_IF_ERROR(dec.GetBytes(kMessageBytesMax, &v, "value"));
    rows.emplace_back(std::string(k), std::string(v));
  }
  GEOKV_RETURN_IF_ERROR(dec.Finish());
  return rows;
}

// The (key, encoded state) pairs of eventual.dump.
StatusOr<std::vector<Row>> DecodeDump(std::string_view bytes) {
  crdt::Decoder dec(bytes);
  std::vector<Row> keys;
  while (dec.remaining() != 0) {
    std::string_view k, state;
    GEOKV_RETURN_IF_ERROR(dec.GetBytes(kMessageBytesMax, &k, "key"));
    GEOKV_RETURN_IF_ERROR(dec.GetBytes(kMessageBytesMax, &state, "state"));
    keys.emplace_back(std::string(k), std::string(state));
  }
  return keys;
}

// Writes `bytes` to `path` and syncs it: a manifest is written only over files on disk.
Status WriteFileSynced(const fs::path& path, std::string_view bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return Status(Code::kIOError, "cannot create " + path.string());
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0 &&
                  ::fsync(fileno(f)) == 0;
  if (std::fclose(f) != 0 || !ok) return Status(Code::kIOError, "cannot write " + path.string());
  return Status::Ok();
}

StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(Code::kNotFound, "cannot open " + path.string());
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status(Code::kIOError, "cannot read " + path.string());
  return bytes;
}

nlohmann::json PolicyJson(const Policy& policy) {
  nlohmann::json rules = nlohmann::json::object();
  for (const auto& [prefix, mode] : policy.rules()) rules[prefix] = std::string(ModeName(mode));
  return {{"default", std::string(ModeName(policy.default_mode()))}, {"rules", rules}};
}

std::string UtcNow() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

StatusOr<placement::ClusterMap> FetchMap(Client& client) {
  Request req;
  req.op = Op::kClusterMap;
  const Response r = CallRetrying(client, req, /*resend_on_timeout=*/true);
  if (!r.status.ok()) return r.status;
  return placement::ClusterMap::Decode(r.value);
}

// Runs fn(0..n-1) on `threads` threads; the failures, as "what: why" lines, in no order.
template <typename Fn>
std::vector<std::string> ParallelFor(size_t n, int threads, Fn fn) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::vector<std::string> failures;
  auto work = [&] {
    for (size_t i = next++; i < n; i = next++) {
      std::string failure = fn(i);
      if (failure.empty()) continue;
      std::lock_guard lock(mu);
      failures.push_back(std::move(failure));
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return failures;
}

int Fail(const char* command, const std::string& why) {
  std::fprintf(stderr, "geokv %s: %s\n", command, why.c_str());
  return 2;
}

// The operations that give a key of a new cluster the state `value` holds: a put of an
// LWW value, a put of every sibling of a multi-value register (each with an empty read
// context, so none supersedes another), an add of a counter's value, an add of every set
// member. Empty: nothing to restore. Restoring the state itself is not possible: it
// carries the old cluster's dots, counter entries and HLC stamps, which the new cluster's
// replicas (with the same replica ids) would take for their own past and drop as stale.
std::vector<Request> RestoreOps(const std::string& key, const crdt::CrdtValue& value) {
  std::vector<Request> ops;
  auto op = [&](Op code, std::string v, int64_t delta) {
    Request r;
    r.op = code;
    r.key = key;
    r.value = std::move(v);
    r.delta = delta;
    ops.push_back(std::move(r));
  };
  if (const auto* lww = value.As<crdt::LwwRegister>()) {
    if (auto v = lww->Get()) op(Op::kPut, *v, 0);
  } else if (const auto* mv = value.As<crdt::MvRegister>()) {
    for (auto& v : mv->Values()) op(Op::kMvPut, std::move(v), 0);
  } else if (const auto* counter = value.As<crdt::PnCounter>()) {
    if (counter->Value() != 0) op(Op::kAdd, "", counter->Value());
  } else if (const auto* set = value.As<crdt::OrSet>()) {
    for (auto& m : set->Members()) op(Op::kSetAdd, std::move(m), 0);
  }
  return ops;
}

}  // namespace

int RunBackup(Client& client, const std::string& dir, bool json) {
  const auto start = Clock::now();
  const std::string started_at = UtcNow();
  const fs::path root(dir);
  std::error_code ec;
  if (fs::exists(root / kManifest, ec)) return Fail("backup", dir + " already holds a backup (a manifest); choose a new directory");
  auto map = FetchMap(client);
  if (!map.ok()) return Fail("backup", "cannot read the cluster map: " + map.status().ToString());
  fs::create_directories(root, ec);
  if (ec) return Fail("backup", "cannot create " + dir + ": " + ec.message());
  const auto shards = static_cast<uint32_t>(map->shards().size());
  nlohmann::json files = nlohmann::json::array();
  uint64_t strong_rows = 0;
  for (uint32_t shard = 0; shard < shards; ++shard) {
    StatusOr<std::string> bytes = Status(Code::kInternal, "not read");
    int chunks = 0;
    for (int attempt = 1; attempt <= kShardAttempts; ++attempt) {
      const auto shard_start = Clock::now();
      bytes = ReadShard(client, shard, &chunks);
      if (bytes.ok()) {
        auto rows = DecodeRows(*bytes);
        if (!rows.ok()) {
          bytes = Status(Code::kCorruption, "the snapshot does not decode: " + rows.status().message());
        } else {
          strong_rows += rows->size();
          std::fprintf(stderr, "shard %u/%u: %zu rows, %zu bytes in %d chunks (%.1f s)\n", shard + 1, shards,
                       rows->size(), bytes->size(), chunks, SecondsSince(shard_start));
          files.push_back({{"name", ShardFile(shard)}, {"shard", shard}, {"bytes", bytes->size()},
                           {"crc32c", Crc32c(*bytes)}, {"rows", rows->size()}});
          break;
        }
      }
      std::fprintf(stderr, "shard %u/%u: attempt %d of %d failed: %s\n", shard + 1, shards, attempt, kShardAttempts,
                   bytes.status().ToString().c_str());
      if (attempt < kShardAttempts) std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    if (!bytes.ok()) {
      return Fail("backup", "shard " + std::to_string(shard) + " could not be read: " + bytes.status().ToString() +
                                "; no backup was written (" + dir + " has no manifest)");
    }
    if (Status s = WriteFileSynced(root / ShardFile(shard), *bytes); !s.ok()) return Fail("backup", s.ToString());
  }

  // Eventual keys, shard by shard: pages of the keys a node serving the shard holds, each
  // after the last one received.
  crdt::Encoder dump;
  uint64_t eventual_keys = 0;
  for (uint32_t shard = 0; shard < shards; ++shard) {
    Request page;
    page.op = Op::kCrdtDump;
    page.delta = shard;
    for (bool more = true; more;) {
      const Response r = CallRetrying(client, page, /*resend_on_timeout=*/true);
      if (!r.status.ok()) {
        return Fail("backup", "eventual keys of shard " + std::to_string(shard) + " after \"" + page.key + "\": " +
                                  r.status.ToString() + "; no backup was written (" + dir + " has no manifest)");
      }
      if (r.values.size() % 2 != 0) return Fail("backup", "the node answered a dump page with an odd number of values");
      for (size_t i = 0; i < r.values.size(); i += 2) {
        dump.PutBytes(r.values[i]);
        dump.PutBytes(r.values[i + 1]);
        ++eventual_keys;
      }
      if (!r.values.empty()) page.key = r.values[r.values.size() - 2];
      more = r.found && !r.values.empty();
    }
  }
  const std::string dump_bytes = dump.Release();
  std::fprintf(stderr, "eventual keys: %llu, %zu bytes\n", static_cast<unsigned long long>(eventual_keys), dump_bytes.size());
  if (Status s = WriteFileSynced(root / kEventualFile, dump_bytes); !s.ok()) return Fail("backup", s.ToString());
  files.push_back({{"name", kEventualFile}, {"bytes", dump_bytes.size()}, {"crc32c", Crc32c(dump_bytes)},
                   {"keys", eventual_keys}});

  // The manifest last, through a rename: a directory with a manifest holds a whole backup.
  const nlohmann::json manifest = {{"format", kFormat},
                                   {"shards", shards},
                                   {"map_version", map->version()},
                                   {"started_at", started_at},
                                   {"finished_at", UtcNow()},
                                   {"policy", PolicyJson(map->policy())},
                                   {"strong_rows", strong_rows},
                                   {"eventual_keys", eventual_keys},
                                   {"files", files}};
  const fs::path tmp = root / (std::string(kManifest) + ".tmp");
  if (Status s = WriteFileSynced(tmp, manifest.dump(2) + "\n"); !s.ok()) return Fail("backup", s.ToString());
  fs::rename(tmp, root / kManifest, ec);
  if (ec) return Fail("backup", "cannot rename " + tmp.string() + ": " + ec.message());
  if (json) {
    std::printf("%s\n", nlohmann::json({{"ok", true}, {"dir", dir}, {"shards", shards}, {"strong_rows", strong_rows},
                                        {"eventual_keys", eventual_keys}, {"seconds", SecondsSince(start)}})
                            .dump()
                            .c_str());
  } else {
    std::printf("backup of %u shards (%llu strong keys) and %llu eventual keys in %s (%.1f s)\n", shards,
                static_cast<unsigned long long>(strong_rows), static_cast<unsigned long long>(eventual_keys),
                dir.c_str(), SecondsSince(start));
  }
  return 0;
}

int RunRestore(Client& client, const std::string& dir, int threads, bool json) {
  const auto start = Clock::now();
  const fs::path root(dir);
  auto manifest_bytes = ReadFile(root / kManifest);
  if (!manifest_bytes.ok()) return Fail("restore", dir + " holds no manifest: not a (complete) backup");
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(*manifest_bytes);
    if (manifest.at("format").get<int>() != kFormat) {
      return Fail("restore", "the manifest is of format " + manifest.at("format").dump() + "; this geokv reads format " +
                                 std::to_string(kFormat));
    }
  } catch (const nlohmann::json::exception& e) {
    return Fail("restore", "the manifest does not parse: " + std::string(e.what()));
  }

  // Every file is checked before anything is written.
  std::vector<std::vector<Row>> shard_rows;
  std::vector<Row> eventual;
  uint32_t shards = 0;
  Policy policy;
  try {
    shards = manifest.at("shards").get<uint32_t>();
    shard_rows.resize(shards);
    const auto& p = manifest.at("policy");
    auto default_mode = ParseMode(p.at("default").get<std::string>());
    if (!default_mode.ok()) return Fail("restore", "manifest policy: " + default_mode.status().message());
    policy = Policy(*default_mode);
    for (const auto& [prefix, mode_name] : p.at("rules").items()) {
      auto mode = ParseMode(mode_name.get<std::string>());
      if (!mode.ok() || !policy.Set(prefix, *mode).ok()) return Fail("restore", "manifest policy: bad rule for \"" + prefix + "\"");
    }
    for (const auto& f : manifest.at("files")) {
      const std::string name = f.at("name").get<std::string>();
      auto bytes = ReadFile(root / name);
      if (!bytes.ok()) return Fail("restore", bytes.status().message() + " (listed in the manifest)");
      if (bytes->size() != f.at("bytes").get<uint64_t>() || Crc32c(*bytes) != f.at("crc32c").get<uint32_t>()) {
        return Fail("restore", name + " is damaged: " + std::to_string(bytes->size()) + " bytes, CRC-32C " +
                                   std::to_string(Crc32c(*bytes)) + "; the manifest says " + f.at("bytes").dump() +
                                   " bytes, CRC-32C " + f.at("crc32c").dump());
      }
      auto rows = name == kEventualFile ? DecodeDump(*bytes) : DecodeRows(*bytes);
      if (!rows.ok()) return Fail("restore", name + " does not decode: " + rows.status().message());
      if (name == kEventualFile) {
        eventual = std::move(rows).value();
      } else {
        const auto shard = f.at("shard").get<uint32_t>();
        if (shard >= shards) return Fail("restore", name + " is of shard " + std::to_string(shard) + " of " + std::to_string(shards));
        shard_rows[shard] = std::move(rows).value();
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return Fail("restore", "the manifest lacks what a backup lists: " + std::string(e.what()));
  }

  // The target: the same shard count (a key's shard follows from it) and policy (a key's
  // mode does), and nothing in it yet.
  auto map = FetchMap(client);
  if (!map.ok()) return Fail("restore", "cannot read the cluster map: " + map.status().ToString());
  if (map->shards().size() != shards) {
    return Fail("restore", "the backup has " + std::to_string(shards) + " shards, the cluster " +
                               std::to_string(map->shards().size()) + "; restore into a new cluster of " +
                               std::to_string(shards) + " shards");
  }
  if (PolicyJson(map->policy()) != PolicyJson(policy)) {
    std::string commands;
    for (const auto& [prefix, mode] : policy.rules()) {
      commands += "\n  geokv policy set '" + prefix + "' " + std::string(ModeName(mode));
    }
    return Fail("restore", "the cluster's policy " + PolicyJson(map->policy()).dump() + " differs from the backup's " +
                               PolicyJson(policy).dump() + "; give the new cluster the backup's policy (default mode " +
                               std::string(ModeName(policy.default_mode())) + " in its config) first:" + commands);
  }
  for (uint32_t shard = 0; shard < shards; ++shard) {
    int chunks = 0;
    auto bytes = ReadShard(client, shard, &chunks);
    auto rows = bytes.ok() ? DecodeRows(*bytes) : StatusOr<std::vector<Row>>(bytes.status());
    if (!rows.ok()) return Fail("restore", "cannot read shard " + std::to_string(shard) + " of the cluster: " + rows.status().ToString());
    if (!rows->empty()) {
      return Fail("restore", "the cluster already holds keys in shard " + std::to_string(shard) + " (\"" +
                                 rows->front().first + "\" among " + std::to_string(rows->size()) +
                                 "); restore only into a new cluster");
    }
  }
  for (uint32_t shard = 0; shard < shards; ++shard) {
    Request probe;
    probe.op = Op::kCrdtDump;
    probe.delta = shard;
    const Response held = CallRetrying(client, probe, /*resend_on_timeout=*/true);
    if (!held.status.ok()) {
      return Fail("restore", "cannot list the cluster's eventual keys of shard " + std::to_string(shard) + ": " +
                                 held.status.ToString());
    }
    if (!held.values.empty()) {
      return Fail("restore", "the cluster already holds eventual key \"" + held.values.front() + "\"; restore only into a new cluster");
    }
  }

  // Strong rows by put, through the normal client path (replicated, acknowledged by a
  // majority): a put of the same value may be sent again whatever happened to the first.
  size_t failed = 0;
  std::vector<std::string> errors;
  auto note = [&](std::vector<std::string> more) {
    failed += more.size();
    for (auto& e : more) if (errors.size() < kErrorsShown) errors.push_back(std::move(e));
  };
  uint64_t strong_keys = 0;
  for (uint32_t shard = 0; shard < shards; ++shard) {
    const auto shard_start = Clock::now();
    const auto& rows = shard_rows[shard];
    auto failures = ParallelFor(rows.size(), threads, [&](size_t i) -> std::string {
      Request put;
      put.op = Op::kPut;
      put.key = rows[i].first;
      put.value = rows[i].second;
      const Response r = CallRetrying(client, put, /*resend_on_timeout=*/true);
      return r.status.ok() ? "" : "strong key \"" + put.key + "\": " + r.status.ToString();
    });
    strong_keys += rows.size() - failures.size();
    std::fprintf(stderr, "shard %u/%u: %zu of %zu keys restored (%.1f s)\n", shard + 1, shards,
                 rows.size() - failures.size(), rows.size(), SecondsSince(shard_start));
    note(std::move(failures));
  }

  // Eventual keys by their operations (RestoreOps says why not by state). An add or a
  // multi-value put whose outcome is unknown is not sent again (it could count twice).
  std::atomic<uint64_t> eventual_keys{0};
  const auto eventual_start = Clock::now();
  auto failures = ParallelFor(eventual.size(), threads, [&](size_t i) -> std::string {
    const auto& [key, state] = eventual[i];
    auto value = crdt::CrdtValue::Decode(state);
    if (!value.ok()) return "eventual key \"" + key + "\": its state does not decode: " + value.status().message();
    for (const Request& op : RestoreOps(key, *value)) {
      const bool resendable = op.op == Op::kPut || op.op == Op::kSetAdd;
      const Response r = CallRetrying(client, op, resendable);
      if (!r.status.ok()) {
        return "eventual key \"" + key + "\" (" + std::string(crdt::CrdtTypeName(value->type())) +
               "): " + std::string(OpName(op.op)) + ": " + r.status.ToString();
      }
    }
    eventual_keys++;
    return "";
  });
  std::fprintf(stderr, "eventual keys: %llu of %zu restored (%.1f s)\n",
               static_cast<unsigned long long>(eventual_keys.load()), eventual.size(), SecondsSince(eventual_start));
  note(std::move(failures));

  if (json) {
    std::printf("%s\n", nlohmann::json({{"ok", failed == 0}, {"dir", dir}, {"strong_keys", strong_keys},
                                        {"eventual_keys", eventual_keys.load()}, {"failed", failed},
                                        {"errors", errors}, {"seconds", SecondsSince(start)}})
                            .dump()
                            .c_str());
  } else {
    std::printf("restored %llu strong keys in %u shards and %llu eventual keys from %s (%.1f s)\n",
                static_cast<unsigned long long>(strong_keys), shards,
                static_cast<unsigned long long>(eventual_keys.load()), dir.c_str(), SecondsSince(start));
  }
  if (failed == 0) return 0;
  for (const auto& e : errors) std::fprintf(stderr, "geokv restore: %s\n", e.c_str());
  return Fail("restore", std::to_string(failed) + " keys were not restored" +
                             (failed > errors.size() ? " (the first " + std::to_string(errors.size()) + " above)" : ""));
}

}  // namespace geokv::tools
