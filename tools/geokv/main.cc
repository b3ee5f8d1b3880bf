// geokv: the command line of geokv. Talks to any node of a cluster (client endpoints from
// --endpoints or $GEOKV_ENDPOINTS), or starts a local multi-region cluster (`geokv local`).
//
//   geokv put KEY VALUE | get KEY | del KEY | cas KEY NEW [--expect OLD] | add KEY DELTA
//   geokv sadd KEY ELEMENT | srem KEY ELEMENT | smembers KEY
//   geokv policy set PREFIX MODE | policy list | status
//   geokv partition REGION [--heal] | heal | reload-keys     (admin: docs/security.md)
//   geokv node drain|undrain|down|remove ID                  (admin: docs/operations.md)
//   geokv node add ID --region NAME --peer-endpoint E --client-endpoint E
//   geokv node replace OLD NEW --peer-endpoint E --client-endpoint E [--wait SECONDS]
//   geokv map                 the cluster map: regions, nodes and their states, placement
//   geokv local --regions us-east,eu-west,ap-northeast [--nodes-per-region N] [--rtt-ms MS]
//                             N geokvd per region (default 1): node i is in region i % R
//   geokv demo --endpoints E1,E2,E3 --regions R1,R2,R3
//   geokv repair DIR    (an embedded store or a node's data dir, not open anywhere)
//   geokv backup DIR | restore DIR [--threads N]   (admin: docs/operations.md, "Backups")
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/server/client.h"
#include "core/server/log.h"
#include "core/engine/cluster_map.h"
#include "core/engine/policy.h"
#include "core/storage/wiredtiger_storage.h"
#include "tools/geokv/backup.h"
#include "tools/geokv/demo.h"
#include "tools/geokv/local_cluster.h"

