// geokv-bench: end-to-end figures of a local multi-region cluster (geokvd processes started
// by `geokv local`), each reported as a ratio against a baseline measured in the same run:
//
//  1. with the AWS round trips of us-east, eu-west, ap-northeast emulated (leader of the
//     measured shard in us-east):
//     - strong write latency p50/p99 per client region / (client<->leader RTT +
//       leader<->nearest-majority RTT), the physical lower bound;
//     - strong read latency per client region / client<->leader RTT (lease reads);
//     - eventual write latency / a bare WiredTiger commit with the same sync, measured here;
//     - convergence lag (write in one region, visible in another) / one-way delay;
//  2. without emulation: strong write throughput with 3 replicas / with 1 replica, and
//     CPU-seconds of the geokvd processes per operation.
//
//   build/release/bin/geokv-bench [--ops N] [--seconds S] [--json out.json]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/server/client.h"
#include "core/storage/wiredtiger_storage.h"
#include "replication/crdt/codec.h"
#include "tools/geokv/local_cluster.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// A `geokv local` child process; stopped (SIGINT, then waited) on destruction.
class LocalCluster {
 public:
  LocalCluster(const std::string& geokv, const std::vector<std::string>& regions, double rtt_ms, int base_port,
               const std::string& dir)
      : dir_(dir) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::string joined;
    for (const auto& r : regions) joined += (joined.empty() ? "" : ",") + r;
    const std::string ready = dir + "/ready";
    std::fflush(stdout);  // the child must not inherit (and print again) our buffered output
    pid_ = fork();
    if (pid_ == 0) {
      FILE* out = std::freopen((dir + "/local.log").c_str(), "w", stdout);
      (void)out;
      std::vector<std::string> args = {geokv, "local", "--regions", joined, "--base-port", std::to_string(base_port),
                                       "--dir", dir + "/data", "--ready-file", ready, "--jitter-ms", "0"};
      if (rtt_ms >= 0) {
        args.push_back("--rtt-ms");
        args.push_back(std::to_string(rtt_ms));
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(geokv.c_str(), argv.data());
      _exit(127);
    }
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (!fs::exists(ready) && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream in(ready);
    for (std::string line; std::getline(in, line);) endpoints_.push_back(line);
  }
  ~LocalCluster() {
    if (pid_ > 0) {
      kill(pid_, SIGINT);
      waitpid(pid_, nullptr, 0);
    }
  }
  const std::vector<std::string>& endpoints() const { return endpoints_; }
  bool ok() const { return !endpoints_.empty(); }

  // CPU seconds used so far by the cluster's geokvd processes (children of `geokv local`).
  double GeokvdCpuSeconds() const {
    double total = 0;
    for (const auto& entry : fs::directory_iterator("/proc")) {
      const std::string name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream stat(entry.path() / "stat");
      std::string line;
      if (!std::getline(stat, line)) continue;
      const auto close = line.rfind(')');
      if (close == std::string::npos || line.find("(geokvd)") == std::string::npos) continue;
      std::vector<std::string> f;
      std::string tok;
      std::istringstream rest(line.substr(close + 2));
      while (rest >> tok) f.push_back(tok);
      if (f.size() < 13 || std::stol(f[1]) != pid_) continue;  // field 4: ppid
      total += static_cast<double>(std::stoll(f[11]) + std::stoll(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
    }
    return total;
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  std::vector<std::string> endpoints_;
};

std::unique_ptr<geokv::Client> Connect(const std::string& endpoint) {
  geokv::ClientOptions o;
  o.endpoints = {endpoint};
  o.timeout_ms = 10000;
  auto c = geokv::Client::Connect(o);
  if (!c.ok()) {
    std::fprintf(stderr, "geokv-bench: %s\n", c.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(c).value();
}

// A key of the given strong shard (the engine hashes keys with FNV-1a 64).
std::string KeyInShard(uint32_t shard, uint32_t shards, int salt) {
  for (int i = 0;; ++i) {
    std::string k = "bench/" + std::to_string(salt) + "/" + std::to_string(i);
    if (geokv::crdt::Fnv1a64(k) % shards == shard) return k;
  }
}

double TimedCall(geokv::Client& c, geokv::Request r, bool* ok) {
  const auto start = Clock::now();
  geokv::Response resp = c.Call(std::move(r));
  *ok = resp.status.ok() || resp.status.IsNotFound();
  return Ms(Clock::now() - start);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"geokv-bench: end-to-end latency, convergence and throughput of a local geokv cluster"};
  int ops = 50;
  double seconds = 5;
  int clients_per_region = 8;
  std::string json_path;
  app.add_option("--ops", ops, "operations per region and kind in the latency runs")->check(CLI::Range(5, 100000));
  app.add_option("--seconds", seconds, "length of each throughput run")->check(CLI::Range(1.0, 600.0));
  app.add_option("--clients", clients_per_region, "concurrent clients per region in throughput runs");
  app.add_option("--json", json_path, "also write the figures as JSON");
  CLI11_PARSE(app, argc, argv);

  const fs::path self = fs::read_symlink("/proc/self/exe");
  const std::string geokv = (self.parent_path() / "geokv").string();
  const std::string work = (fs::temp_directory_path() / ("geokv-bench-" + std::to_string(getpid()))).string();
  const int base_port = 21000 + (getpid() % 200) * 40;
  const std::vector<std::string> regions = {"us-east", "eu-west", "ap-northeast"};
  const uint32_t shards = 4;  // geokv local's default; shard 0's preferred leader is regions[0]
  nlohmann::json out;
  int failures = 0;

  // ---- 1. emulated WAN --------------------------------------------------------------------
  {
    LocalCluster cluster(geokv, regions, -1, base_port, work + "/wan");
    if (!cluster.ok()) { std::fprintf(stderr, "geokv-bench: the cluster did not start (see %s)\n", work.c_str()); return 1; }
    std::vector<std::unique_ptr<geokv::Client>> clients;
    for (const auto& e : cluster.endpoints()) clients.push_back(Connect(e));
    const std::string key = KeyInShard(0, shards, 1);
    std::printf("== strong key in shard 0 (leader: %s), %d ops per region ==\n", regions[0].c_str(), ops);
    std::printf("%-14s %9s %9s %9s %11s %11s %9s %9s\n", "client region", "bound ms", "put p50", "put p99",
                "p50/bound", "p99/bound", "get p50", "get/rtt");
    for (size_t i = 0; i < clients.size(); ++i) {
      const double rtt_leader = i == 0 ? 0 : geokv::tools::KnownRttMs(regions[i], regions[0]);
      double nearest = 1e9;
      for (size_t j = 1; j < regions.size(); ++j) nearest = std::min(nearest, geokv::tools::KnownRttMs(regions[0], regions[j]));
      const double bound = rtt_leader + nearest;
      std::vector<double> put, get;
      for (int n = 0; n < ops; ++n) {
        bool ok = false;
        geokv::Request p;
        p.op = geokv::Op::kPut;
        p.key = key;
        p.value = std::to_string(n);
        put.push_back(TimedCall(*clients[i], p, &ok));
        failures += !ok;
        geokv::Request g;
        g.op = geokv::Op::kGet;
        g.key = key;
        get.push_back(TimedCall(*clients[i], g, &ok));
        failures += !ok;
      }
      const double get_ratio = rtt_leader > 0 ? Pct(get, 0.5) / rtt_leader : 0;
      std::printf("%-14s %9.1f %9.1f %9.1f %10.3fx %10.3fx %9.1f %8.3fx\n", regions[i].c_str(), bound, Pct(put, 0.5),
                  Pct(put, 0.99), Pct(put, 0.5) / bound, Pct(put, 0.99) / bound, Pct(get, 0.5), get_ratio);
      out["strong"][regions[i]] = {{"bound_ms", bound}, {"put_p50_ms", Pct(put, 0.5)}, {"put_p99_ms", Pct(put, 0.99)},
                                   {"put_p50_ratio", Pct(put, 0.5) / bound}, {"put_p99_ratio", Pct(put, 0.99) / bound},
                                   {"get_p50_ms", Pct(get, 0.5)}, {"get_p50_over_rtt", get_ratio}};
    }

    // Eventual writes against a bare WiredTiger commit with the same sync, in this process.
    std::vector<double> bare;
    {
      auto store = geokv::storage::WiredTigerStorage::Open({.dir = work + "/bare"});
      if (store.ok()) {
        for (int n = 0; n < ops; ++n) {
          const auto start = Clock::now();
          (void)(*store)->Put("t", "k" + std::to_string(n), "1", geokv::storage::Durability::kSync);
          bare.push_back(Ms(Clock::now() - start));
        }
      }
    }
    std::vector<double> eventual;
    for (int n = 0; n < ops; ++n) {
      bool ok = false;
      geokv::Request a;
      a.op = geokv::Op::kAdd;
      a.key = "counter/bench";
      a.delta = 1;
      eventual.push_back(TimedCall(*clients[0], a, &ok));
      failures += !ok;
    }
    std::printf("\n== eventual write (counter add, local region) vs a bare WiredTiger synced commit ==\n");
    std::printf("counter add p50 %.2f ms, p99 %.2f ms; bare commit p50 %.2f ms; ratio p50 %.2fx\n", Pct(eventual, 0.5),
                Pct(eventual, 0.99), Pct(bare, 0.5), Pct(eventual, 0.5) / std::max(1e-3, Pct(bare, 0.5)));
    out["eventual"] = {{"add_p50_ms", Pct(eventual, 0.5)}, {"add_p99_ms", Pct(eventual, 0.99)},
                       {"bare_commit_p50_ms", Pct(bare, 0.5)}, {"ratio_p50", Pct(eventual, 0.5) / std::max(1e-3, Pct(bare, 0.5))}};

    // Convergence: an increment in region 0, polled in every other region.
    std::printf("\n== convergence lag of a counter increment written in %s ==\n", regions[0].c_str());
    geokv::Request get;
    get.op = geokv::Op::kGet;
    get.key = "counter/lag";
    for (size_t j = 1; j < clients.size(); ++j) {
      std::vector<double> lags;
      for (int n = 0; n < std::min(ops, 20); ++n) {
        const int64_t before = clients[j]->Call(get).number;
        geokv::Request a;
        a.op = geokv::Op::kAdd;
        a.key = "counter/lag";
        a.delta = 1;
        const auto start = Clock::now();
        clients[0]->Call(a);
        while (clients[j]->Call(get).number <= before && Clock::now() - start < std::chrono::seconds(10)) {}
        lags.push_back(Ms(Clock::now() - start));
        // Let the other regions settle before the next sample.
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
      }
      const double one_way = geokv::tools::KnownRttMs(regions[0], regions[j]) / 2;
      std::printf("%-14s one-way %6.1f ms, lag p50 %7.1f ms, ratio %.2fx\n", regions[j].c_str(), one_way,
                  Pct(lags, 0.5), Pct(lags, 0.5) / one_way);
      out["convergence"][regions[j]] = {{"one_way_ms", one_way}, {"lag_p50_ms", Pct(lags, 0.5)},
                                        {"ratio_p50", Pct(lags, 0.5) / one_way}};
    }
  }

  // ---- 2. throughput without emulation: 3 replicas vs 1 ------------------------------------
  std::printf("\n== strong write throughput on loopback, %d clients, %.0f s ==\n", clients_per_region, seconds);
  double rate[2] = {0, 0}, cpu_per_op[2] = {0, 0};
  const std::vector<std::vector<std::string>> layouts = {{"us-east"}, regions};
  for (int l = 0; l < 2; ++l) {
    LocalCluster cluster(geokv, layouts[l], 0, base_port + 10 * (l + 1) + 400, work + "/tp" + std::to_string(l));
    if (!cluster.ok()) { std::fprintf(stderr, "geokv-bench: the cluster did not start\n"); return 1; }
    std::atomic<uint64_t> done{0}, errors{0};
    std::atomic<bool> stop{false};
    const double cpu_before = cluster.GeokvdCpuSeconds();
    std::vector<std::thread> threads;
    for (int t = 0; t < clients_per_region; ++t) {
      threads.emplace_back([&, t] {
        auto c = Connect(cluster.endpoints()[0]);
        for (uint64_t n = 0; !stop.load(); ++n) {
          geokv::Request p;
          p.op = geokv::Op::kPut;
          p.key = "tp/" + std::to_string(t) + "/" + std::to_string(n % 1000);
          p.value = std::string(100, 'v');
          if (c->Call(p).status.ok()) done++; else errors++;
        }
      });
    }
    const auto start = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& th : threads) th.join();
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    rate[l] = static_cast<double>(done.load()) / elapsed;
    cpu_per_op[l] = (cluster.GeokvdCpuSeconds() - cpu_before) / std::max<double>(1, static_cast<double>(done.load()));
    failures += errors.load() > done.load() / 100;  // more than 1% errors
    std::printf("%zu replica(s): %9.0f writes/s, %.1f us CPU per write (all geokvd processes), %llu errors\n",
                layouts[l].size(), rate[l], cpu_per_op[l] * 1e6, static_cast<unsigned long long>(errors.load()));
  }
  std::printf("ratio 3 replicas / 1 replica: %.3fx throughput, %.2fx CPU per write\n", rate[1] / rate[0],
              cpu_per_op[1] / std::max(1e-12, cpu_per_op[0]));
  out["throughput"] = {{"one_replica_per_s", rate[0]}, {"three_replicas_per_s", rate[1]},
                       {"ratio", rate[1] / rate[0]}, {"cpu_us_per_write_1", cpu_per_op[0] * 1e6},
                       {"cpu_us_per_write_3", cpu_per_op[1] * 1e6}};
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  fs::remove_all(work);
  if (failures != 0) std::printf("geokv-bench: %d operations failed\n", failures);
  return failures == 0 ? 0 : 1;
}
