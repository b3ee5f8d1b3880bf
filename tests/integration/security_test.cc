// Who may do what (docs/security.md), against real geokvd processes:
//   - admin operations from a data client are refused (PERMISSION_DENIED, counted); an admin
//     key may run them; partition and heal exist only while WAN emulation is on;
//   - strangers announcing the peers' routing ids on every peer port change nothing: no
//     strong operation fails during the attempt;
//   - a client flooding the node is held to its connection's share (dropped, counted) and
//     the client queue stays within its byte bound while other clients are served;
//   - a client key and a peer key are rotated under load (SIGHUP, reload-keys) and no
//     request fails.
// Nothing here asserts how long anything takes; every wait has a deadline.
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <zmq.hpp>

#include "core/engine/request.h"
#include "replication/transport/curve_keys.h"
#include "tests/integration/curve_helpers.h"
#include "tests/integration/harness.h"

namespace geokv::integration {
namespace {

using transport::CurveKeyPair;

Request AdminOp(Op op, const std::string& key = "", const std::string& value = "") {
  Request r;
  r.op = op;
  r.key = key;
  r.value = value;
  return r;
}

Request PolicySet(const std::string& prefix, Mode mode) {
  Request r;
  r.op = Op::kPolicySet;
  r.key = prefix;
  r.mode = mode;
  return r;
}

// The peer ports of every node, from a node's config (nodes are written in id order).
std::vector<int> PeerPorts(const LocalCluster& cluster) {
  const std::string text = ReadFile(cluster.config_path(0));
  std::vector<int> ports;
  // Plain search, not std::regex: GCC 12 with ASan warns inside <regex> (-Werror).
  const std::string marker = "peer_endpoint = \"tcp://127.0.0.1:";
  for (size_t at = text.find(marker); at != std::string::npos; at = text.find(marker, at + 1)) {
    ports.push_back(std::stoi(text.substr(at + marker.size())));
  }
  return ports;
}

// GET http://127.0.0.1:port/path: (status, body); status 0 when nothing answered.
std::pair<int, std::string> HttpGet(int port, const std::string& path) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(2, 0);
  cli.set_read_timeout(5, 0);
  auto res = cli.Get(path.c_str());
  if (!res) return {0, ""};
  return {res->status, res->body};
}

void AppendToConfig(const LocalCluster& cluster, size_t i, const std::string& text) {
  WriteFile(cluster.config_path(i), ReadFile(cluster.config_path(i)) + text);
}

// Without CURVE the node's own machine is the admin: a loopback client may partition and
// heal while WAN emulation is on; a node without WAN emulation refuses both and says why.
TEST(Security, PartitionAndHealExistOnlyUnderWanEmulation) {
  TempDir dir;
  ClusterOptions options;
  options.metrics = true;
  LocalCluster cluster(dir.path(), options);
  {
    std::string text = ReadFile(cluster.config_path(2));
    const size_t at = text.find("[wan]\nenabled = true");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, std::string("[wan]\nenabled = true").size(), "[wan]\nenabled = false");
    WriteFile(cluster.config_path(2), text);
    // Node 1 runs with insecure = true: it must say so.
    text = ReadFile(cluster.config_path(1));
    text.insert(text.find("[[cluster.nodes]]"), "insecure = true\n");
    WriteFile(cluster.config_path(1), text);
  }
  ASSERT_EQ(cluster.StartAll(), "");
  ASSERT_TRUE(cluster.WaitLeader(0, 0));
  // Health and readiness for supervisors and load balancers.
  for (size_t i = 0; i < cluster.size(); ++i) {
    EXPECT_TRUE(WaitFor([&] { return HttpGet(cluster.metrics_port(i), "/readyz") == std::pair<int, std::string>(200, "ready\n"); },
                        seconds(30)))
        << "node " << i << " /readyz: " << HttpGet(cluster.metrics_port(i), "/readyz").second;
    EXPECT_EQ(HttpGet(cluster.metrics_port(i), "/healthz"), (std::pair<int, std::string>(200, "ok\n")));
  }
  {
    bool warned = false;
    for (const auto& line : cluster.Status(1)) warned |= line.find("WARNING insecure = true") != std::string::npos;
    EXPECT_TRUE(warned) << "status of a node with insecure = true does not warn";
    EXPECT_EQ(MetricValue(ScrapeMetrics(cluster.metrics_port(1)), "geokv_insecure"), std::optional<double>(1));
    EXPECT_EQ(MetricValue(ScrapeMetrics(cluster.metrics_port(0)), "geokv_insecure"), std::optional<double>(0));
    EXPECT_NE(ReadFile(cluster.log_path(1)).find("INSECURE"), std::string::npos);
  }
  auto c0 = cluster.ClientFor(0);
  auto c2 = cluster.ClientFor(2);
  Response r = c0->Call(AdminOp(Op::kPartition, cluster.region(1), "1"));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  r = c0->Call(AdminOp(Op::kHeal));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  for (Op op : {Op::kPartition, Op::kHeal}) {
    r = c2->Call(AdminOp(op, cluster.region(1), "1"));
    EXPECT_EQ(r.status.code(), Code::kInvalidArgument) << r.status.ToString();
    EXPECT_NE(r.status.message().find("WAN emulation"), std::string::npos) << r.status.ToString();
  }
  // Still connected to everyone: a strong write through node 2 commits.
  EXPECT_TRUE(CallUntilAccepted(*c2, Put("after/wan-refusal", "1")).status.ok());
  EXPECT_TRUE(WaitFor([&] {
    auto v = MetricValue(ScrapeMetrics(cluster.metrics_port(2)),
                         "geokv_admin_refused_total{op=\"partition\",reason=\"wan_off\"}");
    return v && *v >= 1;
  }, seconds(10)));
  // The status says who the admins are.
  bool told = false;
  for (const auto& line : cluster.Status(0)) told |= line.find("admins: loopback clients") != std::string::npos;
  EXPECT_TRUE(told);
}

