// CURVE between nodes and for clients: an allowlisted client works; a client with a key not
// on the allowlist, or without CURVE, gets no answer; a peer whose key is not on the
// allowlist is refused (and counted in the metrics); CURVE without an allowlist refuses to
// start, naming curve.allowed_keys_file.
#include <sys/wait.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "replication/transport/curve_keys.h"
#include "tests/integration/curve_helpers.h"
#include "tests/integration/harness.h"

namespace geokv::integration {
namespace {

using transport::CurveKeyPair;

TEST(Curve, AllowlistedClientsAndPeersOnly) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string keys = dir.path() + "/keys";
  std::filesystem::create_directories(keys);

  // Node keys from the library; the good client's key from the geokv-keygen tool.
  std::vector<KeyFiles> node_keys;
  for (int i = 0; i < 3; ++i) node_keys.push_back(MakeKeys(keys, "node" + std::to_string(i)));
  std::string out;
  auto st = RunProgram({GEOKV_KEYGEN, keys + "/client"}, seconds(20), &out);
  ASSERT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "geokv-keygen failed: " << out;
  CurveKeyPair good;
  {
    auto pub = transport::ReadCurveKeyFile(keys + "/client.pub");
    auto sec = transport::ReadCurveKeyFile(keys + "/client.key");
    ASSERT_TRUE(pub.ok() && sec.ok());
    good = {*pub, *sec};
    EXPECT_NE(out.find(good.public_z85), std::string::npos) << "geokv-keygen printed: " << out;
    auto derived = transport::CurvePublicFromSecret(good.secret_z85);
    ASSERT_TRUE(derived.ok());
    EXPECT_EQ(*derived, good.public_z85);
  }
  const KeyFiles stranger = MakeKeys(keys, "stranger");

  // Nodes 0 and 1 allow each other and the good client, not node 2: node 2 is a peer with
  // a key that is not on their allowlist (a majority without it still works).
  const std::string allow01 = keys + "/allow01.txt", allow2 = keys + "/allow2.txt";
  WriteFile(allow01, "# nodes 0 and 1 and one client\n" + node_keys[0].pair.public_z85 + "\n" +
                         node_keys[1].pair.public_z85 + "\n\n" + good.public_z85 + "\n");
  WriteFile(allow2, node_keys[0].pair.public_z85 + "\n" + node_keys[1].pair.public_z85 + "\n" +
                        node_keys[2].pair.public_z85 + "\n" + good.public_z85 + "\n");

  ClusterOptions options;
  options.metrics = true;
  options.curve = NodeCurve(node_keys, {allow01, allow01, allow2});
  LocalCluster cluster(dir.path(), options);
  // Readiness needs an allowlisted client, so start the nodes and probe with the good key.
  for (size_t i = 0; i < cluster.size(); ++i) ASSERT_TRUE(cluster.StartNode(i));

  std::vector<std::unique_ptr<Client>> good_clients;
  for (size_t i = 0; i < cluster.size(); ++i) {
    const ClientOptions co = CurveClient(node_keys[i].pair.public_z85, good);
    good_clients.push_back(cluster.ClientFor(i, 2000, &co));
    ASSERT_TRUE(good_clients.back());
  }

  // The allowlisted client works on nodes 0 and 1 (strong writes need both: their link is
  // CURVE-authenticated too).
  ASSERT_TRUE(WaitFor([&] { return good_clients[0]->Call(Put("secure/a", "42")).status.ok(); }, seconds(60),
                      milliseconds(200)))
      << "the allowlisted client got no acknowledged write from node 0";
  {
    // Node 1 may not have heard of the shard's leader yet (UNAVAILABLE: nothing applied).
    Response r;
    ASSERT_TRUE(WaitFor([&] { return (r = good_clients[1]->Call(Get("secure/a"))).status.code() != Code::kUnavailable; },
                        seconds(30), milliseconds(200)))
        << r.status.ToString();
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.value, "42");
    r = good_clients[1]->Call(Add("counter/secure", 3));
    EXPECT_TRUE(r.status.ok()) << r.status.ToString();
    Request status;
    status.op = Op::kStatus;
    EXPECT_TRUE(WaitFor([&] { return good_clients[2]->Call(status).status.ok(); }, seconds(30)))
        << "node 2 does not admit the allowlisted client";
  }

