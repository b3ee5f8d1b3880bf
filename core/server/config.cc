#include "core/server/config.h"

#include "core/engine/request.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <arpa/inet.h>

#include <toml++/toml.h>

namespace geokv {

namespace {

Status ConfigError(std::string_view source, std::string_view field, std::string_view what) {
  return Status(Code::kConfig, std::string(source) + ": " + std::string(field) + ": " + std::string(what));
}

// Rejects keys of `table` not in `known`, so a typo never silently means "default".
Status CheckKnown(const toml::table& table, std::string_view prefix,
                  const std::set<std::string_view>& known, std::string_view source) {
  for (const auto& [key, node] : table) {
    if (known.count(key.str()) == 0) {
      return ConfigError(source, std::string(prefix) + std::string(key.str()), "unknown field");
    }
  }
  return Status::Ok();
}

template <typename T>
Status ReadInt(const toml::table& table, std::string_view name, std::string_view path,
               std::string_view source, int64_t min, int64_t max, T* out) {
  const toml::node* node = table.get(name);
  if (node == nullptr) return Status::Ok();
  auto value = node->value<int64_t>();
  if (!node->is_integer() || !value) return ConfigError(source, path, "must be an integer");
  if (*value < min || *value > max) {
    return ConfigError(source, path, "must be in [" + std::to_string(min) + ", " + std::to_string(max) +
                                          "], not " + std::to_string(*value));
  }
  *out = static_cast<T>(*value);
  return Status::Ok();
}

Status ReadBool(const toml::table& table, std::string_view name, std::string_view path, std::string_view source,
                bool* out) {
  const toml::node* node = table.get(name);
  if (node == nullptr) return Status::Ok();
  if (!node->is_boolean()) return ConfigError(source, path, "must be true or false");
  *out = *node->value<bool>();
  return Status::Ok();
}

Status ReadString(const toml::table& table, std::string_view name, std::string_view path,
                  std::string_view source, std::string* out) {
  const toml::node* node = table.get(name);
  if (node == nullptr) return Status::Ok();
  if (!node->is_string()) return ConfigError(source, path, "must be a string");
  *out = *node->value<std::string>();
  return Status::Ok();
}

const toml::table* SubTable(const toml::table& root, std::string_view name, Status* error,
                            std::string_view source) {
  const toml::node* node = root.get(name);
  if (node == nullptr) return nullptr;
  if (!node->is_table()) {
    *error = ConfigError(source, name, "must be a table ([" + std::string(name) + "])");
    return nullptr;
  }
  return node->as_table();
}

Status ParseCluster(const toml::table& root, std::string_view source, ClusterConfig* out) {
  Status sub_error;
  const toml::table* node = SubTable(root, "node", &sub_error, source);
  GEOKV_RETURN_IF_ERROR(sub_error);
  const toml::table* cluster = SubTable(root, "cluster", &sub_error, source);
  GEOKV_RETURN_IF_ERROR(sub_error);
  if (node == nullptr) return ConfigError(source, "node", "missing (a cluster node needs [node] id = ...)");
  if (cluster == nullptr) return ConfigError(source, "cluster", "missing (a node needs [cluster] and its nodes)");

  GEOKV_RETURN_IF_ERROR(CheckKnown(*node, "node.", {"id", "metrics_endpoint"}, source));
  if (!node->contains("id")) return ConfigError(source, "node.id", "missing");
  GEOKV_RETURN_IF_ERROR(ReadInt(*node, "id", "node.id", source, 0, 63, &out->self));
  GEOKV_RETURN_IF_ERROR(ReadString(*node, "metrics_endpoint", "node.metrics_endpoint", source, &out->metrics_endpoint));

  GEOKV_RETURN_IF_ERROR(CheckKnown(*cluster, "cluster.", {"shards", "request_timeout_ms", "preferred_leader", "nodes", "insecure"}, source));
  GEOKV_RETURN_IF_ERROR(ReadBool(*cluster, "insecure", "cluster.insecure", source, &out->insecure));
  GEOKV_RETURN_IF_ERROR(ReadInt(*cluster, "shards", "cluster.shards", source, 1, 4096, &out->shards));
  GEOKV_RETURN_IF_ERROR(ReadInt(*cluster, "request_timeout_ms", "cluster.request_timeout_ms", source, 1, 3600 * 1000,
                                &out->request_timeout_ms));
  if (const toml::node* pl = cluster->get("preferred_leader")) {
    const toml::array* arr = pl->as_array();
    if (arr == nullptr) return ConfigError(source, "cluster.preferred_leader", "must be an array of region names");
    for (const auto& v : *arr) {
      if (!v.is_string()) return ConfigError(source, "cluster.preferred_leader", "must be an array of region names");
      out->preferred_leader.push_back(*v.value<std::string>());
    }
  }
  const toml::node* nodes = cluster->get("nodes");
  const toml::array* arr = nodes != nullptr ? nodes->as_array() : nullptr;
  if (arr == nullptr || arr->empty()) {
    return ConfigError(source, "cluster.nodes", "missing ([[cluster.nodes]] with id, region, peer_endpoint, client_endpoint)");
  }
  std::set<std::string> regions;
  std::map<uint32_t, std::string> paths;  // node id -> where the file lists it
  for (size_t i = 0; i < arr->size(); ++i) {
    const std::string path = "cluster.nodes[" + std::to_string(i) + "]";
    const toml::table* t = (*arr)[i].as_table();
    if (t == nullptr) return ConfigError(source, path, "must be a table");
    GEOKV_RETURN_IF_ERROR(CheckKnown(*t, path + ".", {"id", "region", "peer_endpoint", "client_endpoint", "curve_public_key",
                                                  "added", "removed"}, source));
    ClusterNode n;
    GEOKV_RETURN_IF_ERROR(ReadInt(*t, "id", path + ".id", source, 0, 63, &n.id));
    GEOKV_RETURN_IF_ERROR(ReadString(*t, "region", path + ".region", source, &n.region));
    GEOKV_RETURN_IF_ERROR(ReadString(*t, "peer_endpoint", path + ".peer_endpoint", source, &n.peer_endpoint));
    GEOKV_RETURN_IF_ERROR(ReadString(*t, "client_endpoint", path + ".client_endpoint", source, &n.client_endpoint));
    GEOKV_RETURN_IF_ERROR(ReadString(*t, "curve_public_key", path + ".curve_public_key", source, &n.curve_public_key));
    GEOKV_RETURN_IF_ERROR(ReadBool(*t, "added", path + ".added", source, &n.added));
    GEOKV_RETURN_IF_ERROR(ReadBool(*t, "removed", path + ".removed", source, &n.removed));
    paths.emplace(n.id, path);
    if (n.region.empty()) return ConfigError(source, path + ".region", "missing");
    if (n.peer_endpoint.empty()) return ConfigError(source, path + ".peer_endpoint", "missing");
    if (n.client_endpoint.empty()) return ConfigError(source, path + ".client_endpoint", "missing");
    regions.insert(n.region);
    out->nodes.push_back(std::move(n));
  }
  std::sort(out->nodes.begin(), out->nodes.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  for (size_t i = 0; i < out->nodes.size(); ++i) {
    if (out->nodes[i].id != i) return ConfigError(source, "cluster.nodes", "ids must be 0..n-1, each once");
  }
  if (out->self >= out->nodes.size()) return ConfigError(source, "node.id", "is not one of cluster.nodes");
  if (out->me().removed) {
    return ConfigError(source, paths[out->self] + ".removed", "is this node itself (node.id): a removed node does not start");
  }
  std::set<std::string> first_seen;  // the first node of each region is its genesis metadata voter
  for (const auto& n : out->nodes) {
    if (!first_seen.insert(n.region).second || !n.added) continue;
    return ConfigError(source, paths[n.id] + ".added",
                       "node " + std::to_string(n.id) + " is the first node of region \"" + n.region +
                           "\" (its metadata voter, in the genesis map): it cannot be added");
  }
  if (regions.size() > 64) return ConfigError(source, "cluster.nodes", "name more than 64 regions");
  for (const auto& region : out->preferred_leader) {
    if (!region.empty() && regions.count(region) == 0) {
      return ConfigError(source, "cluster.preferred_leader", "names unknown region \"" + region + "\"");
    }
  }

  if (const toml::table* p = SubTable(root, "policy", &sub_error, source)) {
    GEOKV_RETURN_IF_ERROR(CheckKnown(*p, "policy.", {"default", "rules"}, source));
    std::string def;
    GEOKV_RETURN_IF_ERROR(ReadString(*p, "default", "policy.default", source, &def));
    if (!def.empty()) {
      auto m = ParseMode(def);
      if (!m.ok()) return ConfigError(source, "policy.default", m.status().message());
      out->policy = Policy(*m);
    }
    if (const toml::node* rules = p->get("rules")) {
      const toml::table* rt = rules->as_table();
      if (rt == nullptr) return ConfigError(source, "policy.rules", "must be a table of prefix = \"mode\"");
      for (const auto& [prefix, mode] : *rt) {
        const std::string path = "policy.rules.\"" + std::string(prefix.str()) + "\"";
        if (!mode.is_string()) return ConfigError(source, path, "must be a mode name");
        auto m = ParseMode(*mode.value<std::string>());
        if (!m.ok()) return ConfigError(source, path, m.status().message());
        if (prefix.str().empty()) return ConfigError(source, path, "empty prefix (use policy.default)");
        Status s = out->policy.Set(prefix.str(), *m);
        if (!s.ok()) return ConfigError(source, path, s.message());
      }
    }
  }
  GEOKV_RETURN_IF_ERROR(sub_error);

  if (const toml::table* w = SubTable(root, "wan", &sub_error, source)) {
    GEOKV_RETURN_IF_ERROR(CheckKnown(*w, "wan.", {"enabled", "seed", "clock_offset_ms", "links"}, source));
    GEOKV_RETURN_IF_ERROR(ReadBool(*w, "enabled", "wan.enabled", source, &out->wan_enabled));
    GEOKV_RETURN_IF_ERROR(ReadInt(*w, "seed", "wan.seed", source, 0, INT64_MAX, &out->wan_seed));
    // A day either way is far beyond any real clock error and keeps the sum in range.
    GEOKV_RETURN_IF_ERROR(ReadInt(*w, "clock_offset_ms", "wan.clock_offset_ms", source, -86'400'000, 86'400'000,
                                  &out->wan_clock_offset_ms));
    if (const toml::node* links = w->get("links")) {
      const toml::table* lt = links->as_table();
      if (lt == nullptr) return ConfigError(source, "wan.links", "must be a table of region = { delay_ms, jitter_ms, loss }");
      for (const auto& [region, link] : *lt) {
        const std::string path = "wan.links." + std::string(region.str());
        const toml::table* l = link.as_table();
        if (l == nullptr) return ConfigError(source, path, "must be a table { delay_ms, jitter_ms, loss }");
        if (regions.count(std::string(region.str())) == 0) return ConfigError(source, path, "unknown region");
        GEOKV_RETURN_IF_ERROR(CheckKnown(*l, path + ".", {"delay_ms", "jitter_ms", "loss"}, source));
        WanLink wl;
        GEOKV_RETURN_IF_ERROR(ReadInt(*l, "delay_ms", path + ".delay_ms", source, 0, 60000, &wl.delay_ms));
        GEOKV_RETURN_IF_ERROR(ReadInt(*l, "jitter_ms", path + ".jitter_ms", source, 0, 60000, &wl.jitter_ms));
        if (const toml::node* loss = l->get("loss")) {
          auto v = loss->value<double>();
          if (!v || *v < 0 || *v > 1) return ConfigError(source, path + ".loss", "must be a number in [0, 1]");
          wl.loss = *v;
        }
        out->wan_links.emplace_back(std::string(region.str()), wl);
      }
    }
  }
  GEOKV_RETURN_IF_ERROR(sub_error);

  if (const toml::table* cv = SubTable(root, "curve", &sub_error, source)) {
    GEOKV_RETURN_IF_ERROR(CheckKnown(*cv, "curve.", {"secret_key_file", "public_key_file", "allowed_keys_file", "admin_keys_file"}, source));
    GEOKV_RETURN_IF_ERROR(ReadString(*cv, "admin_keys_file", "curve.admin_keys_file", source, &out->curve_admin_keys_file));
    GEOKV_RETURN_IF_ERROR(ReadString(*cv, "secret_key_file", "curve.secret_key_file", source, &out->curve_secret_key_file));
    GEOKV_RETURN_IF_ERROR(ReadString(*cv, "public_key_file", "curve.public_key_file", source, &out->curve_public_key_file));
    GEOKV_RETURN_IF_ERROR(ReadString(*cv, "allowed_keys_file", "curve.allowed_keys_file", source, &out->curve_allowed_keys_file));
    if (out->curve_secret_key_file.empty() || out->curve_public_key_file.empty()) {
      return ConfigError(source, "curve", "needs secret_key_file and public_key_file");
    }
    if (out->curve_allowed_keys_file.empty()) {
      // Without an allowlist libzmq would accept any client key: refuse to start.
      return ConfigError(source, "curve.allowed_keys_file", "missing: CURVE without an allowlist admits anyone");
    }
    for (size_t i = 0; i < out->nodes.size(); ++i) {
      if (out->nodes[i].curve_public_key.empty()) {
        return ConfigError(source, "cluster.nodes[" + std::to_string(i) + "].curve_public_key", "missing (CURVE is on)");
      }
    }
    out->curve = true;
  }
  GEOKV_RETURN_IF_ERROR(sub_error);

  if (const toml::table* q = SubTable(root, "queues", &sub_error, source)) {
    GEOKV_RETURN_IF_ERROR(CheckKnown(*q, "queues.", {"client_bytes_max", "client_connection_bytes_max",
                                                     "client_connection_requests_max", "peer_inbound_bytes_max",
                                                     "peer_inbound_per_peer_bytes_max"}, source));
    // The floors leave room for one message of the largest size; the ceilings keep a typo
    // from asking for absurd memory.
    constexpr int64_t kFloor = int64_t{kMessageBytesMax} + 4096;
    constexpr int64_t kCeiling = int64_t{1} << 40;
    GEOKV_RETURN_IF_ERROR(ReadInt(*q, "client_bytes_max", "queues.client_bytes_max", source, kFloor, kCeiling,
                                  &out->client_bytes_max));
    GEOKV_RETURN_IF_ERROR(ReadInt(*q, "client_connection_bytes_max", "queues.client_connection_bytes_max", source,
                                  kFloor, kCeiling, &out->client_connection_bytes_max));
    GEOKV_RETURN_IF_ERROR(ReadInt(*q, "client_connection_requests_max", "queues.client_connection_requests_max",
                                  source, 1, 1 << 20, &out->client_connection_requests_max));
    GEOKV_RETURN_IF_ERROR(ReadInt(*q, "peer_inbound_bytes_max", "queues.peer_inbound_bytes_max", source, kFloor,
                                  kCeiling, &out->peer_inbound_bytes_max));
    GEOKV_RETURN_IF_ERROR(ReadInt(*q, "peer_inbound_per_peer_bytes_max", "queues.peer_inbound_per_peer_bytes_max",
                                  source, kFloor, kCeiling, &out->peer_inbound_per_peer_bytes_max));
  }
  GEOKV_RETURN_IF_ERROR(sub_error);
  if (Status s = out->CheckSecurity(); !s.ok()) return Status(Code::kConfig, std::string(source) + ": " + s.message());
  return Status::Ok();
}

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The host of "tcp://host:port" ("" for anything else).
std::string_view TcpHost(std::string_view endpoint) {
  constexpr std::string_view kTcp = "tcp://";
  if (endpoint.substr(0, kTcp.size()) != kTcp) return {};
  endpoint.remove_prefix(kTcp.size());
  const size_t colon = endpoint.rfind(':');
  return colon == std::string_view::npos ? endpoint : endpoint.substr(0, colon);
}

}  // namespace

StatusOr<Config> Config::FromToml(std::string_view text, std::string_view source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return Status(Code::kConfig, std::string(source) + ":" + std::to_string(where.line) + ":" +
                                     std::to_string(where.column) + ": " + std::string(e.description()));
  }