namespace {

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

int Print(const geokv::Response& r, geokv::Op op, bool json) {
  if (json) {
    nlohmann::json j;
    j["ok"] = r.status.ok();
    if (!r.status.ok()) {
      j["error"] = std::string(geokv::CodeName(r.status.code()));
      j["message"] = r.status.message();
    }
    j["found"] = r.found;
    if (!r.value.empty()) j["value"] = r.value;
    if (!r.values.empty()) j["values"] = r.values;
    if (op == geokv::Op::kAdd) j["number"] = r.number;
    std::printf("%s\n", j.dump().c_str());
  } else if (!r.status.ok() && !(r.status.IsNotFound() && op == geokv::Op::kGet)) {
    std::fprintf(stderr, "geokv: %s\n", r.status.ToString().c_str());
  } else if (op == geokv::Op::kGet) {
    if (r.found) std::printf("%s\n", r.value.c_str()); else std::fprintf(stderr, "(not found)\n");
  } else if (op == geokv::Op::kAdd) {
    std::printf("%lld\n", static_cast<long long>(r.number));
  } else if (op == geokv::Op::kCas && r.status.ok()) {
    std::printf("OK\n");
  } else if (!r.values.empty()) {
    for (const auto& v : r.values) std::printf("%s\n", v.c_str());
  } else if (op != geokv::Op::kSetMembers) {
    std::printf("OK\n");
  }
  if (r.status.ok()) return 0;
  if (r.status.IsNotFound()) return 1;
  if (r.status.code() == geokv::Code::kConflict) return 3;
  return 2;
}

// `geokv map`: the cluster map the answering node applied, as text or JSON.
// The cluster map of an Op::kClusterMap answer.
geokv::StatusOr<geokv::placement::ClusterMap> DecodeMap(const geokv::Response& r) {
  if (!r.status.ok()) return r.status;
  auto map = geokv::placement::ClusterMap::Decode(r.value);
  if (!map.ok()) return geokv::Status(map.status().code(), "the node sent a map that does not decode: " + map.status().message());
  return map;
}

geokv::StatusOr<geokv::placement::ClusterMap> FetchMap(geokv::Client& client) {
  geokv::Request req;
  req.op = geokv::Op::kClusterMap;
  return DecodeMap(client.Call(std::move(req)));
}

int PrintMap(const geokv::Response& r, bool json) {
  if (!r.status.ok()) return Print(r, geokv::Op::kClusterMap, json);
  auto map = DecodeMap(r);
  if (!map.ok()) {
    std::fprintf(stderr, "geokv map: %s\n", map.status().ToString().c_str());
    return 2;
  }
  using geokv::placement::NodeStateName;
  auto region_name = [&](uint32_t id) { return map->RegionName(id); };
  if (json) {
    nlohmann::json j;
    j["version"] = map->version();
    for (const auto& region : map->regions()) j["regions"].push_back(region.name);
    j["nodes"] = nlohmann::json::array();
    for (const auto& [id, n] : map->nodes()) {
      j["nodes"].push_back({{"id", id}, {"region", region_name(n.region)}, {"state", std::string(NodeStateName(n.state))},
                            {"peer", n.peer_address}, {"client", n.client_address}, {"replicas", n.load.shards},
                            {"bytes", n.load.bytes}, {"leaders", n.load.leaders}});
    }
    j["shards"] = nlohmann::json::array();
    for (size_t s = 0; s < map->shards().size(); ++s) {
      const auto& p = map->shards()[s];
      nlohmann::json shard = {{"shard", s}, {"replicas", p.replicas}, {"leader_region", region_name(p.leader_region)},
                              {"bytes", p.bytes}, {"epoch", p.epoch}};
      shard["preferred_leader"] = p.preferred_leader ? nlohmann::json(region_name(*p.preferred_leader)) : nlohmann::json();
      j["shards"].push_back(std::move(shard));
    }
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("cluster map version %llu\n", static_cast<unsigned long long>(map->version()));
  for (const auto& [id, n] : map->nodes()) {
    std::printf("node %u  %-12s %-9s replicas %u  bytes %llu  client %s  peer %s\n", id, region_name(n.region).c_str(),
                std::string(NodeStateName(n.state)).c_str(), n.load.shards, static_cast<unsigned long long>(n.load.bytes),
                n.client_address.c_str(), n.peer_address.c_str());
  }
  for (size_t s = 0; s < map->shards().size(); ++s) {
    const auto& p = map->shards()[s];
    std::string replicas;
    for (auto node : p.replicas) replicas += (replicas.empty() ? "" : ",") + std::to_string(node);
    std::printf("shard %zu  replicas on nodes %s  preferred leader %s  bytes %llu  epoch %llu\n", s, replicas.c_str(),
                p.preferred_leader ? region_name(*p.preferred_leader).c_str() : "(none)",
                static_cast<unsigned long long>(p.bytes), static_cast<unsigned long long>(p.epoch));
  }
  return 0;
}

// An Op::kNodeAdd request: node `id` in `region`, reachable at the two endpoints.
geokv::Request NodeAddRequest(uint32_t id, const std::string& region, const std::string& peer,
                              const std::string& client) {
  geokv::Request req;
  req.op = geokv::Op::kNodeAdd;
  req.key = std::to_string(id);
  req.value = region + " " + peer + " " + client;
  return req;
}

// The value is space-separated: none of its parts may be empty or hold a space.
bool CheckNodeAddParts(const char* command, const std::string& region, const std::string& peer,
                       const std::string& client) {
  const std::pair<const char*, const std::string*> parts[] = {
      {"--region", &region}, {"--peer-endpoint", &peer}, {"--client-endpoint", &client}};
  for (const auto& [name, value] : parts) {
    if (value->empty() || value->find_first_of(" \t\n") != std::string::npos) {
      std::fprintf(stderr, "geokv node %s: %s must be given, without spaces\n", command, name);
      return false;
    }
  }
  return true;
}

geokv::Request NodeStateRequest(uint32_t id, const char* state) {
  geokv::Request req;
  req.op = geokv::Op::kNodeState;
  req.key = std::to_string(id);
  req.value = state;
  return req;
}

// Calls `req` (idempotent: node add, node state) again while the answer leaves its outcome
// open or says that nothing happened yet (TIMEOUT, UNAVAILABLE, BUSY: an election, a
// leadership moving), until `deadline`; the last answer.
geokv::Response CallIdempotent(geokv::Client& client, const geokv::Request& req,
                               std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    geokv::Response r = client.Call(req);
    const geokv::Code code = r.status.code();
    const bool retry = code == geokv::Code::kTimeout || code == geokv::Code::kUnavailable || code == geokv::Code::kBusy;
    if (!retry || std::chrono::steady_clock::now() >= deadline) return r;
    std::fprintf(stderr, "geokv: %s; again\n", r.status.ToString().c_str());
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

// What node `old_id` still holds in `map`: its shards (a replica, or the leaving side of a
// move in flight) and the moves in flight that concern it.
struct Leftover {
  std::string shards;  // "0,3,5"
  size_t count = 0;
  size_t moves_in_flight = 0;  // every shard's, not only old_id's
};

Leftover LeftOn(const geokv::placement::ClusterMap& map, uint32_t old_id) {
  Leftover left;
  for (size_t s = 0; s < map.shards().size(); ++s) {
    const auto& shard = map.shards()[s];
    bool holds = false;
    for (auto node : shard.replicas) holds = holds || node == old_id;
    if (shard.change) {
      left.moves_in_flight++;
      holds = holds || shard.change->from == old_id || shard.change->to == old_id;
    }
    if (!holds) continue;
    left.shards += (left.count++ == 0 ? "" : ",") + std::to_string(s);
  }
  return left;
}

std::string DescribeNode(const geokv::placement::ClusterMap& map, uint32_t id) {
  const auto* n = map.FindNode(id);
  if (n == nullptr) return "node " + std::to_string(id) + " not in the map yet";
  return "node " + std::to_string(id) + " " + std::string(geokv::placement::NodeStateName(n->state)) + ", " +
         std::to_string(n->load.shards) + " replicas";
}

// `geokv node replace OLD NEW`: adds NEW in OLD's region, marks OLD down; with wait_s > 0
// then polls the map until OLD holds no replica (printing each change of progress) and
// removes it. Exit 0 when done, 2 on an error or at the deadline (saying what is left).
int NodeReplace(geokv::Client& client, uint32_t old_id, uint32_t new_id, const std::string& peer,
                const std::string& client_endpoint, int wait_s) {
  using geokv::placement::NodeState;
  auto fail = [](const std::string& what) {
    std::fprintf(stderr, "geokv node replace: %s\n", what.c_str());
    return 2;
  };
  // Until the deadline (a minute at least), refusals during an election are tried again.
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(std::max(wait_s, 60));
  auto map = FetchMap(client);
  while (!map.ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    map = FetchMap(client);
  }
  if (!map.ok()) return fail("cannot read the cluster map: " + map.status().ToString());
  const auto* old = map->FindNode(old_id);
  if (old == nullptr) return fail("node " + std::to_string(old_id) + " is not in the cluster map (geokv map)");
  if (old->state == NodeState::kRemoved) return fail("node " + std::to_string(old_id) + " is already removed");
  const std::string region = map->RegionName(old->region);
  const NodeState old_state = old->state;
  if (const auto* existing = map->FindNode(new_id)) {
    // A second run (say after a timeout) finds the node it added: go on with it.
    if (existing->region != old->region || existing->peer_address != peer || existing->client_address != client_endpoint) {
      return fail("node " + std::to_string(new_id) + " is already in the cluster map, in region " +
                  map->RegionName(existing->region) + " at " + existing->peer_address +
                  "; node ids are never reused: the next unused id is " + std::to_string(map->nodes().size()));
    }
    std::printf("node %u is already in the map (%s): not added again\n", new_id,
                std::string(geokv::placement::NodeStateName(existing->state)).c_str());
  } else {
    const geokv::Response r = CallIdempotent(client, NodeAddRequest(new_id, region, peer, client_endpoint), deadline);
    if (!r.status.ok()) return fail("adding node " + std::to_string(new_id) + ": " + r.status.ToString());
    std::printf("node %u added in region %s (peer %s, client %s); start its geokvd with a config listing every "
                "node, node %u with added = true and node %u with removed = true\n",
                new_id, region.c_str(), peer.c_str(), client_endpoint.c_str(), new_id, old_id);
  }
  if (old_state != NodeState::kDown) {
    const geokv::Response r = CallIdempotent(client, NodeStateRequest(old_id, "down"), deadline);
    if (!r.status.ok()) return fail("marking node " + std::to_string(old_id) + " down: " + r.status.ToString());
    std::printf("node %u marked down: the placement driver moves its replicas to up nodes of %s\n", old_id,
                region.c_str());
  }
  if (wait_s == 0) {
    std::printf("once node %u holds no replica (geokv map): geokv node remove %u\n", old_id, old_id);
    return 0;
  }

  std::string last_progress, last_error;
  for (;;) {
    const double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    map = FetchMap(client);
    if (map.ok()) {
      last_error.clear();
      const Leftover left = LeftOn(*map, old_id);
      const std::string progress =
          "node " + std::to_string(old_id) + " holds " + std::to_string(left.count) + " replicas" +
          (left.count != 0 ? " (shards " + left.shards + ")" : "") + "; " + DescribeNode(*map, new_id) + "; " +
          std::to_string(left.moves_in_flight) + " moves in flight";
      if (progress != last_progress) std::printf("[%5.1f s] %s\n", elapsed_s, progress.c_str());
      std::fflush(stdout);
      last_progress = progress;
      if (left.count == 0) {
        const geokv::Response r = client.Call(NodeStateRequest(old_id, "removed"));
        if (r.status.ok()) {
          map = FetchMap(client);
          std::printf("node %u removed; %s\n", old_id, map.ok() ? DescribeNode(*map, new_id).c_str() : "");
          return 0;
        }
        last_error = "removing node " + std::to_string(old_id) + ": " + r.status.ToString();
      }
    } else {
      last_error = "reading the cluster map: " + map.status().ToString();
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      const auto waited_s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
      return fail("timed out after " + std::to_string(waited_s.count()) + " s: " +
                  (last_progress.empty() ? std::string("no cluster map read") : last_progress) +
                  (last_error.empty() ? "" : "; last error: " + last_error) + ". Node " + std::to_string(old_id) +
                  " stays down; run this again, or `geokv node remove " + std::to_string(old_id) +
                  "` once it holds no replica");
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

// `geokv repair DIR`: what was damaged, what was dropped, what is left. Exit 0 when the
// store was repaired (or sound), 1 when it could not be (open elsewhere, not a store,
// beyond repair).
int Repair(const std::string& dir, bool json) {
  // Errors go to stderr; the report below says what the warnings would.
  geokv::EnsureLogging();
  (void)geokv::SetLogLevel("error");
  auto report = geokv::storage::WiredTigerStorage::Repair(dir);
  if (!report.ok()) {
    if (json) {
      nlohmann::json j;
      j["ok"] = false;
      j["error"] = std::string(geokv::CodeName(report.status().code()));
      j["message"] = report.status().message();
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::fprintf(stderr, "geokv repair: %s\n", report.status().ToString().c_str());
    }
    return 1;
  }
  if (json) {
    nlohmann::json j;
    j["ok"] = true;
    j["tables_salvaged"] = report->damaged;
    j["journal_files"] = report->journal_files;
    j["journal_dropped"] = report->journal_dropped;
    j["keys_kept"] = report->keys_after;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  if (report->damaged.empty() && report->journal_dropped.empty()) {
    std::printf("%s: sound, nothing to repair; %llu keys\n", dir.c_str(),
                static_cast<unsigned long long>(report->keys_after));
    return 0;
  }
  for (const auto& table : report->damaged) {
    std::printf("table %s: damaged; rebuilt from the pages that could still be read\n", table.c_str());
  }
  for (const auto& stretch : report->journal_dropped) {
    std::printf("dropped the damaged %s: the writes in it are lost\n", stretch.c_str());
  }
  std::printf("%s: repaired; %llu keys readable\n", dir.c_str(), static_cast<unsigned long long>(report->keys_after));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"geokv: command line of the geokv geo-replicated key-value store"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  const char* env = std::getenv("GEOKV_ENDPOINTS");
  std::string endpoints = env != nullptr ? env : "tcp://127.0.0.1:7200";
  int64_t timeout_ms = 5000;
  bool json = false;
  app.add_option("-e,--endpoints", endpoints, "client endpoints, comma-separated ($GEOKV_ENDPOINTS)");
  app.add_option("-t,--timeout-ms", timeout_ms, "deadline of each request")->check(CLI::Range(1, 3600000));
  app.add_flag("--json", json, "print the answer as JSON");

  geokv::Request req;
  std::string mode_name, delta_text, expect;
  bool has_expect = false;

  auto* put = app.add_subcommand("put", "store VALUE under KEY (strong or lww key)");
  put->add_option("key", req.key)->required();
  put->add_option("value", req.value)->required();
  auto* get = app.add_subcommand("get", "read KEY");
  get->add_option("key", req.key)->required();
  auto* del = app.add_subcommand("del", "delete KEY");
  del->add_option("key", req.key)->required();
  auto* cas = app.add_subcommand("cas", "set KEY to NEW if it holds OLD (--expect), or is absent");
  cas->add_option("key", req.key)->required();
  cas->add_option("new", req.value)->required();
  cas->add_option("--expect", expect, "the value KEY must hold (default: KEY must be absent)");
  auto* add = app.add_subcommand("add", "add DELTA to a counter (strong or counter key)");
  add->add_option("key", req.key)->required();
  add->add_option("delta", req.delta)->required();
  auto* sadd = app.add_subcommand("sadd", "add ELEMENT to a set");
  sadd->add_option("key", req.key)->required();
  sadd->add_option("element", req.value)->required();
  auto* srem = app.add_subcommand("srem", "remove ELEMENT from a set");
  srem->add_option("key", req.key)->required();
  srem->add_option("element", req.value)->required();
  auto* smembers = app.add_subcommand("smembers", "list a set's members");
  smembers->add_option("key", req.key)->required();
  auto* policy = app.add_subcommand("policy", "show or change which mode each key prefix uses");
  policy->require_subcommand(1);
  auto* pset = policy->add_subcommand("set", "keys under PREFIX use MODE (strong|lww|mvreg|counter|set)");
  pset->add_option("prefix", req.key)->required();
  pset->add_option("mode", mode_name)->required();
  auto* plist = policy->add_subcommand("list", "list the rules");
  auto* status = app.add_subcommand("status", "the node's view: regions, shard leaders, replication");
  auto* partition = app.add_subcommand("partition", "admin (emulated WAN): cut REGION off, or --heal it");
  partition->add_option("region", req.key)->required();
  bool reconnect = false;
  partition->add_flag("--heal", reconnect, "reconnect REGION instead");
  auto* heal = app.add_subcommand("heal", "admin (emulated WAN): remove every partition");
  auto* reload = app.add_subcommand("reload-keys", "admin: the node re-reads its CURVE allowlists and peer keys (as SIGHUP)");
  auto* node = app.add_subcommand("node", "admin: change a node's state in the cluster map (docs/operations.md)");
  node->require_subcommand(1);
  // Subcommand -> the state it sets.
  const std::vector<std::pair<CLI::App*, const char*>> node_states = {
      {node->add_subcommand("drain", "node ID hands every leadership to other regions at once, and its replicas to "
                                     "its region's other up nodes a few at a time (before a restart or a removal)"),
       "draining"},
      {node->add_subcommand("undrain", "node ID is up again and takes its preferred leaderships back"), "up"},
      {node->add_subcommand("down", "declare node ID dead (its replicas are to be replaced)"), "down"},
      {node->add_subcommand("remove", "remove node ID for good (refused while it holds replicas)"), "removed"},
  };
  for (const auto& [sub, state] : node_states) sub->add_option("id", req.key, "the node's id (geokv status)")->required();
  uint32_t node_id = 0, new_id = 0;
  std::string node_region, peer_endpoint, client_endpoint;
  int wait_s = 0;
  auto* node_add = node->add_subcommand(
      "add", "add node ID (the next unused id: geokv map's node count) to the running cluster; then start its geokvd "
             "with added = true (docs/operations.md, \"Add a node\")");
  node_add->add_option("id", node_id, "the new node's id")->required();
  node_add->add_option("--region", node_region, "its region (one the cluster has: nodes join existing regions)")->required();
  node_add->add_option("--peer-endpoint", peer_endpoint, "where the other nodes reach it (tcp://host:port)")->required();
  node_add->add_option("--client-endpoint", client_endpoint, "where clients reach it (tcp://host:port)")->required();
  auto* node_replace = node->add_subcommand(
      "replace", "replace dead node OLD by a new node NEW on an empty disk, in OLD's region: adds NEW, marks OLD down; "
                 "with --wait, removes OLD once its replicas moved (docs/operations.md)");
  node_replace->add_option("old", node_id, "the dead node's id")->required();
  node_replace->add_option("new", new_id, "the new node's id (the next unused one)")->required();
  node_replace->add_option("--peer-endpoint", peer_endpoint, "where the other nodes reach NEW (may be OLD's)")->required();
  node_replace->add_option("--client-endpoint", client_endpoint, "where clients reach NEW (may be OLD's)")->required();
  node_replace->add_option("--wait", wait_s, "wait up to SECONDS until OLD holds no replica, then remove it (0: do not wait)")
      ->check(CLI::Range(0, 86400));
  auto* map = app.add_subcommand("map", "the cluster map: regions, nodes and their states, shard placement");

  geokv::tools::LocalClusterOptions local;
  std::string regions = "us-east,eu-west,ap-northeast";
  auto* lc = app.add_subcommand("local", "run a multi-region cluster on this machine, one or more nodes per region (Ctrl-C stops it)");
  lc->add_option("--regions", regions, "comma-separated region names");
  lc->add_option("--nodes-per-region", local.nodes_per_region,
                 "geokvd per region; node ids: one per region in region order, then the second of each, ...")
      ->check(CLI::Range(1, 64));
  lc->add_option("--rtt-ms", local.rtt_ms, "round trip between regions (default: AWS figures for known names, else 100)");
  lc->add_option("--jitter-ms", local.jitter_ms, "emulated jitter per message");
  lc->add_option("--base-port", local.base_port, "node i: peers on base+i, clients on base+100+i, metrics on base+200+i");
  lc->add_option("--shards", local.shards, "strong shards")->check(CLI::Range(1, 256));
  lc->add_option("--dir", local.dir, "where data, configs and logs go (default: a new temporary directory)");
  lc->add_option("--ready-file", local.ready_file, "written with the client endpoints once serving");
  lc->add_option("--log-level", local.log_level, "geokvd log level");
  lc->add_option("--geokvd", local.geokvd, "path of geokvd (default: next to this program)");

  auto* demo = app.add_subcommand("demo", "show strong and CRDT keys side by side on a running cluster");
  std::string demo_regions = "us-east,eu-west,ap-northeast";
  int demo_rounds = 5;
  demo->add_option("--regions", demo_regions, "names of the regions behind --endpoints, in the same order");
  demo->add_option("--rounds", demo_rounds, "operations per region and kind")->check(CLI::Range(1, 1000));

  std::string repair_dir;
  auto* repair = app.add_subcommand("repair", "repair a damaged store in DIR (no process may have it open)");
  repair->add_option("DIR", repair_dir, "the data directory")->required();

  std::string backup_dir;
  int restore_threads = 8;
  auto* backup = app.add_subcommand(
      "backup", "admin: copy every shard (a linearizable snapshot each) and the eventual keys into DIR, while the "
                "cluster serves (docs/operations.md, \"Backups\")");
  backup->add_option("DIR", backup_dir, "a new directory (refused when it already holds a backup)")->required();
  auto* restore = app.add_subcommand(
      "restore", "admin: write the backup in DIR into a new, empty cluster with the same shard count and policy");
  restore->add_option("DIR", backup_dir, "a directory `geokv backup` wrote")->required();
  restore->add_option("--threads", restore_threads, "writes in flight at once")->check(CLI::Range(1, 64));

  CLI11_PARSE(app, argc, argv);

  if (repair->parsed()) return Repair(repair_dir, json);

  if (demo->parsed()) {
    auto names = SplitCommas(demo_regions);
    auto eps = SplitCommas(endpoints);
    if (names.size() != eps.size()) {
      std::fprintf(stderr, "geokv demo: %zu endpoints but %zu region names\n", eps.size(), names.size());
      return 2;
    }
    return geokv::tools::RunDemo(eps, names, demo_rounds);
  }
  if (lc->parsed()) {
    local.regions = SplitCommas(regions);
    return geokv::tools::RunLocalCluster(local);
  }
  if (put->parsed()) req.op = geokv::Op::kPut;
  if (get->parsed()) req.op = geokv::Op::kGet;
  if (del->parsed()) req.op = geokv::Op::kDelete;
  if (cas->parsed()) {
    req.op = geokv::Op::kCas;
    has_expect = cas->count("--expect") > 0;
    req.has_expected = has_expect;
    req.expected = expect;
  }
  if (add->parsed()) req.op = geokv::Op::kAdd;
  if (sadd->parsed()) req.op = geokv::Op::kSetAdd;
  if (srem->parsed()) req.op = geokv::Op::kSetRemove;
  if (smembers->parsed()) req.op = geokv::Op::kSetMembers;
  if (pset->parsed()) {
    auto mode = geokv::ParseMode(mode_name);
    if (!mode.ok()) {
      std::fprintf(stderr, "geokv: %s\n", mode.status().message().c_str());
      return 2;
    }
    req.op = geokv::Op::kPolicySet;
    req.mode = *mode;
  }
  if (plist->parsed()) req.op = geokv::Op::kPolicyList;
  if (status->parsed()) req.op = geokv::Op::kStatus;
  if (partition->parsed()) {
    req.op = geokv::Op::kPartition;
    req.value = reconnect ? "0" : "1";
  }
  if (heal->parsed()) req.op = geokv::Op::kHeal;
  if (reload->parsed()) req.op = geokv::Op::kReloadKeys;
  for (const auto& [sub, state] : node_states) {
    if (sub->parsed()) {
      req.op = geokv::Op::kNodeState;
      req.value = state;
    }
  }
  if (node_add->parsed()) {
    if (!CheckNodeAddParts("add", node_region, peer_endpoint, client_endpoint)) return 2;
    req = NodeAddRequest(node_id, node_region, peer_endpoint, client_endpoint);
  }
  if (node_replace->parsed()) {
    if (!CheckNodeAddParts("replace", "-", peer_endpoint, client_endpoint)) return 2;
    if (new_id == node_id) {
      std::fprintf(stderr, "geokv node replace: NEW must be a new id, not OLD's (node ids are never reused)\n");
      return 2;
    }
  }

  geokv::ClientOptions options;
  options.endpoints = SplitCommas(endpoints);
  options.timeout_ms = timeout_ms;
  // One request per run: fetching the cluster map first would cost a round trip more than
  // the node's proxying it to the holder (docs/placement.md, "Routing").
  options.route_by_map = false;
  auto client = geokv::Client::Connect(options);
  if (!client.ok()) {
    std::fprintf(stderr, "geokv: %s\n", client.status().ToString().c_str());
    return 2;
  }
  if (backup->parsed()) return geokv::tools::RunBackup(**client, backup_dir, json);
  if (restore->parsed()) return geokv::tools::RunRestore(**client, backup_dir, restore_threads, json);
  if (node_replace->parsed()) return NodeReplace(**client, node_id, new_id, peer_endpoint, client_endpoint, wait_s);
  if (map->parsed()) {
    req.op = geokv::Op::kClusterMap;
    return PrintMap((*client)->Call(std::move(req)), json);
  }
  const geokv::Op op = req.op;
  return Print((*client)->Call(std::move(req)), op, json);
}
