// Put and get through geokv's Storage, against the same operations on raw WiredTiger in the
// same binary, for each durability mode; prints our layer's cost as a ratio.
//
//   build/release/bench/storage/storage_bench            (all; about a minute)
//   build/release/bench/storage/storage_bench --benchmark_filter=Put
//
// Single-threaded runs measure the per-operation overhead: the raw side does the same
// durability work per operation as Storage does (one key per transaction, the same commit
// configuration, the same log flush for kWrite, the same connection configuration) and
// uses WiredTiger the way a careful direct user would (a cursor kept open per session, reset
// after each read). The threaded kSync runs show group commit: 16 writers share fsyncs
// through the commit thread, where raw WiredTiger with one session per thread relies on its
// own log's grouping. All runs report real time (items/s of wall-clock time).
//
// With --benchmark_repetitions the ratios are of the medians.
#include <unistd.h>
#include <wiredtiger.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench/common/ratio_reporter.h"
#include "core/storage/wiredtiger_storage.h"

namespace geokv::storage {
namespace {

constexpr int kSync = 0, kWrite = 1, kNone = 2;
// As WiredTigerStorage commits: no configuration string unless it syncs (the connection's
// transaction_sync=(enabled=false) is then the default).
const char* const kCommitConfig[] = {"sync=on", nullptr, nullptr};
const Durability kDurability[] = {Durability::kSync, Durability::kWrite, Durability::kNone};

// Writes back every dirty page (of earlier runs, or of a load phase) before a measurement
// starts, so that no run pays for the disk work of the one before it: the runs of a pair
// then start from the same state whatever their order.
void SettleDisk() { ::sync(); }

std::string FreshDir(const std::string& name) {
  std::string dir = (std::filesystem::temp_directory_path() / ("geokv-bench-" + name)).string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  SettleDisk();
  return dir;
}

std::string Key(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "key%012llu", static_cast<unsigned long long>(i));
  return buf;
}

const std::string kValue(100, 'v');

WT_ITEM Item(std::string_view bytes) {
  WT_ITEM item{};
  item.data = bytes.data();
  item.size = bytes.size();
  return item;
}

// ---- raw WiredTiger: the same configuration our Storage opens with ---------------------

struct RawWt {
  WT_CONNECTION* conn = nullptr;
  explicit RawWt(const std::string& dir) {
    // WiredTigerStorage::Open's configuration with its default Options.
    const char* config =
        "create,session_max=256,log=(enabled=true,archive=true,file_max=104857600,prealloc=true),"
        "cache_size=64MB,checkpoint=(wait=60),transaction_sync=(enabled=false,method=fsync)";
    if (wiredtiger_open(dir.c_str(), nullptr, config, &conn) != 0) std::abort();
    WT_SESSION* s = nullptr;
    conn->open_session(conn, nullptr, nullptr, &s);
    if (s->create(s, "table:data", "key_format=u,value_format=u") != 0) std::abort();
    s->close(s, nullptr);
  }
  ~RawWt() { conn->close(conn, nullptr); }
};

// Shared by the threads of one run; built by Setup before any thread starts, and torn
// down by Teardown after all have finished.
std::unique_ptr<RawWt> g_raw;
std::unique_ptr<WiredTigerStorage> g_storage;
std::atomic<uint64_t> g_next{0};
std::mutex g_session_mu;  // WT_CONNECTION::open_session from many threads at once

void SetupRaw(const benchmark::State&) {
  g_raw = std::make_unique<RawWt>(FreshDir("raw"));
  g_next = 0;
}
void TeardownRaw(const benchmark::State&) { g_raw.reset(); }

void SetupStorage(const benchmark::State&) {
  auto opened = WiredTigerStorage::Open({.dir = FreshDir("storage")});
  if (!opened.ok()) std::abort();
  g_storage = std::move(opened).value();
  g_next = 0;
}
void TeardownStorage(const benchmark::State&) { g_storage.reset(); }

void RawPut(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  WT_SESSION* s = nullptr;
  WT_CURSOR* c = nullptr;
  {
    std::lock_guard lock(g_session_mu);
    g_raw->conn->open_session(g_raw->conn, nullptr, nullptr, &s);
    s->open_cursor(s, "table:data", nullptr, nullptr, &c);
  }
  for (auto _ : state) {
    std::string k = Key(g_next.fetch_add(1));
    WT_ITEM key = Item(k), value = Item(kValue);
    s->begin_transaction(s, nullptr);
    c->set_key(c, &key);
    c->set_value(c, &value);
    if (c->insert(c) != 0) state.SkipWithError("insert failed");
    if (s->commit_transaction(s, kCommitConfig[mode]) != 0) state.SkipWithError("commit failed");
    if (mode == kWrite) s->log_flush(s, "sync=off");
  }
  {
    std::lock_guard lock(g_session_mu);
    s->close(s, nullptr);
  }
  state.SetItemsProcessed(state.iterations());
}

void StoragePut(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  for (auto _ : state) {
    Status s = g_storage->Put("data", Key(g_next.fetch_add(1)), kValue, kDurability[mode]);
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    state.counters["writes_per_commit"] =
        static_cast<double>(g_storage->writes()) / static_cast<double>(std::max<uint64_t>(1, g_storage->commits()));
  }
}

constexpr int kGetKeys = 100000;

void RawGet(benchmark::State& state) {
  g_raw = std::make_unique<RawWt>(FreshDir("raw-get"));
  WT_SESSION* s = nullptr;
  WT_CURSOR* c = nullptr;
  g_raw->conn->open_session(g_raw->conn, nullptr, nullptr, &s);
  s->open_cursor(s, "table:data", nullptr, nullptr, &c);
  s->begin_transaction(s, nullptr);
  for (int i = 0; i < kGetKeys; ++i) {
    std::string k = Key(i);
    WT_ITEM key = Item(k), value = Item(kValue);
    c->set_key(c, &key);
    c->set_value(c, &value);
    c->insert(c);
  }
  s->commit_transaction(s, nullptr);
  SettleDisk();
  uint64_t i = 0;
  for (auto _ : state) {
    // One cursor for all gets, reset after each (releasing its page), as Storage::Get does
    // with the cursor its pooled session keeps; the value is copied out, as Get returns it.
    std::string k = Key(i++ % kGetKeys);
    WT_ITEM key = Item(k), value{};
    c->set_key(c, &key);
    if (c->search(c) != 0) state.SkipWithError("search failed");
    c->get_value(c, &value);
    std::string copy(static_cast<const char*>(value.data), value.size);
    benchmark::DoNotOptimize(copy);
    c->reset(c);
  }
  c->close(c);
  s->close(s, nullptr);
  g_raw.reset();
  state.SetItemsProcessed(state.iterations());
}

void StorageGet(benchmark::State& state) {
  auto opened = WiredTigerStorage::Open({.dir = FreshDir("storage-get")});
  if (!opened.ok()) std::abort();
  auto& store = *opened.value();
  {
    // Freed before the timed loop: the raw side holds no 100000 live strings either.
    WriteBatch batch;
    for (int i = 0; i < kGetKeys; ++i) batch.Put("data", Key(i), kValue);
    if (!store.Write(batch, Durability::kNone).ok()) std::abort();
  }
  SettleDisk();
  uint64_t i = 0;
  for (auto _ : state) {
    auto v = store.Get("data", Key(i++ % kGetKeys));
    if (!v.ok()) state.SkipWithError(v.status().ToString().c_str());
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
}

// Arguments: durability mode (0 sync, 1 write, 2 none).
// Each raw run is followed by its storage counterpart, so that the two runs of a pair are
// measured back to back, under the same background load.
BENCHMARK(RawPut)->Arg(kSync)->Setup(SetupRaw)->Teardown(TeardownRaw)->MinTime(1.0)->UseRealTime();
BENCHMARK(StoragePut)->Arg(kSync)->Setup(SetupStorage)->Teardown(TeardownStorage)->MinTime(1.0)->UseRealTime();
BENCHMARK(RawPut)->Arg(kWrite)->Setup(SetupRaw)->Teardown(TeardownRaw)->MinTime(1.0)->UseRealTime();
BENCHMARK(StoragePut)->Arg(kWrite)->Setup(SetupStorage)->Teardown(TeardownStorage)->MinTime(1.0)->UseRealTime();
BENCHMARK(RawPut)->Arg(kNone)->Setup(SetupRaw)->Teardown(TeardownRaw)->MinTime(1.0)->UseRealTime();
BENCHMARK(StoragePut)->Arg(kNone)->Setup(SetupStorage)->Teardown(TeardownStorage)->MinTime(1.0)->UseRealTime();
BENCHMARK(RawPut)->Arg(kSync)->Threads(16)->Setup(SetupRaw)->Teardown(TeardownRaw)->MinTime(1.0)->UseRealTime();
BENCHMARK(StoragePut)->Arg(kSync)->Threads(16)->Setup(SetupStorage)->Teardown(TeardownStorage)
    ->MinTime(1.0)->UseRealTime();
BENCHMARK(RawGet)->MinTime(1.0)->UseRealTime();
BENCHMARK(StorageGet)->MinTime(1.0)->UseRealTime();

}  // namespace
}  // namespace geokv::storage

int main(int argc, char** argv) {
  const std::pair<std::string, std::string> pairs[] = {
      {"StoragePut/0/min_time:1.000/real_time", "RawPut/0/min_time:1.000/real_time"},
      {"StoragePut/1/min_time:1.000/real_time", "RawPut/1/min_time:1.000/real_time"},
      {"StoragePut/2/min_time:1.000/real_time", "RawPut/2/min_time:1.000/real_time"},
      {"StoragePut/0/min_time:1.000/real_time/threads:16", "RawPut/0/min_time:1.000/real_time/threads:16"},
      {"StoragePut/0/min_time:1.000/real_time/threads:16", "StoragePut/0/min_time:1.000/real_time"},
      {"StorageGet/min_time:1.000/real_time", "RawGet/min_time:1.000/real_time"},
  };
  // Single runs are named as above; repeated runs report aggregates, of which the median.
  std::vector<std::pair<std::string, std::string>> all;
  for (const auto& [name, baseline] : pairs) {
    all.emplace_back(name, baseline);
    all.emplace_back(name + "_median", baseline + "_median");
  }
  return geokv::bench::RunWithRatios(argc, argv, std::move(all));
}
