#include "tests/integration/harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "tests/testing/ports.h"
#include <httplib.h>

namespace geokv::integration {

namespace fs = std::filesystem;

std::string GeokvdPath() {
  const char* other = std::getenv("GEOKV_INTEG_GEOKVD");
  return other != nullptr && *other != '\0' ? other : GEOKV_GEOKVD;
}
std::string GeokvCliPath() { return GEOKV_CLI; }
std::string PorcupinePath() { return GEOKV_PORCUPINE_CHECK; }

std::string FaketimeLibrary() {
  const char* other = std::getenv("GEOKV_INTEG_LIBFAKETIME");
  const std::string path = other != nullptr && *other != '\0' ? other : "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
  return ::access(path.c_str(), R_OK) == 0 ? path : "";
}

// ---- TempDir -------------------------------------------------------------------------

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/geokv-integ-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << pattern << ": " << std::strerror(errno);
    return;
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  if (std::getenv("GEOKV_INTEG_KEEP") != nullptr) {
    std::fprintf(stderr, "[integration] kept %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
}

// ---- Child ---------------------------------------------------------------------------

bool Child::Start(const std::vector<std::string>& argv, const std::string& log_path,
                  const std::vector<std::string>& env) {
  KillAndReap();
  if (argv.empty()) return false;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The environment is built before fork: after it only async-signal-safe calls are allowed.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& x : env) replaced = replaced || x.substr(0, x.find('=')) == name;
    if (!replaced) env_strings.push_back(entry);
  }
  for (const auto& x : env) env_strings.push_back(x);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    ::close(fd);
    return false;
  }
  if (pid == 0) {
    // Only async-signal-safe calls until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  ::close(fd);
  pid_ = pid;
  status_ = 0;
  return true;
}

void Child::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

bool Child::Exited() {
  if (pid_ <= 0) return true;
  int st = 0;
  const pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    pid_ = -1;
    return true;
  }
  return false;
}

bool Child::Wait(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (Exited()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
}

void Child::KillAndReap() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int st = 0;
  while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  status_ = st;
  pid_ = -1;
}

std::optional<int> RunProgram(const std::vector<std::string>& argv, milliseconds timeout,
                              std::string* output) {
  TempDir dir;
  const std::string log = dir.path() + "/out.log";
  Child child;
  if (!child.Start(argv, log)) return std::nullopt;
  const bool exited = child.Wait(timeout);
  child.KillAndReap();
  if (output != nullptr) *output = ReadFile(log);
  if (!exited) return std::nullopt;
  return child.wait_status();
}

// ---- ports ---------------------------------------------------------------------------

int PickPort() {
  // [20000, 32600): below Linux's ephemeral range (32768+), so outgoing connections do not
  // take our ports between the probe and the bind; away from the shared 7100-7400 clusters.
  constexpr int kLow = 20000, kHigh = 32600;
  static std::atomic<int> next{kLow + static_cast<int>(getpid() % 600) * 20};
  for (int tries = 0; tries < kHigh - kLow; ++tries) {
    int port = next.fetch_add(1);
    if (port >= kHigh) {
      port = kLow + (port - kLow) % (kHigh - kLow);
    }
    if (geokv::testing::PortFree(port)) return port;
  }
  ADD_FAILURE() << "no free port in [20000, 32600)";
  return 0;
}

// ---- LocalCluster --------------------------------------------------------------------

LocalCluster::LocalCluster(std::string dir, ClusterOptions options)
    : dir_(std::move(dir)), options_(std::move(options)) {
  const size_t genesis = options_.regions.size() * static_cast<size_t>(std::max(options_.nodes_per_region, 1));
  for (size_t i = 0; i < genesis; ++i) NewNode(i % options_.regions.size());
  for (size_t i = 0; i < nodes_.size(); ++i) WriteFile(nodes_[i].config, WriteConfig(i));
}

