#include "core/server/config.h"

#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/testing/temp_dir.h"

namespace geokv {
namespace {

TEST(ConfigTest, DefaultsWhenEmpty) {
  auto c = Config::FromToml("");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->limits.key_bytes_max, 4096u);
  EXPECT_EQ(c->limits.value_bytes_max, 1024u * 1024u);
  EXPECT_EQ(c->durability, storage::Durability::kSync);
}

TEST(ConfigTest, ReadsEveryField) {
  auto c = Config::FromToml(R"(
    data_dir = "/tmp/x"
    [limits]
    key_bytes_max = 100
    value_bytes_max = 2000
    [storage]
    durability = "write"
    group_commit_batches_max = 64
    commit_timeout_ms = 500
    cache_mb = 16
    [log]
    level = "warn"
  )");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->data_dir, "/tmp/x");
  EXPECT_EQ(c->limits.key_bytes_max, 100u);
  EXPECT_EQ(c->limits.value_bytes_max, 2000u);
  EXPECT_EQ(c->durability, storage::Durability::kWrite);
  EXPECT_EQ(c->group_commit_batches_max, 64u);
  EXPECT_EQ(c->commit_timeout_ms, 500);
  EXPECT_EQ(c->cache_mb, 16u);
  EXPECT_EQ(c->log_level, "warn");
}

void ExpectConfigError(const std::string& text, const std::string& names) {
  auto c = Config::FromToml(text, "test.toml");
  ASSERT_FALSE(c.ok()) << text;
  EXPECT_EQ(c.status().code(), Code::kConfig);
  EXPECT_NE(c.status().message().find(names), std::string::npos)
      << "message \"" << c.status().message() << "\" should name " << names;
}

TEST(ConfigTest, ErrorsNameTheField) {
  ExpectConfigError("[limits]\nkey_bytes_max = 0", "limits.key_bytes_max");
  ExpectConfigError("[limits]\nkey_bytes_max = \"big\"", "limits.key_bytes_max");
  ExpectConfigError("[limits]\nvalue_bytes_max = -1", "limits.value_bytes_max");
  ExpectConfigError("[storage]\ndurability = \"maybe\"", "storage.durability");
  ExpectConfigError("[storage]\nfsync = true", "storage.fsync");
  ExpectConfigError("datadir = \"/x\"", "datadir");
  ExpectConfigError("limits = 3", "limits");
  ExpectConfigError("[log]\nlevel = \"loud\"", "log.level");
}

TEST(ConfigTest, SyntaxErrorsGiveFileLineAndColumn) {
  ExpectConfigError("data_dir = \"unterminated\n", "test.toml:1");
  ExpectConfigError("[limits\nkey_bytes_max = 1", "test.toml:1");
}

TEST(ConfigTest, CorruptedFileIsAConfigErrorNotACrash) {
  testing::TempDir dir;
  {
    std::ofstream out(dir.Sub("bad.toml"), std::ios::binary);
    out << std::string("data_dir = \"\xff\xfe\x00\x01", 16) << "\n[[[";
  }
  auto c = Config::LoadFile(dir.Sub("bad.toml"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kConfig);
  EXPECT_EQ(Config::LoadFile(dir.Sub("missing.toml")).status().code(), Code::kConfig);
}

}  // namespace
// A three-node cluster whose node 0 listens for peers on `peer_host`; `extra` is appended.
std::string ClusterToml(const std::string& peer_host, const std::string& extra = "",
                        const std::string& node_extra = "") {
  return "[node]\nid = 0\n" + node_extra +
         "\n[cluster]\n"
         "[[cluster.nodes]]\nid = 0\nregion = \"a\"\npeer_endpoint = \"tcp://" + peer_host +
         ":7001\"\nclient_endpoint = \"tcp://0.0.0.0:7101\"\n"
         "[[cluster.nodes]]\nid = 1\nregion = \"b\"\npeer_endpoint = \"tcp://10.0.0.2:7001\"\n"
         "client_endpoint = \"tcp://10.0.0.2:7101\"\n"
         "[[cluster.nodes]]\nid = 2\nregion = \"c\"\npeer_endpoint = \"tcp://10.0.0.3:7001\"\n"
         "client_endpoint = \"tcp://10.0.0.3:7101\"\n" + extra;
}

// Without CURVE anyone who reaches the peer port is a peer: a node listens on loopback only,
// unless the operator says insecure.
TEST(ConfigSecurityTest, NonLoopbackPeerEndpointWithoutCurveNeedsInsecure) {
  for (const std::string host : {"0.0.0.0", "10.0.0.1", "*", "example.com", "[::]"}) {
    SCOPED_TRACE(host);
    auto c = Config::FromToml(ClusterToml(host), "test.toml");
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), Code::kConfig);
    EXPECT_NE(c.status().message().find("cluster.nodes[0].peer_endpoint"), std::string::npos) << c.status().message();
    EXPECT_NE(c.status().message().find("insecure"), std::string::npos) << c.status().message();
    auto insecure = Config::FromToml(ClusterToml(host).insert(ClusterToml(host).find("[[cluster.nodes]]"),
                                                              "insecure = true\n"));
    ASSERT_TRUE(insecure.ok()) << insecure.status().ToString();
    EXPECT_TRUE(insecure->cluster->insecure);
  }
  for (const std::string host : {"127.0.0.1", "127.1.2.3", "localhost", "[::1]"}) {
    SCOPED_TRACE(host);
    auto c = Config::FromToml(ClusterToml(host));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_FALSE(c->cluster->insecure);
  }
  ExpectConfigError(ClusterToml("127.0.0.1").insert(ClusterToml("127.0.0.1").find("[[cluster.nodes]]"),
                                                    "insecure = \"yes\"\n"),
                    "cluster.insecure");
}

