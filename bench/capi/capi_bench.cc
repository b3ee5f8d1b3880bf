// Put and get through the C ABI (libgeokv.so), against the same operations on the Node one
// layer down, in the same binary: the ratio is what the ABI (handle checks, error
// plumbing, copies out) costs. Durability "none" keeps the disk out of the comparison.
//
//   build/release/bench/capi/capi_bench
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <benchmark/benchmark.h>

#include "bench/common/ratio_reporter.h"
#include "core/server/node.h"
#include "geokv/geokv.h"

namespace {

std::string FreshDir(const std::string& name) {
  std::string dir = (std::filesystem::temp_directory_path() / ("geokv-bench-" + name)).string();
  std::filesystem::remove_all(dir);
  return dir;
}

std::string Key(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "key%012llu", static_cast<unsigned long long>(i));
  return buf;
}

const std::string kValue(100, 'v');
constexpr uint64_t kKeys = 100000;

std::unique_ptr<geokv::Node> OpenNode(const std::string& name) {
  geokv::Config config;
  config.data_dir = FreshDir(name);
  config.durability = geokv::storage::Durability::kNone;
  config.log_level = "warn";
  auto node = geokv::Node::Open(config);
  if (!node.ok()) std::abort();
  return std::move(node).value();
}

geokv_db_t* OpenDb(const std::string& name) {
  geokv_options_t options = GEOKV_OPTIONS_INIT;
  options.durability = GEOKV_DURABILITY_NONE;
  geokv_db_t* db = nullptr;
  if (geokv_open(&db, FreshDir(name).c_str(), &options) != GEOKV_OK) std::abort();
  return db;
}

void NodePut(benchmark::State& state) {
  auto node = OpenNode("node-put");
  uint64_t i = 0;
  for (auto _ : state) {
    if (!node->Put(Key(i++), kValue).ok()) state.SkipWithError("put failed");
  }
  state.SetItemsProcessed(state.iterations());
}

void CapiPut(benchmark::State& state) {
  geokv_db_t* db = OpenDb("capi-put");
  uint64_t i = 0;
  for (auto _ : state) {
    std::string k = Key(i++);
    if (geokv_put(db, reinterpret_cast<const uint8_t*>(k.data()), k.size(),
                  reinterpret_cast<const uint8_t*>(kValue.data()), kValue.size()) != GEOKV_OK) {
      state.SkipWithError(geokv_errmsg());
    }
  }
  geokv_close(db);
  state.SetItemsProcessed(state.iterations());
}

void NodeGet(benchmark::State& state) {
  auto node = OpenNode("node-get");
  for (uint64_t i = 0; i < kKeys; ++i) (void)node->Put(Key(i), kValue);
  uint64_t i = 0;
  for (auto _ : state) {
    auto v = node->Get(Key(i++ % kKeys));
    if (!v.ok()) state.SkipWithError("get failed");
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
}

void CapiGet(benchmark::State& state) {
  geokv_db_t* db = OpenDb("capi-get");
  for (uint64_t i = 0; i < kKeys; ++i) {
    std::string k = Key(i);
    geokv_put(db, reinterpret_cast<const uint8_t*>(k.data()), k.size(),
              reinterpret_cast<const uint8_t*>(kValue.data()), kValue.size());
  }
  uint64_t i = 0;
  for (auto _ : state) {
    std::string k = Key(i++ % kKeys);
    uint8_t* v = nullptr;
    size_t len = 0;
    if (geokv_get(&v, &len, db, reinterpret_cast<const uint8_t*>(k.data()), k.size()) != GEOKV_OK) {
      state.SkipWithError(geokv_errmsg());
    }
    geokv_free(v);
  }
  geokv_close(db);
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(NodePut)->MinTime(1.0);
BENCHMARK(CapiPut)->MinTime(1.0);
BENCHMARK(NodeGet)->MinTime(1.0);
BENCHMARK(CapiGet)->MinTime(1.0);

}  // namespace

int main(int argc, char** argv) {
  return geokv::bench::RunWithRatios(argc, argv, {
      {"CapiPut/min_time:1.000", "NodePut/min_time:1.000"},
      {"CapiGet/min_time:1.000", "NodeGet/min_time:1.000"},
  });
}