size_t LocalCluster::NewNode(size_t region_index, std::optional<size_t> ports_of) {
  const size_t i = nodes_.size();
  Node& n = nodes_.emplace_back();
  n.region = region_index;
  if (ports_of) {
    n.peer_port = nodes_[*ports_of].peer_port;
    n.client_port = nodes_[*ports_of].client_port;
    n.metrics_port = nodes_[*ports_of].metrics_port;
  } else {
    n.peer_port = PickPort();
    n.client_port = PickPort();
    if (options_.metrics) n.metrics_port = PickPort();
  }
  const std::string base = dir_ + "/n" + std::to_string(i);
  fs::create_directories(base + "/data");
  n.config = base + "/geokvd.toml";
  n.log = base + "/geokvd.log";
  n.data = base + "/data";
  n.child = std::make_unique<Child>();
  return i;
}

size_t LocalCluster::AddNode(size_t region_index, const std::optional<ClusterOptions::CurveNode>& curve) {
  if (options_.curve.has_value() != curve.has_value()) {
    ADD_FAILURE() << "LocalCluster::AddNode: CURVE key files are needed exactly when the cluster runs CURVE";
  }
  const size_t i = NewNode(region_index);
  nodes_[i].added = true;
  if (options_.curve && curve) {
    ClusterOptions::Curve& c = *options_.curve;
    // Per-node vectors: the new node's entry at index i.
    c.secret_key_files.resize(i + 1);
    c.public_key_files.resize(i + 1);
    c.public_keys.resize(i + 1);
    c.allowed_keys_files.resize(i + 1);
    c.secret_key_files[i] = curve->secret_key_file;
    c.public_key_files[i] = curve->public_key_file;
    c.public_keys[i] = curve->public_key;
    c.allowed_keys_files[i] = curve->allowed_keys_file;
  }
  WriteFile(nodes_[i].config, WriteConfig(i));
  return i;
}

void LocalCluster::RewriteConfig(size_t i) { WriteFile(nodes_[i].config, WriteConfig(i)); }

size_t LocalCluster::AddReplacement(size_t old) {
  if (options_.curve) ADD_FAILURE() << "LocalCluster::AddReplacement: not with CURVE (no keys for the new node)";
  if (running(old)) ADD_FAILURE() << "LocalCluster::AddReplacement: node " << old << " is still running";
  nodes_[old].removed = true;
  const size_t i = NewNode(nodes_[old].region, old);
  nodes_[i].added = true;
  WriteFile(nodes_[i].config, WriteConfig(i));
  return i;
}

LocalCluster::~LocalCluster() {
  for (auto& n : nodes_) n.child->KillAndReap();
  if (::testing::Test::HasFailure()) {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      std::fprintf(stderr, "---- node %zu (%s) log tail: %s\n%s\n", i, region(i).c_str(),
                   nodes_[i].log.c_str(), LogTail(i, 40).c_str());
    }
  }
}

std::string LocalCluster::WriteConfig(size_t self) const {
  std::ostringstream t;
  t << "data_dir = \"" << nodes_[self].data << "\"\n";
  t << "[storage]\ndurability = \"sync\"\n";
  t << "[log]\nlevel = \"" << options_.log_level << "\"\n";
  t << "[node]\nid = " << self << "\n";
  if (options_.metrics) t << "metrics_endpoint = \"127.0.0.1:" << nodes_[self].metrics_port << "\"\n";
  t << "[cluster]\nshards = " << options_.shards << "\nrequest_timeout_ms = " << options_.request_timeout_ms
    << "\npreferred_leader = [";
  for (int s = 0; s < options_.shards; ++s) {
    const std::string region = static_cast<size_t>(s) < options_.preferred_leader.size()
                                   ? options_.preferred_leader[s]
                                   : options_.regions[0];
    t << (s ? ", " : "") << "\"" << region << "\"";
  }
  t << "]\n";
  for (size_t i = 0; i < nodes_.size(); ++i) {
    t << "[[cluster.nodes]]\nid = " << i << "\nregion = \"" << region(i) << "\"\npeer_endpoint = \""
      << peer_endpoint(i) << "\"\nclient_endpoint = \"" << client_endpoint(i) << "\"\n";
    if (nodes_[i].added) t << "added = true\n";
    if (nodes_[i].removed) t << "removed = true\n";
    if (options_.curve) t << "curve_public_key = \"" << options_.curve->public_keys[i] << "\"\n";
  }
  t << "[policy]\ndefault = \"strong\"\nrules = { " << options_.policy_rules << " }\n";
  // Links by destination region; none to the node's own region (no emulated delay there).
  t << "[wan]\nenabled = true\nseed = " << self + 1 << "\nlinks = { ";
  bool first = true;
  const size_t own = region_index(self);
  for (size_t r = 0; r < options_.regions.size(); ++r) {
    if (r == own) continue;
    const int64_t distance = r > own ? static_cast<int64_t>(r - own) : static_cast<int64_t>(own - r);
    t << (first ? "" : ", ") << "\"" << options_.regions[r]
      << "\" = { delay_ms = " << options_.delay_base_ms + options_.delay_step_ms * distance
      << ", jitter_ms = " << options_.jitter_ms << ", loss = 0.0 }";
    first = false;
  }
  t << " }\n";
  if (self < options_.clock_offset_ms.size() && options_.clock_offset_ms[self] != 0) {
    t << "clock_offset_ms = " << options_.clock_offset_ms[self] << "\n";
  }
  if (options_.curve) {
    t << "[curve]\nsecret_key_file = \"" << options_.curve->secret_key_files[self] << "\"\npublic_key_file = \""
      << options_.curve->public_key_files[self] << "\"\nallowed_keys_file = \""
      << options_.curve->allowed_keys_files[self] << "\"\n";
  }
  return t.str();
}

