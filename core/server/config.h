// Config: everything a node is configured with, from TOML (toml++) or from code.
//
// File layout (every field optional; unknown fields are an error naming the field). The
// [node], [cluster], [policy], [wan] and [curve] sections make the node part of a
// multi-region cluster (geokvd); without [cluster] it is a single embedded store.
//   data_dir = "/var/lib/geokv"
//   [limits]   key_bytes_max = 4096      value_bytes_max = 1048576
//   [storage]  durability = "sync"       # "sync" | "write" | "none"
//              group_commit_batches_max = 128   commit_timeout_ms = 30000   cache_mb = 64
//   [log]      level = "info"            # trace|debug|info|warn|error|critical|off
//
// Thread-safety: a value type. Errors: kConfig, with the file name and the field.
#ifndef GEOKV_CORE_SERVER_CONFIG_H_
#define GEOKV_CORE_SERVER_CONFIG_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <optional>
#include <utility>
#include <vector>

#include "base/status.h"
#include "core/engine/limits.h"
#include "core/engine/policy.h"
#include "core/engine/storage.h"

namespace geokv {


// One node of a cluster. A region has one node or several; regions are numbered in the
// order of their first node (by id).
struct ClusterNode {
  uint32_t id = 0;
  std::string region;
  std::string peer_endpoint;    // ZeroMQ endpoint other nodes reach this node on
  std::string client_endpoint;  // ZeroMQ endpoint clients reach this node on
  std::string curve_public_key; // Z85; required when CURVE is on
  // Added to the running cluster (geokv node add) after it was created: not in the genesis
  // map. Every node added before this node's own start is listed so (EngineMember::added),
  // removed ones too. Never the first node of its region (the genesis metadata voter).
  bool added = false;
  // Gone for good (replaced, or to be removed): this node does not connect to it (its
  // address may be its replacement's). Never this node itself.
  bool removed = false;
};

// Emulated WAN link from this node to a region.
struct WanLink {
  int64_t delay_ms = 0;
  int64_t jitter_ms = 0;
  double loss = 0;
};

//   [node]     id = 0                    metrics_endpoint = "127.0.0.1:9100"
//   [cluster]  shards = 4  request_timeout_ms = 5000  preferred_leader = ["us-east", ...]
//   [[cluster.nodes]]  id = 0  region = "us-east"  peer_endpoint = "tcp://..."
//                      client_endpoint = "tcp://..."  curve_public_key = "..."
//                      added = false  removed = false   # docs/operations.md, "Add a node"
//   [policy]   default = "strong"        rules = { "c/" = "counter", "s/" = "set" }
//   [wan]      enabled = true  seed = 1  clock_offset_ms = 0  links = { "eu-west" = { delay_ms = 40, jitter_ms = 2, loss = 0.0 } }
//   [curve]    secret_key_file = "..."  public_key_file = "..."  allowed_keys_file = "..."
//              admin_keys_file = "..."   # client keys that may run admin operations
//   [queues]   client_bytes_max = 268435456  client_connection_bytes_max = 33554432
//              client_connection_requests_max = 4096
//              peer_inbound_bytes_max = 268435456  peer_inbound_per_peer_bytes_max = 67108864
//
// Security (docs/security.md): without [curve], the node's peer endpoint must be a loopback
// address unless [cluster] insecure = true (then geokvd warns at start and in `status`).
// node.metrics_endpoint is "host:port" or just a port ("9100", ":9100": 127.0.0.1).
struct ClusterConfig {
  uint32_t self = 0;
  std::vector<ClusterNode> nodes;  // sorted by id; ids are 0..n-1
  uint32_t shards = 4;
  std::vector<std::string> preferred_leader;  // per shard, a region name ("" for none)
  int64_t request_timeout_ms = 5000;
  Policy policy;
  std::string metrics_endpoint;    // host:port of the Prometheus endpoint; empty: off
  bool wan_enabled = false;
  uint64_t wan_seed = 1;
  std::vector<std::pair<std::string, WanLink>> wan_links;  // by destination region
  // TEST ONLY: added to this node's wall clock, so one machine can run nodes whose clocks
  // disagree by seconds (the emulation of separate machines' clocks).
  int64_t wan_clock_offset_ms = 0;
  bool curve = false;
  std::string curve_secret_key_file;
  std::string curve_public_key_file;
  std::string curve_allowed_keys_file;
  // Client public keys (Z85, one per line) allowed to run admin operations; they are
  // admitted on the client endpoint too. Empty: no client is an admin while CURVE is on.
  std::string curve_admin_keys_file;
  // Without CURVE, allow a non-loopback peer endpoint (anyone who reaches it is a peer).
  bool insecure = false;

  // Queue bounds, in bytes as well as counts (STYLE 29). Clients: what the node holds of
  // requests not yet taken by the event loop, in total and per connection. Peers: the
  // transport's inbound queue, in total and per sending peer.
  size_t client_bytes_max = 256u << 20;
  size_t client_connection_bytes_max = 32u << 20;
  size_t client_connection_requests_max = 4096;
  size_t peer_inbound_bytes_max = 256u << 20;
  size_t peer_inbound_per_peer_bytes_max = 64u << 20;

  const ClusterNode& me() const { return nodes[self]; }
  // The regions' names, numbered in the order of their first node (by id).
  std::vector<std::string> Regions() const;
  // The number of region `region` (Regions().size() when no node is in it).
  uint32_t RegionIndex(std::string_view region) const;

  // The rules of docs/security.md that span fields: without CURVE the peer endpoint must
  // be loopback unless `insecure`; the metrics endpoint parses. kConfig naming the field.
  Status CheckSecurity() const;
};

// True for 127.0.0.0/8, ::1 (also "[::1]" and "::ffff:127.x.x.x") and "localhost".
bool IsLoopbackHost(std::string_view host);
// True for an ipc:// endpoint, or tcp:// on a loopback host.
bool IsLoopbackEndpoint(std::string_view endpoint);
// node.metrics_endpoint -> (host, port). "" is off (port 0). A bare port, or ":port",
// means 127.0.0.1. The host must be an IP address or "localhost"; the port 1..65535.
// kConfig naming node.metrics_endpoint.
StatusOr<std::pair<std::string, int>> ParseMetricsEndpoint(std::string_view endpoint);

struct Config {
  std::string data_dir;
  Limits limits;
  storage::Durability durability = storage::Durability::kSync;
  size_t group_commit_batches_max = 128;
  int64_t commit_timeout_ms = 30000;
  size_t cache_mb = 64;
  std::string log_level = "info";
  std::optional<ClusterConfig> cluster;  // set by a [cluster] section
  std::string source_path;  // the file LoadFile read (empty from FromToml); for reloads
  // Not from the file: geokvd --new-cluster (EngineOptions::new_cluster).
  bool new_cluster = false;

  // Parses TOML text; `source` names it in error messages (a path, or "<string>").
  static StatusOr<Config> FromToml(std::string_view text, std::string_view source = "<string>");
  // Reads and parses a TOML file.
  static StatusOr<Config> LoadFile(const std::string& path);

  // Checks every field's range; the message names the field.
  Status Validate() const;
};

}  // namespace geokv

#endif  // GEOKV_CORE_SERVER_CONFIG_H_