TEST(ConfigSecurityTest, LoopbackHosts) {
  for (const char* h : {"127.0.0.1", "127.255.0.9", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackHost(h)) << h;
  }
  for (const char* h : {"", "0.0.0.0", "10.0.0.1", "128.0.0.1", "::", "::2", "localhost.evil.com", "*",
                        "1270.0.0.1", "::ffff:10.0.0.1"}) {
    EXPECT_FALSE(IsLoopbackHost(h)) << h;
  }
  EXPECT_TRUE(IsLoopbackEndpoint("ipc:///tmp/geokv.sock"));
  EXPECT_TRUE(IsLoopbackEndpoint("tcp://127.0.0.1:7001"));
  EXPECT_FALSE(IsLoopbackEndpoint("tcp://0.0.0.0:7001"));
  EXPECT_FALSE(IsLoopbackEndpoint("tcp://*:7001"));
}

// A bad metrics address used to become an ephemeral port silently; now start is refused
// naming the field, and a bare port means loopback.
TEST(ConfigSecurityTest, MetricsEndpointIsLoopbackByDefaultAndBadOnesAreRefused) {
  auto p = ParseMetricsEndpoint("9100");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->first, "127.0.0.1");
  EXPECT_EQ(p->second, 9100);
  p = ParseMetricsEndpoint(":9100");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->first, "127.0.0.1");
  p = ParseMetricsEndpoint("0.0.0.0:65535");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->first, "0.0.0.0");
  EXPECT_EQ(p->second, 65535);
  p = ParseMetricsEndpoint("[::1]:1");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->first, "::1");
  p = ParseMetricsEndpoint("");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->second, 0);
  for (const char* bad : {"127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:99999", "127.0.0.1:", "127.0.0.1:abc",
                          "127.0.0.1:-1", "example.com:9100", "300.1.1.1:9100", "[::1:9100", "[zz]:9100",
                          "127.0.0.1:9100x", "127.0.0.1: 9100"}) {
    auto bad_p = ParseMetricsEndpoint(bad);
    ASSERT_FALSE(bad_p.ok()) << bad;
    EXPECT_EQ(bad_p.status().code(), Code::kConfig);
    EXPECT_NE(bad_p.status().message().find("node.metrics_endpoint"), std::string::npos) << bad_p.status().message();
    ExpectConfigError(ClusterToml("127.0.0.1", "", std::string("metrics_endpoint = \"") + bad + "\""),
                      "node.metrics_endpoint");
  }
}