std::string LocalCluster::client_endpoint(size_t i) const {
  return "tcp://127.0.0.1:" + std::to_string(nodes_[i].client_port);
}

std::string LocalCluster::peer_endpoint(size_t i) const {
  return "tcp://127.0.0.1:" + std::to_string(nodes_[i].peer_port);
}

std::vector<std::string> LocalCluster::client_endpoints() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < nodes_.size(); ++i) out.push_back(client_endpoint(i));
  return out;
}

bool LocalCluster::StartNode(size_t i) {
  std::ofstream(nodes_[i].log, std::ios::app) << "==== harness: starting node " << i << "\n";
  std::vector<std::string> env;
  if (i < options_.faketime.size() && !options_.faketime[i].empty()) {
    // FAKETIME_NO_CACHE: every clock read sees the offset (no cached start-up value).
    env = {"LD_PRELOAD=" + FaketimeLibrary(), "FAKETIME=" + options_.faketime[i], "FAKETIME_NO_CACHE=1"};
    // An ASan-built geokvd refuses to start when another library is preloaded before the
    // ASan runtime; libfaketime only wraps clock calls, so the order does not matter here.
    const char* asan = std::getenv("ASAN_OPTIONS");
    env.push_back(std::string("ASAN_OPTIONS=") + (asan != nullptr && *asan != '\0' ? std::string(asan) + ":" : "") +
                  "verify_asan_link_order=0");
    std::ofstream(nodes_[i].log, std::ios::app) << "==== harness: libfaketime FAKETIME=" << options_.faketime[i] << "\n";
  }
  if (i < options_.env.size()) {
    for (const auto& e : options_.env[i]) {
      env.push_back(e);
      if (e.rfind("LD_PRELOAD=", 0) == 0) {
        // As above: a preloaded library would come before the ASan runtime.
        const char* asan = std::getenv("ASAN_OPTIONS");
        env.push_back(std::string("ASAN_OPTIONS=") + (asan != nullptr && *asan != '\0' ? std::string(asan) + ":" : "") +
                      "verify_asan_link_order=0");
      }
      std::ofstream(nodes_[i].log, std::ios::app) << "==== harness: environment " << e << "\n";
    }
  }
  std::vector<std::string> argv = {GeokvdPath(), "--config", nodes_[i].config};
  // Only the genesis nodes create the cluster; an added node joins it.
  if (!nodes_[i].started && !nodes_[i].added) argv.push_back("--new-cluster");
  nodes_[i].started = true;
  return nodes_[i].child->Start(argv, nodes_[i].log, env);
}

std::string LocalCluster::StartAll(milliseconds deadline) {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!StartNode(i)) return "cannot start node " + std::to_string(i);
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    std::string err = WaitServing(i, deadline);
    if (!err.empty()) return err;
  }
  return "";
}