// With CURVE, admin operations need a key from curve.admin_keys_file. A data client's
// partition, heal, policy change, reload, node state and backup reads (which hand out
// every key) are refused with PERMISSION_DENIED and counted, and none of them took effect.
TEST(Security, AdminOperationsNeedAnAdminKey) {
  TempDir dir;
  const std::string keys = dir.path() + "/keys";
  std::filesystem::create_directories(keys);
  std::vector<KeyFiles> node_keys;
  for (int i = 0; i < 3; ++i) node_keys.push_back(MakeKeys(keys, "node" + std::to_string(i)));
  const KeyFiles data = MakeKeys(keys, "data"), admin = MakeKeys(keys, "admin");
  const std::string allow = keys + "/allow.txt", admins = keys + "/admins.txt";
  WriteFile(allow, node_keys[0].pair.public_z85 + "\n" + node_keys[1].pair.public_z85 + "\n" +
                       node_keys[2].pair.public_z85 + "\n" + data.pair.public_z85 + "\n");
  WriteFile(admins, admin.pair.public_z85 + "\n");
  ClusterOptions options;
  options.metrics = true;
  options.curve = NodeCurve(node_keys, {allow});
  LocalCluster cluster(dir.path(), options);
  for (size_t i = 0; i < cluster.size(); ++i) AppendToConfig(cluster, i, "admin_keys_file = \"" + admins + "\"\n");
  for (size_t i = 0; i < cluster.size(); ++i) ASSERT_TRUE(cluster.StartNode(i));

  const ClientOptions data_opts = CurveClient(node_keys[0].pair.public_z85, data.pair);
  const ClientOptions admin_opts = CurveClient(node_keys[0].pair.public_z85, admin.pair);
  auto data_client = cluster.ClientFor(0, 3000, &data_opts);
  auto admin_client = cluster.ClientFor(0, 3000, &admin_opts);
  ASSERT_TRUE(WaitFor([&] { return data_client->Call(Put("secure/x", "1")).status.ok(); }, seconds(60),
                      milliseconds(200)));

  const std::vector<Request> admin_ops = {AdminOp(Op::kPartition, cluster.region(1), "1"), AdminOp(Op::kHeal),
                                          PolicySet("p/", Mode::kLww), AdminOp(Op::kReloadKeys),
                                          AdminOp(Op::kNodeState, "1", "draining"), AdminOp(Op::kShardSnapshot, "", "0"),
                                          AdminOp(Op::kCrdtDump)};
  for (const Request& op : admin_ops) {
    Response r = data_client->Call(op);
    EXPECT_EQ(r.status.code(), Code::kPermissionDenied) << OpName(op.op) << ": " << r.status.ToString();
    EXPECT_NE(r.status.message().find("admin"), std::string::npos) << r.status.ToString();
  }
  // The refused partition did nothing: strong writes through node 0 still commit (retried
  // while a leadership change to the preferred leader may still be under way).
  Status last;
  EXPECT_TRUE(WaitFor([&] { return (last = data_client->Call(Put("secure/y", "2")).status).ok(); }, seconds(30),
                      milliseconds(200)))
      << last.ToString();
  // The refused policy change did nothing.
  Request list;
  list.op = Op::kPolicyList;
  Response rules = CallUntilAccepted(*data_client, list);
  ASSERT_TRUE(rules.status.ok()) << rules.status.ToString();
  for (const auto& rule : rules.values) EXPECT_EQ(rule.find("p/"), std::string::npos) << rule;
  EXPECT_TRUE(WaitFor([&] {
    const std::string m = ScrapeMetrics(cluster.metrics_port(0));
    auto p = MetricValue(m, "geokv_admin_refused_total{op=\"partition\",reason=\"not_admin\"}");
    auto s = MetricValue(m, "geokv_admin_refused_total{op=\"policy-set\",reason=\"not_admin\"}");
    return p && *p >= 1 && s && *s >= 1;
  }, seconds(10)));

  // The admin key may.
  Response r = CallUntilAccepted(*admin_client, PolicySet("p/", Mode::kLww));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  r = admin_client->Call(AdminOp(Op::kPartition, cluster.region(2), "1"));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  r = admin_client->Call(AdminOp(Op::kHeal));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  r = admin_client->Call(AdminOp(Op::kReloadKeys));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  r = CallUntilAccepted(*admin_client, AdminOp(Op::kShardSnapshot, "", "0"));
  EXPECT_TRUE(r.status.ok() && r.number > 0 && !r.context.empty()) << r.status.ToString();
  r = admin_client->Call(AdminOp(Op::kCrdtDump));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
}

