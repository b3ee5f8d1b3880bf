// Harness of the multi-process integration tests: real geokvd processes on 127.0.0.1 with
// WAN emulation, configured by TOML files this harness writes into a temporary directory.
//
//   - TempDir: a fresh directory, removed on destruction (kept when GEOKV_INTEG_KEEP is set).
//   - Child: one child process (fork + exec, output to a log file). Its destructor SIGKILLs
//     and reaps it, so every exit path of a test (assertion, exception) leaves nothing
//     running; the child also gets SIGKILL if the test process dies (PR_SET_PDEATHSIG).
//   - LocalCluster: geokvd nodes (one or more per region), ports derived from the PID in
//     20000-40000 and probed free, start / kill / restart with the same config and data dir,
//     pause (SIGSTOP) / resume (SIGCONT), per-node clock offsets ([wan] clock_offset_ms or
//     libfaketime); nodes added after the start (`added = true`), and replacements of dead
//     nodes on an empty disk under a new id.
//
// Every wait has a deadline; nothing here asserts how long anything takes.
//
// Thread-safety: none (one test thread drives a cluster; worker threads use their own
// Clients). Children are forked from the thread that owns the cluster.
#ifndef GEOKV_TESTS_INTEGRATION_HARNESS_H_
#define GEOKV_TESTS_INTEGRATION_HARNESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/server/client.h"