std::string LocalCluster::WaitServing(size_t i, milliseconds deadline) {
  auto client = ClientFor(i, 500);
  if (!client) return "cannot create a client for node " + std::to_string(i);
  const auto end = Clock::now() + deadline;
  for (;;) {
    Request r;
    r.op = Op::kStatus;
    if (client->Call(r).status.ok()) return "";
    if (nodes_[i].child->Exited()) {
      return "node " + std::to_string(i) + " exited (wait status " + std::to_string(nodes_[i].child->wait_status()) +
             "); log:\n" + LogTail(i);
    }
    if (Clock::now() >= end) return "node " + std::to_string(i) + " did not answer status before the deadline";
    std::this_thread::sleep_for(milliseconds(50));
  }
}

void LocalCluster::KillNode(size_t i) {
  std::ofstream(nodes_[i].log, std::ios::app) << "==== harness: SIGKILL node " << i << "\n";
  nodes_[i].child->KillAndReap();
}

std::optional<int> LocalCluster::TerminateNode(size_t i, milliseconds deadline) {
  Child& c = *nodes_[i].child;
  if (!c.running()) return std::nullopt;
  c.Signal(SIGTERM);
  if (!c.Wait(deadline)) {
    c.KillAndReap();
    return std::nullopt;
  }
  return c.wait_status();
}

bool LocalCluster::SignalNode(size_t i, int sig) {
  if (!nodes_[i].child->running()) return false;
  nodes_[i].child->Signal(sig);
  return true;
}

void LocalCluster::PauseNode(size_t i) {
  std::ofstream(nodes_[i].log, std::ios::app) << "==== harness: SIGSTOP node " << i << "\n";
  nodes_[i].child->Signal(SIGSTOP);
}

void LocalCluster::ResumeNode(size_t i) {
  nodes_[i].child->Signal(SIGCONT);
  std::ofstream(nodes_[i].log, std::ios::app) << "==== harness: SIGCONT node " << i << "\n";
}

bool LocalCluster::running(size_t i) { return !nodes_[i].child->Exited(); }

std::string LocalCluster::DescribeExit(size_t i) const {
  const int st = nodes_[i].child->wait_status();
  if (WIFEXITED(st)) return "exited with status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) {
    return "killed by signal " + std::to_string(WTERMSIG(st)) + " (" + strsignal(WTERMSIG(st)) + ")";
  }
  return "wait status " + std::to_string(st);
}

std::unique_ptr<Client> LocalCluster::ClientFor(size_t i, int64_t timeout_ms, const ClientOptions* curve) const {
  ClientOptions o;
  if (curve != nullptr) o = *curve;
  o.endpoints = {client_endpoint(i)};
  o.timeout_ms = timeout_ms;
  o.route_by_map = false;  // bound to node i: what the tests ask of that node, it serves
  auto c = Client::Connect(o);
  if (!c.ok()) {
    ADD_FAILURE() << "Client::Connect: " << c.status().ToString();
    return nullptr;
  }
  return std::move(c).value();
}

std::vector<std::string> LocalCluster::Status(size_t i, int64_t timeout_ms) {
  auto client = ClientFor(i, timeout_ms);
  if (!client) return {};
  Request r;
  r.op = Op::kStatus;
  Response resp = client->Call(r);
  if (!resp.status.ok()) return {};
  return resp.values;
}

int LocalCluster::FindLeader(size_t shard, int64_t timeout_ms) {
  const std::string prefix = "shard " + std::to_string(shard) + ": ";
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!running(i)) continue;
    for (const auto& line : Status(i, timeout_ms)) {
      if (line.rfind(prefix, 0) == 0 && line.find("(this node)") != std::string::npos) return static_cast<int>(i);
    }
  }
  return -1;
}

bool LocalCluster::WaitLeader(size_t shard, int node, milliseconds deadline) {
  return WaitFor([&] { return FindLeader(shard) == node; }, deadline, milliseconds(100));
}