// The attack of issue 11: a DEALER announcing routing id "n<j>" on node i's peer port took
// node j's link to i over. Strangers now do that on every peer port for every node id,
// again and again, while a client writes strong keys: not one write fails.
TEST(Security, PeerLinkHijackAttemptsDoNotCostAStrongWrite) {
  TempDir dir;
  ClusterOptions options;
  options.metrics = true;
  LocalCluster cluster(dir.path(), options);
  ASSERT_EQ(cluster.StartAll(), "");
  const std::vector<int> ports = PeerPorts(cluster);
  ASSERT_EQ(ports.size(), cluster.size());
  auto client = cluster.ClientFor(0, 5000);
  ASSERT_TRUE(CallUntilAccepted(*client, Put("hijack/warmup", "0")).status.ok());

  std::atomic<bool> done{false};
  std::atomic<int> attempts{0};
  std::thread attacker([&] {
    zmq::context_t ctx;
    std::vector<zmq::socket_t> sockets;
    while (!done.load()) {
      for (size_t i = 0; i < ports.size(); ++i) {
        for (size_t j = 0; j < ports.size(); ++j) {
          zmq::socket_t s(ctx, zmq::socket_type::dealer);
          s.set(zmq::sockopt::routing_id, "n" + std::to_string(j));
          s.set(zmq::sockopt::linger, 0);
          s.connect("tcp://127.0.0.1:" + std::to_string(ports[i]));
          s.send(zmq::str_buffer("one garbage frame"), zmq::send_flags::dontwait);
          sockets.push_back(std::move(s));
          attempts++;
        }
      }
      std::this_thread::sleep_for(milliseconds(100));
      if (sockets.size() > 200) sockets.clear();  // old connections go, new ones come
    }
  });
  constexpr int kWrites = 150;
  int failed = 0;
  std::string first_failure;
  for (int k = 0; k < kWrites; ++k) {
    Response r = client->Call(Put("hijack/" + std::to_string(k), std::to_string(k)));
    if (!r.status.ok()) {
      if (failed++ == 0) first_failure = "write " + std::to_string(k) + ": " + r.status.ToString();
    }
  }
  done = true;
  attacker.join();
  EXPECT_EQ(failed, 0) << "strong writes failed during the hijack attempts; first: " << first_failure;
  EXPECT_GT(attempts.load(), 0);
  // The strangers did reach the peer ports: their garbage was dropped and counted.
  double bad = 0;
  EXPECT_TRUE(WaitFor([&] {
    bad = 0;
    for (size_t i = 0; i < cluster.size(); ++i) {
      bad += MetricValue(ScrapeMetrics(cluster.metrics_port(i)), "geokv_transport_dropped_total{reason=\"bad\"}")
                 .value_or(0);
    }
    return bad > 0;
  }, seconds(10)));
  for (int k = 0; k < kWrites; k += 37) {
    Response r = CallUntilAccepted(*client, Get("hijack/" + std::to_string(k)));
    EXPECT_TRUE(r.status.ok() && r.value == std::to_string(k)) << r.status.ToString();
  }
}

