#include "tools/geokv/local_cluster.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>
#include <thread>

#include "core/server/client.h"
#include "replication/transport/rtt_table.h"

namespace geokv::tools {

namespace fs = std::filesystem;

double KnownRttMs(const std::string& a, const std::string& b) { return transport::KnownRttMs(a, b); }

namespace {

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

std::string Endpoint(int port) { return "tcp://127.0.0.1:" + std::to_string(port); }

std::string WriteConfig(const LocalClusterOptions& o, const std::string& dir, size_t self) {
  std::ostringstream t;
  t << "data_dir = \"" << dir << "/" << o.regions[self] << "\"\n";
  t << "[log]\nlevel = \"" << o.log_level << "\"\n";
  t << "[node]\nid = " << self << "\nmetrics_endpoint = \"127.0.0.1:" << o.base_port + 200 + self << "\"\n";
  t << "[cluster]\nshards = " << o.shards << "\nrequest_timeout_ms = 3000\npreferred_leader = [";
  for (int s = 0; s < o.shards; ++s) t << (s ? ", " : "") << "\"" << o.regions[s % o.regions.size()] << "\"";
  t << "]\n";
  for (size_t i = 0; i < o.regions.size(); ++i) {
    t << "[[cluster.nodes]]\nid = " << i << "\nregion = \"" << o.regions[i] << "\"\npeer_endpoint = \""
      << Endpoint(o.base_port + static_cast<int>(i)) << "\"\nclient_endpoint = \""
      << Endpoint(o.base_port + 100 + static_cast<int>(i)) << "\"\n";
  }
  t << "[policy]\ndefault = \"strong\"\nrules = { \"lww/\" = \"lww\", \"mv/\" = \"mvreg\", \"counter/\" = \"counter\", \"set/\" = \"set\" }\n";
  t << "[wan]\nenabled = true\nseed = " << self + 1 << "\nlinks = { ";
  bool first = true;
  for (size_t i = 0; i < o.regions.size(); ++i) {
    if (i == self) continue;
    double rtt = o.rtt_ms >= 0 ? o.rtt_ms : KnownRttMs(o.regions[self], o.regions[i]);
    if (rtt < 0) rtt = 100;
    t << (first ? "" : ", ") << "\"" << o.regions[i] << "\" = { delay_ms = " << static_cast<int64_t>(rtt / 2 + 0.5)
      << ", jitter_ms = " << static_cast<int64_t>(o.jitter_ms) << ", loss = 0.0 }";
    first = false;
  }
  t << " }\n";
  const std::string path = dir + "/" + o.regions[self] + ".toml";
  std::ofstream(path) << t.str();
  return path;
}

}  // namespace

int RunLocalCluster(const LocalClusterOptions& o) {
  if (o.regions.size() < 1 || o.regions.size() > 16) {
    std::fprintf(stderr, "geokv local: give 1 to 16 regions\n");
    return 2;
  }
  std::string dir = o.dir;
  if (dir.empty()) {
    std::string pattern = (fs::temp_directory_path() / "geokv-local-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) return 1;
    dir = pattern;
  }
  fs::create_directories(dir);
  std::string geokvd = o.geokvd;
  if (geokvd.empty()) {
    const fs::path self = fs::read_symlink("/proc/self/exe");
    for (const auto& candidate : {self.parent_path() / "geokvd", self.parent_path() / ".." / "geokvd" / "geokvd",
                                  self.parent_path().parent_path() / "geokvd"}) {
      if (fs::exists(candidate) && !fs::is_directory(candidate)) { geokvd = candidate.string(); break; }
    }
  }
  if (geokvd.empty() || !fs::exists(geokvd)) {
    std::fprintf(stderr, "geokv local: cannot find geokvd next to this program (use --geokvd)\n");
    return 2;
  }

  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  std::vector<pid_t> children;
  for (size_t i = 0; i < o.regions.size(); ++i) {
    const std::string config = WriteConfig(o, dir, i);
    const std::string log = dir + "/" + o.regions[i] + ".log";
    // A node without a data directory yet is being created with this cluster.
    const bool created = !fs::exists(dir + "/" + o.regions[i]);
    pid_t pid = fork();
    if (pid == 0) {
      FILE* out = std::freopen(log.c_str(), "a", stdout);
      (void)out;
      dup2(fileno(stdout), fileno(stderr));
      if (created) {
        execl(geokvd.c_str(), "geokvd", "--config", config.c_str(), "--new-cluster", static_cast<char*>(nullptr));
      } else {
        execl(geokvd.c_str(), "geokvd", "--config", config.c_str(), static_cast<char*>(nullptr));
      }
      _exit(127);
    }
    children.push_back(pid);
  }
  auto stop_all = [&] {
    for (pid_t p : children) kill(p, SIGTERM);
    for (pid_t p : children) waitpid(p, nullptr, 0);
  };

  // Ready when every node answers a status request (bounded wait).
  std::vector<std::string> endpoints;
  for (size_t i = 0; i < o.regions.size(); ++i) endpoints.push_back(Endpoint(o.base_port + 100 + static_cast<int>(i)));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (size_t i = 0; i < endpoints.size() && !g_stop; ++i) {
    ClientOptions co;
    co.endpoints = {endpoints[i]};
    co.timeout_ms = 500;
    auto client = Client::Connect(co);
    for (;;) {
      Request r;
      r.op = Op::kStatus;
      if (client.ok() && (*client)->Call(r).status.ok()) break;
      int status = 0;
      if (waitpid(children[i], &status, WNOHANG) == children[i]) {
        std::fprintf(stderr, "geokv local: geokvd for %s exited; see %s/%s.log\n", o.regions[i].c_str(), dir.c_str(),
                     o.regions[i].c_str());
        stop_all();
        return 1;
      }
      if (std::chrono::steady_clock::now() > deadline || g_stop) {
        std::fprintf(stderr, "geokv local: %s did not come up within 30 s\n", o.regions[i].c_str());
        stop_all();
        return 1;
      }
    }
  }
  // Serving strong keys needs a leader for every group: wait until each node knows one.
  for (size_t i = 0; i < endpoints.size() && !g_stop; ++i) {
    ClientOptions co;
    co.endpoints = {endpoints[i]};
    co.timeout_ms = 500;
    auto client = Client::Connect(co);
    for (;;) {
      Request r;
      r.op = Op::kStatus;
      Response resp = client.ok() ? (*client)->Call(r) : Response{};
      // Every group has a leader, and each shard is led by its preferred region (the
      // leadership transfers right after start-up are over).
      bool all_led = resp.status.ok() && !resp.values.empty();
      for (const auto& line : resp.values) {
        if (line.find("leader=-1") != std::string::npos) all_led = false;
        unsigned shard = 0;
        int leader = -1;
        if (std::sscanf(line.c_str(), "shard %u: leader=%d", &shard, &leader) == 2 &&
            leader != static_cast<int>(shard % o.regions.size())) {
          all_led = false;
        }
      }
      if (all_led) break;
      if (std::chrono::steady_clock::now() > deadline || g_stop) {
        std::fprintf(stderr, "geokv local: %s found no leader for some shard within 30 s\n", o.regions[i].c_str());
        stop_all();
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  std::printf("geokv local: %zu regions up (data and logs in %s)\n", o.regions.size(), dir.c_str());
  for (size_t i = 0; i < o.regions.size(); ++i) {
    std::printf("  %-14s clients %s  metrics http://127.0.0.1:%d/metrics\n", o.regions[i].c_str(),
                endpoints[i].c_str(), o.base_port + 200 + static_cast<int>(i));
  }
  std::printf("stop with Ctrl-C\n");
  std::fflush(stdout);
  if (!o.ready_file.empty()) {
    std::ofstream ready(o.ready_file + ".tmp");
    for (const auto& e : endpoints) ready << e << "\n";
    ready.close();
    fs::rename(o.ready_file + ".tmp", o.ready_file);
  }
  while (!g_stop) {
    int status = 0;
    pid_t dead = waitpid(-1, &status, WNOHANG);
    if (dead > 0) std::fprintf(stderr, "geokv local: a geokvd exited (pid %d)\n", dead);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::printf("geokv local: stopping\n");
  stop_all();
  return 0;
}

}  // namespace geokv::tools