bool LocalCluster::PartitionRegion(const std::string& region, bool cut) {
  bool all = true;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!running(i)) continue;
    auto client = ClientFor(i, 2000);
    Request r;
    r.op = Op::kPartition;
    r.key = region;
    r.value = cut ? "1" : "0";
    if (!client || !client->Call(r).status.ok()) all = false;
  }
  return all;
}

bool LocalCluster::HealAll() {
  bool all = true;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!running(i)) continue;
    auto client = ClientFor(i, 2000);
    Request r;
    r.op = Op::kHeal;
    if (!client || !client->Call(r).status.ok()) all = false;
  }
  return all;
}

std::string LocalCluster::LogTail(size_t i, size_t lines) const {
  std::ifstream in(nodes_[i].log);
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (tail.size() > lines) tail.pop_front();
  }
  std::string out;
  for (const auto& l : tail) out += l + "\n";
  return out;
}

// ---- helpers -------------------------------------------------------------------------

bool WaitFor(const std::function<bool()>& pred, milliseconds deadline, milliseconds interval) {
  const auto end = Clock::now() + deadline;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(interval);
  }
}

Response CallUntilAccepted(Client& client, const Request& request, milliseconds deadline) {
  const auto end = Clock::now() + deadline;
  for (;;) {
    Response r = client.Call(request);
    const Code code = r.status.code();
    // A read that timed out is safe to send again (a node slow to start on a loaded machine).
    const bool read = request.op == Op::kGet || request.op == Op::kSetMembers || request.op == Op::kSetContains ||
                      request.op == Op::kMvGet || request.op == Op::kClusterMap || request.op == Op::kPolicyList ||
                      request.op == Op::kStatus;
    const bool again = code == Code::kUnavailable || code == Code::kBusy || (read && code == Code::kTimeout);
    if (!again || Clock::now() >= end) return r;
    std::this_thread::sleep_for(milliseconds(100));
  }
}

Request Put(const std::string& key, const std::string& value) {
  Request r;
  r.op = Op::kPut;
  r.key = key;
  r.value = value;
  return r;
}

Request Get(const std::string& key) {
  Request r;
  r.op = Op::kGet;
  r.key = key;
  return r;
}

Request Add(const std::string& key, int64_t delta) {
  Request r;
  r.op = Op::kAdd;
  r.key = key;
  r.delta = delta;
  return r;
}

Request Cas(const std::string& key, std::optional<std::string> expected, const std::string& value) {
  Request r;
  r.op = Op::kCas;
  r.key = key;
  r.value = value;
  r.has_expected = expected.has_value();
  if (expected) r.expected = *expected;
  return r;
}

Request SetAdd(const std::string& key, const std::string& element) {
  Request r;
  r.op = Op::kSetAdd;
  r.key = key;
  r.value = element;
  return r;
}

Request SetRemove(const std::string& key, const std::string& element) {
  Request r;
  r.op = Op::kSetRemove;
  r.key = key;
  r.value = element;
  return r;
}

Request SetMembers(const std::string& key) {
  Request r;
  r.op = Op::kSetMembers;
  r.key = key;
  return r;
}

std::string ScrapeMetrics(int port) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(2, 0);
  cli.set_read_timeout(2, 0);
  cli.set_write_timeout(2, 0);
  auto res = cli.Get("/metrics");
  if (!res || res->status != 200) return "";
  return res->body;
}

std::optional<double> MetricValue(const std::string& text, const std::string& name_and_labels) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > name_and_labels.size() && line.compare(0, name_and_labels.size(), name_and_labels) == 0 &&
        line[name_and_labels.size()] == ' ') {
      try {
        return std::stod(line.substr(name_and_labels.size() + 1));
      } catch (...) {
        return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::optional<int64_t> ReadCounter(Client& c, const std::string& key) {
  Response r = c.Call(Get(key));
  if (r.status.IsNotFound()) return 0;
  if (!r.status.ok()) return std::nullopt;
  return r.number;
}

std::optional<std::set<std::string>> ReadSet(Client& c, const std::string& key) {
  Response r = c.Call(SetMembers(key));
  if (r.status.IsNotFound()) return std::set<std::string>{};
  if (!r.status.ok()) return std::nullopt;
  return std::set<std::string>(r.values.begin(), r.values.end());
}

}  // namespace geokv::integration