// A client flooding requests without reading answers: its connection is held to its share
// (the rest dropped and counted), the queue never passes its byte bound, and another client
// is served meanwhile.
TEST(Security, AClientFloodStaysWithinTheByteBounds) {
  TempDir dir;
  ClusterOptions options;
  options.metrics = true;
  LocalCluster cluster(dir.path(), options);
  constexpr int64_t kClientBytesMax = 32 << 20;
  for (size_t i = 0; i < cluster.size(); ++i) {
    AppendToConfig(cluster, i,
                   "[queues]\nclient_bytes_max = " + std::to_string(kClientBytesMax) +
                       "\nclient_connection_bytes_max = 26214400\nclient_connection_requests_max = 1\n");
  }
  ASSERT_EQ(cluster.StartAll(), "");
  auto calm = cluster.ClientFor(0, 5000);
  ASSERT_TRUE(CallUntilAccepted(*calm, Put("flood/calm", "0")).status.ok());

  std::atomic<bool> done{false};
  std::thread flooder([&] {
    zmq::context_t ctx;
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::sndhwm, 100000);
    s.connect(cluster.client_endpoint(0));
    Request r = Put("lww/flood", std::string(64 << 10, 'f'));
    for (uint64_t id = 1; !done.load() && id <= 3000; ++id) {
      r.id = id;
      const std::string bytes = EncodeRequest(r);
      s.send(zmq::buffer(bytes), zmq::send_flags::none);
    }
    while (!done.load()) std::this_thread::sleep_for(milliseconds(50));
  });
  int calm_failed = 0;
  std::string calm_first_failure;
  for (int k = 0; k < 30; ++k) {
    const Status st = calm->Call(Put("flood/calm", std::to_string(k))).status;
    if (!st.ok() && calm_failed++ == 0) calm_first_failure = st.ToString();
  }
  double dropped = 0;
  EXPECT_TRUE(WaitFor([&] {
    dropped = MetricValue(ScrapeMetrics(cluster.metrics_port(0)),
                          "geokv_client_requests_dropped_total{reason=\"connection_requests\"}")
                  .value_or(0);
    return dropped > 0;
  }, seconds(30)))
      << "the flooding connection was never held to its share";
  done = true;
  flooder.join();
  EXPECT_EQ(calm_failed, 0) << "first: " << calm_first_failure;
  const std::string m = ScrapeMetrics(cluster.metrics_port(0));
  auto peak = MetricValue(m, "geokv_client_queue_bytes_peak");
  ASSERT_TRUE(peak.has_value()) << m;
  EXPECT_GT(*peak, 0);
  EXPECT_LE(*peak, static_cast<double>(kClientBytesMax));
  EXPECT_TRUE(CallUntilAccepted(*calm, Put("flood/after", "1")).status.ok());
}