  Config c;
  GEOKV_RETURN_IF_ERROR(CheckKnown(root, "", {"data_dir", "limits", "storage", "log", "node", "cluster",
                                              "policy", "wan", "curve", "queues"}, source));
  GEOKV_RETURN_IF_ERROR(ReadString(root, "data_dir", "data_dir", source, &c.data_dir));

  Status sub_error;
  if (const toml::table* t = SubTable(root, "limits", &sub_error, source)) {
    GEOKV_RETURN_IF_ERROR(CheckKnown(*t, "limits.", {"key_bytes_max", "value_bytes_max"}, source));
    GEOKV_RETURN_IF_ERROR(ReadInt(*t, "key_bytes_max", "limits.key_bytes_max", source, 1,
                                  Limits::kKeyBytesCeiling, &c.limits.key_bytes_max));
    GEOKV_RETURN_IF_ERROR(ReadInt(*t, "value_bytes_max", "limits.value_bytes_max", source, 0,
                                  Limits::kValueBytesCeiling, &c.limits.value_bytes_max));
  }
  GEOKV_RETURN_IF_ERROR(sub_error);
  if (const toml::table* t = SubTable(root, "storage", &sub_error, source)) {
    GEOKV_RETURN_IF_ERROR(CheckKnown(
        *t, "storage.", {"durability", "group_commit_batches_max", "commit_timeout_ms", "cache_mb"}, source));
    std::string durability;
    GEOKV_RETURN_IF_ERROR(ReadString(*t, "durability", "storage.durability", source, &durability));
    if (!durability.empty()) {
      auto d = storage::ParseDurability(durability);
      if (!d.ok()) return ConfigError(source, "storage.durability", d.status().message());
      c.durability = *d;
    }
    GEOKV_RETURN_IF_ERROR(ReadInt(*t, "group_commit_batches_max", "storage.group_commit_batches_max",
                                  source, 1, 65536, &c.group_commit_batches_max));
    GEOKV_RETURN_IF_ERROR(ReadInt(*t, "commit_timeout_ms", "storage.commit_timeout_ms", source, 1,
                                  3600 * 1000, &c.commit_timeout_ms));
    GEOKV_RETURN_IF_ERROR(ReadInt(*t, "cache_mb", "storage.cache_mb", source, 1, 1 << 20, &c.cache_mb));
  }
  GEOKV_RETURN_IF_ERROR(sub_error);
  if (const toml::table* t = SubTable(root, "log", &sub_error, source)) {
    GEOKV_RETURN_IF_ERROR(CheckKnown(*t, "log.", {"level"}, source));
    GEOKV_RETURN_IF_ERROR(ReadString(*t, "level", "log.level", source, &c.log_level));
  }
  GEOKV_RETURN_IF_ERROR(sub_error);