  // A client whose key is not on the allowlist gets no answer at all: its request times
  // out, or (once libzmq has dropped the refused connection) cannot even be queued.
  const auto no_answer = [](const Status& s) {
    return s.code() == Code::kTimeout ||
           (s.code() == Code::kUnavailable && s.message().find("not accepting requests") != std::string::npos);
  };
  {
    const ClientOptions co = CurveClient(node_keys[0].pair.public_z85, stranger.pair);
    auto c = cluster.ClientFor(0, 1500, &co);
    ASSERT_TRUE(c);
    Response r = c->Call(Get("secure/a"));
    EXPECT_TRUE(no_answer(r.status)) << r.status.ToString();
    r = c->Call(Put("secure/a", "666"));
    EXPECT_TRUE(no_answer(r.status)) << r.status.ToString();
  }
  // Nor does a client that does not speak CURVE.
  {
    auto c = cluster.ClientFor(0, 1500);
    ASSERT_TRUE(c);
    Response r = c->Call(Get("secure/a"));
    EXPECT_TRUE(no_answer(r.status)) << r.status.ToString();
    r = c->Call(Put("secure/a", "667"));
    EXPECT_TRUE(no_answer(r.status)) << r.status.ToString();
  }
  // The stranger's put never took effect.
  {
    Response r = good_clients[0]->Call(Get("secure/a"));
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.value, "42");
  }

  // Node 2 (not on the others' allowlist) cannot take part: its strong operations fail, and
  // nodes 0 and 1 count the refused handshakes.
  {
    Response r = good_clients[2]->Call(Put("secure/b", "1"));
    EXPECT_TRUE(r.status.code() == Code::kUnavailable || r.status.code() == Code::kTimeout)
        << "strong put through the refused peer: " << r.status.ToString();
  }
  double refused = 0;
  EXPECT_TRUE(WaitFor(
      [&] {
        refused = 0;
        for (size_t i = 0; i < 2; ++i) {
          refused += MetricValue(ScrapeMetrics(cluster.metrics_port(i)), "geokv_transport_dropped_total{reason=\"auth\"}")
                         .value_or(0);
        }
        return refused > 0;
      },
      seconds(30), milliseconds(250)))
      << "nodes 0 and 1 report no refused CURVE peer";
  for (size_t i = 0; i < cluster.size(); ++i) EXPECT_TRUE(cluster.running(i)) << "node " << i << " exited";
}

TEST(Curve, WithoutAllowlistRefusesToStart) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const KeyFiles k = MakeKeys(dir.path(), "node0");
  const std::string config = dir.path() + "/geokvd.toml";
  WriteFile(config, "data_dir = \"" + dir.path() + "/data\"\n"
                    "[node]\nid = 0\n"
                    "[cluster]\nshards = 1\n"
                    "[[cluster.nodes]]\nid = 0\nregion = \"us-east\"\n"
                    "peer_endpoint = \"tcp://127.0.0.1:" + std::to_string(PickPort()) + "\"\n"
                    "client_endpoint = \"tcp://127.0.0.1:" + std::to_string(PickPort()) + "\"\n"
                    "curve_public_key = \"" + k.pair.public_z85 + "\"\n"
                    "[curve]\nsecret_key_file = \"" + k.secret_file + "\"\npublic_key_file = \"" + k.public_file + "\"\n");
  std::string out;
  auto st = RunProgram({GeokvdPath(), "--config", config}, seconds(20), &out);
  ASSERT_TRUE(st.has_value()) << "geokvd kept running with CURVE and no allowlist; output: " << out;
  ASSERT_TRUE(WIFEXITED(*st)) << "geokvd did not exit normally (signal?); output: " << out;
  EXPECT_NE(WEXITSTATUS(*st), 0);
  EXPECT_NE(out.find("curve.allowed_keys_file"), std::string::npos) << out;
}

}  // namespace
}  // namespace geokv::integration