namespace geokv::integration {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Paths from CMake. GEOKV_INTEG_GEOKVD=<path> runs the tests against another geokvd binary
// (for example one built from an older commit, to see whether a test catches a known bug).
std::string GeokvdPath();
std::string GeokvCliPath();
std::string PorcupinePath();
// libfaketime's preload library (GEOKV_INTEG_LIBFAKETIME=<path>, else Debian's `faketime`
// package location); empty when absent.
std::string FaketimeLibrary();

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A child process. Exited/Wait report how it ended.
class Child {
 public:
  Child() = default;
  ~Child() { KillAndReap(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Starts argv[0] with argv; stdout and stderr are appended to `log_path`. `env` entries
  // ("NAME=value") are added to (or replace) the inherited environment.
  bool Start(const std::vector<std::string>& argv, const std::string& log_path,
             const std::vector<std::string>& env = {});
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // Sends `sig` (no reap).
  void Signal(int sig);
  // Reaps the child if it has exited (non-blocking), filling status.
  bool Exited();
  // Waits up to `timeout` for the child to exit. True if it did; `wait_status()` then holds
  // its waitpid status.
  bool Wait(milliseconds timeout);
  // SIGKILL + blocking reap (no-op when not running).
  void KillAndReap();
  int wait_status() const { return status_; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
};

// Runs a program to completion (bounded: SIGKILL after `timeout`). Returns the waitpid
// status, or nullopt when it did not exit in time; output (stdout+stderr) into *output.
std::optional<int> RunProgram(const std::vector<std::string>& argv, milliseconds timeout,
                              std::string* output);

// A free TCP port on 127.0.0.1: starts from a PID-derived port in [20000, 40000) and probes.
int PickPort();

struct ClusterOptions {
  std::vector<std::string> regions = {"us-east", "eu-west", "ap-south"};
  // geokvd nodes per region. Node ids: one node per region in region order (0..R-1), then
  // the second node of each region, and so on: node i is in region i % R (so with one node
  // per region, node i is region i). Per-node options below are indexed by node id.
  int nodes_per_region = 1;
  int shards = 1;
  // preferred_leader per shard (region names); empty: the first region for every shard.
  std::vector<std::string> preferred_leader;
  // One-way delay between regions i and j: base + step * |i - j| ms; none inside a region.
  int64_t delay_base_ms = 5;
  int64_t delay_step_ms = 5;
  int64_t jitter_ms = 1;
  int64_t request_timeout_ms = 1500;
  std::string log_level = "info";
  // [policy] rules, TOML inline table body (the default mode is strong).
  std::string policy_rules = "\"counter/\" = \"counter\", \"set/\" = \"set\", \"lww/\" = \"lww\"";
  bool metrics = false;  // node.metrics_endpoint on a picked port
  // CURVE: per-node key files and one allowlist file per node (empty: CURVE off).
  struct Curve {
    std::vector<std::string> secret_key_files;
    std::vector<std::string> public_key_files;
    std::vector<std::string> public_keys;          // Z85, per node
    std::vector<std::string> allowed_keys_files;   // per node
  };
  std::optional<Curve> curve;
  // One node's entries of Curve (LocalCluster::AddNode).
  struct CurveNode {
    std::string secret_key_file, public_key_file, public_key, allowed_keys_file;
  };
  // TEST ONLY, per node: [wan] clock_offset_ms, shifts the node's wall clock (0 or missing:
  // not written, so binaries that predate the field still start).
  std::vector<int64_t> clock_offset_ms;
  // Per node: a libfaketime offset for the whole process ("+7s", "-5s"): both its wall and
  // its monotonic clock move, as on another machine that booted at another time. Empty or
  // missing: none. Requires FaketimeLibrary().
  std::vector<std::string> faketime;
  // Per node: extra environment entries ("NAME=value"), e.g. a preload library that makes
  // its disk fail. Empty or missing: none.
  std::vector<std::vector<std::string>> env;
};

class LocalCluster {
 public:
  // Writes the configs under dir (one subdirectory per node); does not start anything.
  LocalCluster(std::string dir, ClusterOptions options);
  // SIGKILLs every node still running; prints the tail of each log when the current test
  // has failed.
  ~LocalCluster();
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // Nodes in the cluster (regions x nodes_per_region, then those AddNode added).
  size_t size() const { return nodes_.size(); }
  size_t region_count() const { return options_.regions.size(); }
  // Node i's region: its index (i % region_count() for the genesis nodes) and its name.
  size_t region_index(size_t i) const { return nodes_[i].region; }
  const std::string& region(size_t i) const { return options_.regions[region_index(i)]; }
  std::string client_endpoint(size_t i) const;
  std::string peer_endpoint(size_t i) const;
  std::string config_path(size_t i) const { return nodes_[i].config; }
  std::string log_path(size_t i) const { return nodes_[i].log; }
  std::string data_dir(size_t i) const { return nodes_[i].data; }
  int metrics_port(size_t i) const { return nodes_[i].metrics_port; }
  std::vector<std::string> client_endpoints() const;

  // Starts node i (same config and data dir every time; the first time of a genesis node as
  // part of a new cluster: geokvd --new-cluster). False if it could not be forked.
  bool StartNode(size_t i);
  // A node for the running cluster, id size(), in region `region_index`: ports picked like
  // the others, an empty data directory, and a config listing every node, with `added =
  // true` for it and every node added before it and `removed = true` for every node
  // replaced so far. Neither announces it (that is `geokv node add`) nor starts it
  // (StartNode, without --new-cluster); the other nodes' configs stay as they are. With
  // CURVE, `curve` gives its key files (ADD_FAILURE without). Returns its id.
  size_t AddNode(size_t region_index, const std::optional<ClusterOptions::CurveNode>& curve = std::nullopt);
  // Writes node i's config again, listing every node known now (what a test appended to it
  // is gone): e.g. an existing node learning an added node's CURVE key before a reload.
  void RewriteConfig(size_t i);
  // The replacement of node `old` (dead: not running) on an empty disk: AddNode in its
  // region, on its peer and client ports (the same address), and `old` is `removed = true`
  // in the new node's config (and in those written later). Not with CURVE. Returns the new
  // node's id.
  size_t AddReplacement(size_t old);
  // Whether node i was added to the running cluster, or replaced.
  bool added(size_t i) const { return nodes_[i].added; }
  bool replaced(size_t i) const { return nodes_[i].removed; }
  // Starts every node, then waits for each to answer `status` (deadline). Empty string on
  // success, else what went wrong.
  std::string StartAll(milliseconds deadline = seconds(60));
  // Waits until node i answers `status` (or has exited, or the deadline passed).
  std::string WaitServing(size_t i, milliseconds deadline = seconds(60));
  // SIGKILL node i and reap it.
  void KillNode(size_t i);
  // SIGSTOP / SIGCONT node i (a process pause: its sockets keep queueing). A stopped node
  // is still SIGKILLed by the destructor.
  void PauseNode(size_t i);
  void ResumeNode(size_t i);
  // Sends `sig` to node i (e.g. SIGHUP: reload keys); false when it is not running.
  bool SignalNode(size_t i, int sig);
  // SIGTERM and wait for the exit (deadline); the waitpid status, or nullopt on timeout
  // (then the node is SIGKILLed).
  std::optional<int> TerminateNode(size_t i, milliseconds deadline = seconds(20));
  bool running(size_t i);
  // How node i ended, once running(i) is false: "exited with status 1", "killed by signal 6
  // (Aborted)".
  std::string DescribeExit(size_t i) const;

  // A client bound to node i only (no fail-over to other nodes, no routing by the map:
  // node i serves or proxies every request itself).
  std::unique_ptr<Client> ClientFor(size_t i, int64_t timeout_ms = 3000,
                                    const ClientOptions* curve = nullptr) const;

  // The leader of strong shard `shard` as reported by the node that claims it ("(this
  // node)"), asking every running node; -1 when none claims it.
  int FindLeader(size_t shard, int64_t timeout_ms = 1000);
  // Waits until node `node` leads shard `shard` (the preferred leader takes over once it is
  // healthy). False at the deadline.
  bool WaitLeader(size_t shard, int node, milliseconds deadline = seconds(60));
  // Status lines of node i (empty on failure).
  std::vector<std::string> Status(size_t i, int64_t timeout_ms = 1000);

  // Admin: sends op (kPartition / kHeal) to every running node; true when all answered OK.
  bool PartitionRegion(const std::string& region, bool cut);
  bool HealAll();

  // Tail of node i's log (for failure messages).
  std::string LogTail(size_t i, size_t lines = 30) const;

 private:
  std::string WriteConfig(size_t i) const;
  // A node with picked ports (none of them when `ports_of` is given: that node's) and its
  // directory, in nodes_.
  size_t NewNode(size_t region_index, std::optional<size_t> ports_of = std::nullopt);

  struct Node {
    size_t region = 0;    // index into options_.regions
    bool added = false;   // added to the running cluster (not in the genesis map)
    bool removed = false; // replaced: the configs written since say `removed = true`
    int peer_port = 0;
    int client_port = 0;
    int metrics_port = 0;
    std::string config;
    std::string log;
    std::string data;
    std::unique_ptr<Child> child;
    bool started = false;  // the first start creates the cluster (geokvd --new-cluster)
  };
  std::string dir_;
  ClusterOptions options_;
  std::vector<Node> nodes_;
};

// Calls `request` again while it is refused (kUnavailable / kBusy: nothing took effect, e.g.
// during an election or a leadership transfer), up to `deadline`; returns the last answer.
Response CallUntilAccepted(Client& client, const Request& request, milliseconds deadline = seconds(30));

// Polls `pred` every `interval` until it returns true or `deadline` passes.
bool WaitFor(const std::function<bool()>& pred, milliseconds deadline,
             milliseconds interval = milliseconds(100));

// Convenience requests.
Request Put(const std::string& key, const std::string& value);
Request Get(const std::string& key);
Request Add(const std::string& key, int64_t delta);
Request Cas(const std::string& key, std::optional<std::string> expected, const std::string& value);
Request SetAdd(const std::string& key, const std::string& element);
Request SetRemove(const std::string& key, const std::string& element);
Request SetMembers(const std::string& key);
// A counter's value (0 when absent) or a set's members (empty when absent), as node `c`
// sees them; nullopt when the read failed.
std::optional<int64_t> ReadCounter(Client& c, const std::string& key);
std::optional<std::set<std::string>> ReadSet(Client& c, const std::string& key);

// GET of http://127.0.0.1:port/metrics (empty on failure).
std::string ScrapeMetrics(int port);
// Value of the first sample line starting with `name_and_labels` followed by a space.
std::optional<double> MetricValue(const std::string& text, const std::string& name_and_labels);

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& text);

}  // namespace geokv::integration

#endif  // GEOKV_TESTS_INTEGRATION_HARNESS_H_