  if (root.contains("cluster") || root.contains("node")) {
    ClusterConfig cluster;
    GEOKV_RETURN_IF_ERROR(ParseCluster(root, source, &cluster));
    c.cluster = std::move(cluster);
  } else {
    for (const char* section : {"policy", "wan", "curve", "queues"}) {
      if (root.contains(section)) {
        return ConfigError(source, section, "needs a [cluster] section (it configures a cluster node)");
      }
    }
  }

  Status valid = c.Validate();
  if (!valid.ok()) return Status(Code::kConfig, std::string(source) + ": " + valid.message());
  return c;
}

StatusOr<Config> Config::LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(Code::kConfig, path + ": cannot read config file");
  std::ostringstream text;
  text << in.rdbuf();
  auto c = FromToml(text.str(), path);
  if (c.ok()) c->source_path = path;
  return c;
}

std::vector<std::string> ClusterConfig::Regions() const {
  std::vector<std::string> out;
  for (const auto& n : nodes) {
    if (std::find(out.begin(), out.end(), n.region) == out.end()) out.push_back(n.region);
  }
  return out;
}

uint32_t ClusterConfig::RegionIndex(std::string_view region) const {
  const auto names = Regions();
  return static_cast<uint32_t>(std::find(names.begin(), names.end(), region) - names.begin());
}