// Key rotation under load. A client's key: the new key is added (file edit + SIGHUP), the
// client switches to it, the old key is removed (edit + the reload-keys admin command).
// A peer's key: every node learns node 2's new key (edit + SIGHUP), node 2 restarts with it.
// Writes run through nodes 0 and 1 all along, and not one fails.
TEST(Security, RotatingAClientKeyAndAPeerKeyUnderLoadLosesNoRequest) {
  TempDir dir;
  const std::string keys = dir.path() + "/keys";
  std::filesystem::create_directories(keys);
  std::vector<KeyFiles> node_keys;
  for (int i = 0; i < 3; ++i) node_keys.push_back(MakeKeys(keys, "node" + std::to_string(i)));
  const KeyFiles old_client = MakeKeys(keys, "client-old"), new_client = MakeKeys(keys, "client-new");
  const KeyFiles admin = MakeKeys(keys, "admin"), node2_new = MakeKeys(keys, "node2-new");
  const std::string allow = keys + "/allow.txt", admins = keys + "/admins.txt";
  auto write_allow = [&](const std::vector<std::string>& extra) {
    std::string text = node_keys[0].pair.public_z85 + "\n" + node_keys[1].pair.public_z85 + "\n" +
                       node_keys[2].pair.public_z85 + "\n";
    for (const auto& k : extra) text += k + "\n";
    WriteFile(allow + ".tmp", text);
    std::filesystem::rename(allow + ".tmp", allow);  // a reload never sees half a file
  };
  write_allow({old_client.pair.public_z85});
  WriteFile(admins, admin.pair.public_z85 + "\n");
  ClusterOptions options;
  options.metrics = true;
  options.curve = NodeCurve(node_keys, {allow});
  LocalCluster cluster(dir.path(), options);
  for (size_t i = 0; i < cluster.size(); ++i) AppendToConfig(cluster, i, "admin_keys_file = \"" + admins + "\"\n");
  for (size_t i = 0; i < cluster.size(); ++i) ASSERT_TRUE(cluster.StartNode(i));

  // Clients of nodes 0 and 1 (with fail-over between them), one per key.
  auto client_with = [&](const CurveKeyPair& pair) {
    ClientOptions o;
    o.endpoints = {cluster.client_endpoint(0), cluster.client_endpoint(1)};
    o.server_public_keys_z85 = {node_keys[0].pair.public_z85, node_keys[1].pair.public_z85};
    o.public_key_z85 = pair.public_z85;
    o.secret_key_z85 = pair.secret_z85;
    o.timeout_ms = 5000;
    auto c = Client::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  };
  std::unique_ptr<Client> client = client_with(old_client.pair);
  ASSERT_TRUE(client);
  ASSERT_TRUE(WaitFor([&] { return client->Call(Put("rotate/warmup", "0")).status.ok(); }, seconds(60),
                      milliseconds(200)));
  // The preferred leader (node 0) leads shard 0 before the load starts, so that the writes
  // measure the rotations, not the first leadership hand-over.
  {
    const ClientOptions o0 = CurveClient(node_keys[0].pair.public_z85, old_client.pair);
    auto c0 = cluster.ClientFor(0, 3000, &o0);
    Request status;
    status.op = Op::kStatus;
    ASSERT_TRUE(WaitFor([&] {
      Response r = c0->Call(status);
      for (const auto& line : r.values) {
        if (line.rfind("shard 0:", 0) == 0 && line.find("(this node)") != std::string::npos) return true;
      }
      return false;
    }, seconds(60), milliseconds(200)))
        << "node 0 never led shard 0";
    int in_a_row = 0;
    ASSERT_TRUE(WaitFor([&] {
      in_a_row = client->Call(Put("rotate/steady", "1")).status.ok() ? in_a_row + 1 : 0;
      return in_a_row >= 20;
    }, seconds(60), milliseconds(1)));
  }
  // Node 2 must be part of the cluster before its key rotates.
  {
    const ClientOptions o2 = CurveClient(node_keys[2].pair.public_z85, old_client.pair);
    auto c2 = cluster.ClientFor(2, 3000, &o2);
    ASSERT_TRUE(WaitFor([&] { return c2->Call(Get("rotate/warmup")).status.ok(); }, seconds(60), milliseconds(200)));
  }

  std::mutex mu;
  std::vector<std::string> failures;
  std::atomic<int> writes{0};
  std::atomic<bool> done{false};
  // The load: writes through the current client; the test thread swaps clients under mu.
  std::thread load([&] {
    for (int k = 0; !done.load(); ++k) {
      std::lock_guard lock(mu);
      Response r = client->Call(Put("rotate/" + std::to_string(k), std::to_string(k)));
      if (!r.status.ok()) failures.push_back(std::to_string(k) + ": " + r.status.ToString());
      writes++;
    }
  });
  auto reloads_ok = [&](size_t i) {
    return MetricValue(ScrapeMetrics(cluster.metrics_port(i)), "geokv_key_reloads_total{result=\"ok\"}").value_or(-1);
  };
  auto wait_writes = [&](int more) {
    const int target = writes.load() + more;
    return WaitFor([&] { return writes.load() >= target || done.load(); }, seconds(60), milliseconds(20));
  };
  ASSERT_TRUE(wait_writes(20));

  // 1. Client key: add the new key everywhere (SIGHUP), switch, remove the old one (admin op).
  write_allow({old_client.pair.public_z85, new_client.pair.public_z85});
  for (size_t i = 0; i < cluster.size(); ++i) {
    const double before = reloads_ok(i);
    ASSERT_TRUE(cluster.SignalNode(i, SIGHUP));
    ASSERT_TRUE(WaitFor([&] { return reloads_ok(i) > before; }, seconds(20))) << "node " << i << " did not reload";
  }
  {
    std::unique_ptr<Client> fresh = client_with(new_client.pair);
    ASSERT_TRUE(fresh);
    std::lock_guard lock(mu);
    client = std::move(fresh);
  }
  ASSERT_TRUE(wait_writes(20));
  write_allow({new_client.pair.public_z85});
  for (size_t i = 0; i < cluster.size(); ++i) {
    const ClientOptions ao = CurveClient(node_keys[i].pair.public_z85, admin.pair);
    auto admin_client = cluster.ClientFor(i, 3000, &ao);
    Response r = CallUntilAccepted(*admin_client, AdminOp(Op::kReloadKeys));
    ASSERT_TRUE(r.status.ok()) << "node " << i << ": " << r.status.ToString();
  }
  ASSERT_TRUE(wait_writes(20));
  // The old key is out: its requests get no answer.
  {
    const ClientOptions oo = CurveClient(node_keys[0].pair.public_z85, old_client.pair);
    auto revoked = cluster.ClientFor(0, 1500, &oo);
    EXPECT_FALSE(revoked->Call(Get("rotate/warmup")).status.ok());
  }

  // 2. Node 2's key: every node allows and binds the new key, node 2 restarts with it.
  write_allow({new_client.pair.public_z85, node2_new.pair.public_z85});
  for (size_t i = 0; i < cluster.size(); ++i) {
    std::string text = ReadFile(cluster.config_path(i));
    for (size_t at; (at = text.find(node_keys[2].pair.public_z85)) != std::string::npos;) {
      text.replace(at, node_keys[2].pair.public_z85.size(), node2_new.pair.public_z85);
    }
    if (i == 2) {
      for (const auto& [from, to] : {std::pair{node_keys[2].secret_file, node2_new.secret_file},
                                     std::pair{node_keys[2].public_file, node2_new.public_file}}) {
        const size_t at = text.find("\"" + from + "\"");
        ASSERT_NE(at, std::string::npos);
        text.replace(at + 1, from.size(), to);
      }
    }
    WriteFile(cluster.config_path(i), text);
  }
  for (size_t i = 0; i < 2; ++i) {
    const double before = reloads_ok(i);
    ASSERT_TRUE(cluster.SignalNode(i, SIGHUP));
    ASSERT_TRUE(WaitFor([&] { return reloads_ok(i) > before; }, seconds(20))) << "node " << i << " did not reload";
  }
  ASSERT_TRUE(cluster.TerminateNode(2).has_value());
  ASSERT_TRUE(cluster.StartNode(2));
  ASSERT_TRUE(wait_writes(20));
  // Node 2 is back in the cluster under its new key: it serves what the others committed.
  {
    const ClientOptions o2 = CurveClient(node2_new.pair.public_z85, new_client.pair);
    auto c2 = cluster.ClientFor(2, 3000, &o2);
    const int seen = writes.load();
    ASSERT_GT(seen, 1);
    EXPECT_TRUE(WaitFor([&] {
      Response r = c2->Call(Get("rotate/" + std::to_string(seen - 2)));
      return r.status.ok() && r.value == std::to_string(seen - 2);
    }, seconds(60), milliseconds(200)))
        << "node 2 did not rejoin under its new key";
  }
  done = true;
  load.join();
  EXPECT_GT(writes.load(), 60);
  std::lock_guard lock(mu);
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << writes.load()
                                << " writes failed during the rotations; first: " << failures.front();
}

}  // namespace
}  // namespace geokv::integration