TEST(ConfigSecurityTest, QueueBoundsAndAdminKeys) {
  auto c = Config::FromToml(ClusterToml("127.0.0.1",
                                        "[queues]\nclient_bytes_max = 100000000\nclient_connection_bytes_max = "
                                        "30000000\nclient_connection_requests_max = 7\npeer_inbound_bytes_max = "
                                        "200000000\npeer_inbound_per_peer_bytes_max = 50000000\n"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->cluster->client_bytes_max, 100000000u);
  EXPECT_EQ(c->cluster->client_connection_bytes_max, 30000000u);
  EXPECT_EQ(c->cluster->client_connection_requests_max, 7u);
  EXPECT_EQ(c->cluster->peer_inbound_bytes_max, 200000000u);
  EXPECT_EQ(c->cluster->peer_inbound_per_peer_bytes_max, 50000000u);
  // Below room for one largest message, or a typo: refused naming the field.
  ExpectConfigError(ClusterToml("127.0.0.1", "[queues]\nclient_bytes_max = 1000\n"), "queues.client_bytes_max");
  ExpectConfigError(ClusterToml("127.0.0.1", "[queues]\nclient_connection_requests_max = 0\n"),
                    "queues.client_connection_requests_max");
  ExpectConfigError(ClusterToml("127.0.0.1", "[queues]\npeer_inbound_bytes_max = -1\n"),
                    "queues.peer_inbound_bytes_max");
  ExpectConfigError(ClusterToml("127.0.0.1", "[queues]\nclient_byte_max = 1\n"), "queues.client_byte_max");
  ExpectConfigError("[queues]\nclient_bytes_max = 100000000\n", "queues");
}

namespace {

// Several nodes in one region (ids 0..n-1 in any file order; regions numbered in the order
// of their first node by id, whatever order the file lists the nodes in).
// `node_extra`: more lines of a node's table, by id.
std::string MultiNodeToml(const std::vector<std::pair<int, std::string>>& nodes, int self = 0,
                          const std::string& cluster_extra = "", const std::map<int, std::string>& node_extra = {}) {
  std::string t = "[node]\nid = " + std::to_string(self) + "\n[cluster]\n" + cluster_extra;
  for (const auto& [id, region] : nodes) {
    t += "[[cluster.nodes]]\nid = " + std::to_string(id) + "\nregion = \"" + region +
         "\"\npeer_endpoint = \"tcp://127.0.0.1:" + std::to_string(7000 + id) +
         "\"\nclient_endpoint = \"tcp://127.0.0.1:" + std::to_string(7100 + id) + "\"\n";
    if (auto extra = node_extra.find(id); extra != node_extra.end()) t += extra->second + "\n";
  }
  return t;
}

TEST(ConfigClusterTest, SeveralNodesPerRegionParseAndRegionsAreNumberedByFirstNode) {
  // Listed out of id order: node 4 (c) first, region b's first node is 1.
  auto c = Config::FromToml(MultiNodeToml({{4, "c"}, {0, "a"}, {2, "a"}, {3, "b"}, {1, "b"}, {5, "c"}}, 3,
                                          "shards = 2\npreferred_leader = [\"b\", \"a\"]\n"),
                            "test.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(c->cluster.has_value());
  const ClusterConfig& cc = *c->cluster;
  ASSERT_EQ(cc.nodes.size(), 6u);
  for (uint32_t i = 0; i < cc.nodes.size(); ++i) EXPECT_EQ(cc.nodes[i].id, i);
  EXPECT_EQ(cc.self, 3u);
  EXPECT_EQ(cc.preferred_leader, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(cc.me().region, "b");
  EXPECT_EQ(cc.Regions(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(cc.RegionIndex("a"), 0u);
  EXPECT_EQ(cc.RegionIndex("b"), 1u);
  EXPECT_EQ(cc.RegionIndex("c"), 2u);
  EXPECT_EQ(cc.RegionIndex("nowhere"), 3u);  // Regions().size(): no node is there
  const std::vector<uint32_t> expected_region = {0, 1, 0, 1, 2, 2};
  for (const auto& n : cc.nodes) EXPECT_EQ(cc.RegionIndex(n.region), expected_region[n.id]) << "node " << n.id;

  // The numbering follows the first node by id, not the names or the file order.
  auto d = Config::FromToml(MultiNodeToml({{0, "z"}, {1, "z"}, {2, "m"}, {3, "a"}}));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->cluster->Regions(), (std::vector<std::string>{"z", "m", "a"}));
  EXPECT_EQ(d->cluster->RegionIndex("a"), 2u);
  // One region holding every node.
  auto e = Config::FromToml(MultiNodeToml({{0, "solo"}, {1, "solo"}, {2, "solo"}}, 2));
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->cluster->Regions(), std::vector<std::string>{"solo"});
  EXPECT_EQ(e->cluster->RegionIndex("solo"), 0u);
}

TEST(ConfigClusterTest, NodeIdsMustStillBeZeroToNMinusOne) {
  // A gap, a repeat, a list that does not start at 0: refused whatever the regions.
  ExpectConfigError(MultiNodeToml({{0, "a"}, {1, "a"}, {3, "b"}}), "ids must be 0..n-1");
  ExpectConfigError(MultiNodeToml({{0, "a"}, {1, "a"}, {1, "b"}}), "ids must be 0..n-1");
  ExpectConfigError(MultiNodeToml({{1, "a"}, {2, "a"}, {3, "b"}}, 1), "ids must be 0..n-1");
  // This node must be one of them.
  ExpectConfigError(MultiNodeToml({{0, "a"}, {1, "a"}}, 2), "node.id");
  // Ids are bounded (0..63) like the engine's node count.
  ExpectConfigError(MultiNodeToml({{0, "a"}, {64, "a"}}), "cluster.nodes[1].id");
}

TEST(ConfigClusterTest, AddedAndRemovedNodes) {
  // Three regions of one genesis node each (0..2); 3 and 4 added later; 1 removed.
  const std::vector<std::pair<int, std::string>> nodes = {{0, "a"}, {1, "b"}, {2, "c"}, {3, "a"}, {4, "b"}};
  auto c = Config::FromToml(MultiNodeToml(nodes, 4, "", {{3, "added = true"}, {4, "added = true"}, {1, "removed = true"}}),
                            "test.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const std::vector<bool> added = {false, false, false, true, true}, removed = {false, true, false, false, false};
  for (const auto& n : c->cluster->nodes) {
    EXPECT_EQ(n.added, added[n.id]) << "node " << n.id;
    EXPECT_EQ(n.removed, removed[n.id]) << "node " << n.id;
  }
  // Explicit false is the default; a removed node may be any node but this one, the first
  // of its region included (node 1, a dead genesis node being replaced).
  auto d = Config::FromToml(MultiNodeToml(nodes, 0, "", {{0, "added = false\nremoved = false"}, {3, "removed = true"}}));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_FALSE(d->cluster->nodes[0].added);
  EXPECT_TRUE(d->cluster->nodes[3].removed);

  // Not a bool: refused naming the field (its place in the file, here the fourth entry).
  ExpectConfigError(MultiNodeToml(nodes, 0, "", {{3, "added = 1"}}), "cluster.nodes[3].added: must be true or false");
  ExpectConfigError(MultiNodeToml(nodes, 0, "", {{3, "added = \"true\""}}), "cluster.nodes[3].added");
  ExpectConfigError(MultiNodeToml(nodes, 0, "", {{1, "removed = \"yes\""}}), "cluster.nodes[1].removed");
  ExpectConfigError(MultiNodeToml(nodes, 0, "", {{1, "remove = true"}}), "cluster.nodes[1].remove: unknown field");
  // Both at once: a node added to the running cluster, since gone (what a config of its
  // replacement says).
  auto both = Config::FromToml(MultiNodeToml(nodes, 4, "", {{3, "added = true\nremoved = true"}, {4, "added = true"}}));
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_TRUE(both->cluster->nodes[3].added && both->cluster->nodes[3].removed);
  // This node itself removed; named where the file lists it (file order, not id).
  ExpectConfigError(MultiNodeToml(nodes, 3, "", {{3, "removed = true"}}), "cluster.nodes[3].removed: is this node itself");
  ExpectConfigError(MultiNodeToml({{1, "b"}, {0, "a"}}, 0, "", {{0, "removed = true"}}), "cluster.nodes[1].removed");
  // The first node of a region is the genesis metadata voter: never added. Node 2 is c's
  // first; in a new region d, node 5 is its first even though it comes last.
  ExpectConfigError(MultiNodeToml(nodes, 0, "", {{2, "added = true"}}), "cluster.nodes[2].added: node 2 is the first");
  ExpectConfigError(MultiNodeToml({{0, "a"}, {1, "b"}, {2, "a"}}, 0, "", {{1, "added = true"}}), "cluster.nodes[1].added");
  auto e = Config::FromToml(MultiNodeToml({{0, "a"}, {1, "b"}, {2, "a"}, {3, "d"}}, 0, "", {{3, "added = true"}}));
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("region \"d\""), std::string::npos) << e.status().message();
  // The second node of a region, added: fine.
  EXPECT_TRUE(Config::FromToml(MultiNodeToml({{0, "a"}, {1, "b"}, {2, "a"}}, 0, "", {{2, "added = true"}})).ok());
}

}  // namespace

}  // namespace geokv