bool IsLoopbackHost(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost" || host == "::1") return true;
  constexpr std::string_view kMapped = "::ffff:";
  if (host.substr(0, kMapped.size()) == kMapped) host.remove_prefix(kMapped.size());
  in_addr v4{};
  const std::string h(host);
  return inet_pton(AF_INET, h.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

bool IsLoopbackEndpoint(std::string_view endpoint) {
  if (endpoint.substr(0, 6) == "ipc://") return true;  // a local socket file
  const std::string_view host = TcpHost(endpoint);
  return !host.empty() && IsLoopbackHost(host);
}

StatusOr<std::pair<std::string, int>> ParseMetricsEndpoint(std::string_view endpoint) {
  auto bad = [&](const std::string& what) {
    return Status(Code::kConfig, "node.metrics_endpoint: \"" + std::string(endpoint) + "\" " + what);
  };
  if (endpoint.empty()) return std::pair<std::string, int>("", 0);
  std::string host = "127.0.0.1";  // loopback unless a host is named
  std::string_view port = endpoint;
  if (const size_t colon = endpoint.rfind(':'); colon != std::string_view::npos) {
    port = endpoint.substr(colon + 1);
    if (colon > 0) host = std::string(endpoint.substr(0, colon));
  }
  if (!IsDigits(port) || port.size() > 5 || std::stoi(std::string(port)) < 1 || std::stoi(std::string(port)) > 65535) {
    return bad("needs a port in [1, 65535] (host:port, or a port alone for 127.0.0.1)");
  }
  in_addr v4{};
  in6_addr v6{};
  std::string literal = host;
  if (literal.size() >= 2 && literal.front() == '[' && literal.back() == ']') {
    literal = literal.substr(1, literal.size() - 2);
    if (inet_pton(AF_INET6, literal.c_str(), &v6) != 1) return bad("has a bad IPv6 address");
    host = literal;
  } else if (host != "localhost" && inet_pton(AF_INET, host.c_str(), &v4) != 1) {
    return bad("needs an IP address (or localhost) as its host");
  }
  return std::pair<std::string, int>(host, std::stoi(std::string(port)));
}

Status ClusterConfig::CheckSecurity() const {
  if (self < nodes.size() && !curve && !insecure && !IsLoopbackEndpoint(nodes[self].peer_endpoint)) {
    return Status(Code::kConfig,
                  "cluster.nodes[" + std::to_string(self) + "].peer_endpoint: " + nodes[self].peer_endpoint +
                      " is not a loopback address, and without [curve] anyone who reaches it could act as a "
                      "peer: enable [curve], listen on 127.0.0.1, or set [cluster] insecure = true");
  }
  auto metrics = ParseMetricsEndpoint(metrics_endpoint);
  if (!metrics.ok()) return metrics.status();
  return Status::Ok();
}

Status Config::Validate() const {
  auto bad = [](std::string field, std::string what) {
    return Status(Code::kConfig, field + ": " + what);
  };
  if (limits.key_bytes_max < 1 || limits.key_bytes_max > Limits::kKeyBytesCeiling) {
    return bad("limits.key_bytes_max", "must be in [1, " + std::to_string(Limits::kKeyBytesCeiling) + "]");
  }
  if (limits.value_bytes_max > Limits::kValueBytesCeiling) {
    return bad("limits.value_bytes_max", "must be at most " + std::to_string(Limits::kValueBytesCeiling));
  }
  if (group_commit_batches_max < 1) return bad("storage.group_commit_batches_max", "must be at least 1");
  if (commit_timeout_ms < 1) return bad("storage.commit_timeout_ms", "must be at least 1");
  if (cache_mb < 1) return bad("storage.cache_mb", "must be at least 1");
  static const std::set<std::string_view> kLevels = {"trace", "debug", "info", "warn",
                                                     "error", "critical", "off"};
  if (kLevels.count(log_level) == 0) {
    return bad("log.level", "must be one of trace, debug, info, warn, error, critical, off");
  }
  return Status::Ok();
}

}  // namespace geokv
