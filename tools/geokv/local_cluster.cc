#include "tools/geokv/local_cluster.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>
#include <set>
#include <thread>

#include "core/engine/engine.h"
#include "core/server/client.h"
#include "replication/transport/rtt_table.h"

namespace geokv::tools {

namespace fs = std::filesystem;

double KnownRttMs(const std::string& a, const std::string& b) { return transport::KnownRttMs(a, b); }

namespace {

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

// Ports per kind (peers, clients, metrics): node i takes base+i, base+100+i, base+200+i.
constexpr int kPortBlock = 100;

std::string Endpoint(int port) { return "tcp://127.0.0.1:" + std::to_string(port); }

size_t Nodes(const LocalClusterOptions& o) { return o.regions.size() * static_cast<size_t>(o.nodes_per_region); }
const std::string& RegionOfNode(const LocalClusterOptions& o, size_t node) { return o.regions[node % o.regions.size()]; }

// Node i's file names under the cluster directory: its region's name for the region's
// first node (as with one node per region, so an existing directory starts again), then
// "<region>.2", "<region>.3", ...
std::string NodeName(const LocalClusterOptions& o, size_t node) {
  const size_t k = node / o.regions.size();
  return RegionOfNode(o, node) + (k == 0 ? "" : "." + std::to_string(k + 1));
}

std::string WriteConfig(const LocalClusterOptions& o, const std::string& dir, size_t self) {
  const std::string& own = RegionOfNode(o, self);
  std::ostringstream t;
  t << "data_dir = \"" << dir << "/" << NodeName(o, self) << "\"\n";
  t << "[log]\nlevel = \"" << o.log_level << "\"\n";
  t << "[node]\nid = " << self << "\nmetrics_endpoint = \"127.0.0.1:" << o.base_port + 2 * kPortBlock + static_cast<int>(self)
    << "\"\n";
  t << "[cluster]\nshards = " << o.shards << "\nrequest_timeout_ms = 3000\npreferred_leader = [";
  for (int s = 0; s < o.shards; ++s) t << (s ? ", " : "") << "\"" << o.regions[s % o.regions.size()] << "\"";
  t << "]\n";
  for (size_t i = 0; i < Nodes(o); ++i) {
    t << "[[cluster.nodes]]\nid = " << i << "\nregion = \"" << RegionOfNode(o, i) << "\"\npeer_endpoint = \""
      << Endpoint(o.base_port + static_cast<int>(i)) << "\"\nclient_endpoint = \""
      << Endpoint(o.base_port + kPortBlock + static_cast<int>(i)) << "\"\n";
  }
  t << "[policy]\ndefault = \"strong\"\nrules = { \"lww/\" = \"lww\", \"mv/\" = \"mvreg\", \"counter/\" = \"counter\", \"set/\" = \"set\" }\n";
  // Links by destination region; none to the node's own region (no emulated delay there).
  t << "[wan]\nenabled = true\nseed = " << self + 1 << "\nlinks = { ";
  bool first = true;
  for (const auto& region : o.regions) {
    if (region == own) continue;
    double rtt = o.rtt_ms >= 0 ? o.rtt_ms : KnownRttMs(own, region);
    if (rtt < 0) rtt = 100;
    t << (first ? "" : ", ") << "\"" << region << "\" = { delay_ms = " << static_cast<int64_t>(rtt / 2 + 0.5)
      << ", jitter_ms = " << static_cast<int64_t>(o.jitter_ms) << ", loss = 0.0 }";
    first = false;
  }
  t << " }\n";
  const std::string path = dir + "/" + NodeName(o, self) + ".toml";
  std::ofstream(path) << t.str();
  return path;
}

// Why `o` cannot be run ("" when it can).
std::string CheckOptions(const LocalClusterOptions& o) {
  if (o.regions.size() < 1 || o.regions.size() > 16) return "give 1 to 16 regions";
  std::set<std::string> names;
  for (const auto& r : o.regions) {
    if (!names.insert(r).second) return "region \"" + r + "\" is given twice";
  }
  if (o.nodes_per_region < 1) return "--nodes-per-region must be at least 1";
  const size_t nodes = o.regions.size() * static_cast<size_t>(std::min(o.nodes_per_region, 1 << 16));
  if (nodes > static_cast<size_t>(kPortBlock)) {
    return std::to_string(o.regions.size()) + " regions x " + std::to_string(o.nodes_per_region) + " nodes = " +
           std::to_string(nodes) + " nodes; the port scheme (peers base+i, clients base+100+i, metrics base+200+i) " +
           "has room for " + std::to_string(kPortBlock);
  }
  if (nodes > EngineOptions::kNodesMax) {
    return std::to_string(o.regions.size()) + " regions x " + std::to_string(o.nodes_per_region) + " nodes = " +
           std::to_string(nodes) + " nodes; a cluster has at most " + std::to_string(EngineOptions::kNodesMax);
  }
  if (o.base_port < 1 || o.base_port + 3 * kPortBlock - 1 > 65535) {
    return "--base-port must leave room for base+299 below 65536";
  }
  return "";
}

}  // namespace

int RunLocalCluster(const LocalClusterOptions& o) {
  if (const std::string why = CheckOptions(o); !why.empty()) {
    std::fprintf(stderr, "geokv local: %s\n", why.c_str());
    return 2;
  }
  const size_t nodes = Nodes(o);
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
  for (size_t i = 0; i < nodes; ++i) {
    const std::string config = WriteConfig(o, dir, i);
    const std::string log = dir + "/" + NodeName(o, i) + ".log";
    // A node without a data directory yet is being created with this cluster.
    const bool created = !fs::exists(dir + "/" + NodeName(o, i));
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
    for (pid_t p : children) {
      if (p > 0) kill(p, SIGTERM);
    }
    for (pid_t p : children) {
      if (p > 0) waitpid(p, nullptr, 0);
    }
  };
  auto describe = [&](size_t i) {
    return "node " + std::to_string(i) + " (" + RegionOfNode(o, i) + ")";
  };

  // Ready when every node answers a status request (bounded wait).
  std::vector<std::string> endpoints;
  for (size_t i = 0; i < nodes; ++i) endpoints.push_back(Endpoint(o.base_port + kPortBlock + static_cast<int>(i)));
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
        std::fprintf(stderr, "geokv local: geokvd of %s exited; see %s/%s.log\n", describe(i).c_str(), dir.c_str(),
                     NodeName(o, i).c_str());
        children[i] = -1;
        stop_all();
        return 1;
      }
      if (std::chrono::steady_clock::now() > deadline || g_stop) {
        std::fprintf(stderr, "geokv local: %s did not come up within 30 s\n", describe(i).c_str());
        stop_all();
        return 1;
      }
    }
  }
  // Serving strong keys needs a leader for every group: wait until each node knows one for
  // every group it holds a replica of (status lists only those).
  for (size_t i = 0; i < endpoints.size() && !g_stop; ++i) {
    ClientOptions co;
    co.endpoints = {endpoints[i]};
    co.timeout_ms = 500;
    auto client = Client::Connect(co);
    for (;;) {
      Request r;
      r.op = Op::kStatus;
      Response resp = client.ok() ? (*client)->Call(r) : Response{};
      // Every group has a leader, and each shard is led by (a node of) its preferred region:
      // the leadership transfers right after start-up are over.
      bool all_led = resp.status.ok() && !resp.values.empty();
      for (const auto& line : resp.values) {
        if (line.find("leader=-1") != std::string::npos) all_led = false;
        unsigned shard = 0;
        int leader = -1;
        if (std::sscanf(line.c_str(), "shard %u: leader=%d", &shard, &leader) == 2 &&
            (leader < 0 || static_cast<size_t>(leader) % o.regions.size() != shard % o.regions.size())) {
          all_led = false;
        }
      }
      if (all_led) break;
      if (std::chrono::steady_clock::now() > deadline || g_stop) {
        std::fprintf(stderr, "geokv local: %s found no leader for some shard within 30 s\n", describe(i).c_str());
        stop_all();
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  std::printf("geokv local: %zu nodes in %zu regions up (data and logs in %s)\n", nodes, o.regions.size(), dir.c_str());
  for (size_t i = 0; i < nodes; ++i) {
    std::printf("  node %-2zu %-14s clients %s  metrics http://127.0.0.1:%d/metrics\n", i, RegionOfNode(o, i).c_str(),
                endpoints[i].c_str(), o.base_port + 2 * kPortBlock + static_cast<int>(i));
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
    if (dead > 0) {
      for (size_t i = 0; i < nodes; ++i) {
        if (children[i] != dead) continue;
        std::fprintf(stderr, "geokv local: geokvd of %s exited (pid %d); see %s/%s.log\n", describe(i).c_str(), dead,
                     dir.c_str(), NodeName(o, i).c_str());
        children[i] = -1;  // reaped: not to be signalled again
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::printf("geokv local: stopping\n");
  stop_all();
  return 0;
}

}  // namespace geokv::tools
