// The cluster client against scripted nodes (ZeroMQ ROUTER sockets in this process): its
// session, where it goes after a timeout, what it re-sends and what it never re-sends, and
// EINTR (issue 8 item 11, the client side); and routing by the cluster map (issue 12): the
// node a keyed request goes to, redirects and map refreshes, and the fall-backs when the
// map cannot be had or the routed-to node is silent. Asserts behaviour, never timings.
#include "core/server/client.h"

#include <signal.h>
#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "core/engine/cluster_map.h"

namespace geokv {
namespace {

// A node that records every request it gets and answers per `answer` (nullopt: silence).
class ScriptedNode {
 public:
  using Answer = std::function<std::optional<Response>(const Request&)>;

  explicit ScriptedNode(zmq::context_t& ctx, Answer answer) : socket_(ctx, zmq::socket_type::router), answer_(answer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind("tcp://127.0.0.1:*");
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { Run(); });
  }
  ~ScriptedNode() {
    stop_ = true;
    thread_.join();
  }

  const std::string& endpoint() const { return endpoint_; }
  std::vector<Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void Run() {
    while (!stop_) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(10));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t identity, payload;
      (void)socket_.recv(identity);
      (void)socket_.recv(payload);
      auto request = DecodeRequest(payload.to_string_view());
      if (!request.ok()) continue;
      {
        std::lock_guard lock(mu_);
        requests_.push_back(*request);
      }
      auto response = answer_(*request);
      if (!response) continue;
      response->id = request->id;
      const std::string bytes = EncodeResponse(*response);
      socket_.send(identity, zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(bytes));
    }
  }

  zmq::socket_t socket_;
  Answer answer_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Request> requests_;
  std::thread thread_;
};

std::optional<Response> Silent(const Request&) { return std::nullopt; }
std::optional<Response> Ok(const Request&) {
  Response r;
  r.number = 7;
  return r;
}
std::optional<Response> Refuse(const Request&) {
  Response r;
  r.status = Status(Code::kUnavailable, "no quorum");
  return r;
}

// Without routing: these tests are about the endpoint order (routing has its own below).
std::unique_ptr<Client> ConnectTo(const std::vector<std::string>& endpoints, int64_t timeout_ms) {
  ClientOptions options;
  options.endpoints = endpoints;
  options.timeout_ms = timeout_ms;
  options.route_by_map = false;
  auto client = Client::Connect(options);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return std::move(client).value();
}

Request Put(const std::string& key) {
  Request r;
  r.op = Op::kPut;
  r.key = key;
  r.value = "v";
  return r;
}

class ClientTest : public ::testing::Test {
 protected:
  zmq::context_t ctx_{1};
};

TEST_F(ClientTest, WritesCarryOneSessionAndASequencePerWrite) {
  ScriptedNode node(ctx_, Ok);
  auto client = ConnectTo({node.endpoint()}, 5000);
  ASSERT_TRUE(client->Call(Put("a")).status.ok());
  ASSERT_TRUE(client->Call(Put("b")).status.ok());
  Request get;
  get.op = Op::kGet;
  get.key = "a";
  ASSERT_TRUE(client->Call(get).status.ok());
  auto seen = node.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_NE(seen[0].client_id, 0u);
  EXPECT_EQ(seen[0].client_id, client->client_id());
  EXPECT_EQ(seen[1].client_id, seen[0].client_id);
  EXPECT_EQ(seen[1].seq, seen[0].seq + 1);
  EXPECT_EQ(seen[2].client_id, 0u);  // a read needs no session
  auto other = ConnectTo({node.endpoint()}, 5000);
  EXPECT_NE(other->client_id(), client->client_id());
}

// A paused node: the write is re-sent to the next node under the same session (applied
// once there), and the next request starts at that node instead of waiting again.
TEST_F(ClientTest, TimeoutResendsAWriteUnderItsSessionAndMovesOn) {
  ScriptedNode paused(ctx_, Silent);
  ScriptedNode healthy(ctx_, Ok);
  auto client = ConnectTo({paused.endpoint(), healthy.endpoint()}, 300);
  Response first = client->Call(Put("k"));
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  ASSERT_EQ(paused.requests().size(), 1u);
  ASSERT_EQ(healthy.requests().size(), 1u);
  EXPECT_EQ(healthy.requests()[0].client_id, paused.requests()[0].client_id);
  EXPECT_EQ(healthy.requests()[0].seq, paused.requests()[0].seq);
  ASSERT_TRUE(client->Call(Put("k2")).status.ok());
  EXPECT_EQ(paused.requests().size(), 1u);  // not asked again
  EXPECT_EQ(healthy.requests().size(), 2u);
}

// add is not idempotent on a CRDT counter: after an unknown outcome it is never re-sent;
// the caller gets kTimeout, and the next request goes to the next node.
TEST_F(ClientTest, TimeoutNeverResendsANonIdempotentWrite) {
  ScriptedNode paused(ctx_, Silent);
  ScriptedNode healthy(ctx_, Ok);
  auto client = ConnectTo({paused.endpoint(), healthy.endpoint()}, 300);
  Request add;
  add.op = Op::kAdd;
  add.key = "n";
  add.delta = 1;
  Response r = client->Call(add);
  EXPECT_EQ(r.status.code(), Code::kTimeout) << r.status.ToString();
  EXPECT_NE(r.status.message().find("may or may not"), std::string::npos) << r.status.ToString();
  EXPECT_EQ(healthy.requests().size(), 0u);
  r = client->Call(add);
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(paused.requests().size(), 1u);
  ASSERT_EQ(healthy.requests().size(), 1u);
  EXPECT_NE(healthy.requests()[0].seq, paused.requests()[0].seq);  // a new write, a new sequence
  for (Op op : {Op::kAdd, Op::kMvPut, Op::kPolicyRemove}) EXPECT_FALSE(Client::Resendable(op));
  for (Op op : {Op::kPut, Op::kDelete, Op::kCas, Op::kSetAdd, Op::kSetRemove}) EXPECT_TRUE(Client::Resendable(op));
}

// UNAVAILABLE means "not applied": any request moves on at once, add included.
TEST_F(ClientTest, RefusalMovesOnForEveryRequest) {
  ScriptedNode refusing(ctx_, Refuse);
  ScriptedNode healthy(ctx_, Ok);
  auto client = ConnectTo({refusing.endpoint(), healthy.endpoint()}, 5000);
  Request add;
  add.op = Op::kAdd;
  add.key = "n";
  add.delta = 1;
  Response r = client->Call(add);
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.number, 7);
  ASSERT_EQ(healthy.requests().size(), 1u);
  EXPECT_EQ(healthy.requests()[0].seq, refusing.requests()[0].seq);
}

TEST_F(ClientTest, RefusalsAreToldInUserTerms) {
  ScriptedNode node(ctx_, [](const Request&) -> std::optional<Response> {
    Response r;
    r.status = Status(Code::kUnavailable, "paxos: not the leader");
    return r;
  });
  auto client = ConnectTo({node.endpoint()}, 5000);
  Response r = client->Call(Put("k"));
  EXPECT_EQ(r.status.code(), Code::kUnavailable);
  EXPECT_EQ(r.status.message().find("paxos"), std::string::npos) << r.status.ToString();
  EXPECT_NE(r.status.message().find("nothing was applied"), std::string::npos) << r.status.ToString();
}

TEST_F(ClientTest, AllNodesSilentIsATimeout) {
  ScriptedNode a(ctx_, Silent);
  ScriptedNode b(ctx_, Silent);
  auto client = ConnectTo({a.endpoint(), b.endpoint()}, 200);
  EXPECT_EQ(client->Call(Put("k")).status.code(), Code::kTimeout);
  Request get;
  get.op = Op::kGet;
  get.key = "k";
  EXPECT_EQ(client->Call(get).status.code(), Code::kTimeout);
}

void OnAlarm(int) {}

// A signal that interrupts the wait is not an error: the call waits on and gets its answer.
TEST_F(ClientTest, EintrIsRetriedNotReported) {
  std::atomic<bool> release{false};
  ScriptedNode slow(ctx_, [&](const Request&) -> std::optional<Response> {
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return Response{};
  });
  struct sigaction sa {};
  sa.sa_handler = OnAlarm;
  sa.sa_flags = 0;  // no SA_RESTART: poll fails with EINTR
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGALRM, &sa, &old), 0);
  auto client = ConnectTo({slow.endpoint()}, 30000);
  const pthread_t caller = pthread_self();
  std::thread signaller([&] {
    while (slow.requests().empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (int i = 0; i < 5; ++i) {
      pthread_kill(caller, SIGALRM);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    release = true;
  });
  Response r = client->Call(Put("k"));
  signaller.join();
  sigaction(SIGALRM, &old, nullptr);
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(slow.requests().size(), 1u);  // waited on the same node, never re-sent
}

// A node that answers nothing until it holds `want` requests at once, then answers them
// all: it only ever answers a client that has that many requests in flight together.
class GatheringNode {
 public:
  GatheringNode(zmq::context_t& ctx, size_t want) : socket_(ctx, zmq::socket_type::router), want_(want) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind("tcp://127.0.0.1:*");
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { Run(); });
  }
  ~GatheringNode() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  std::vector<Request> answered() {
    std::lock_guard lock(mu_);
    return answered_;
  }

 private:
  void Run() {
    std::vector<std::pair<std::string, Request>> held;
    while (!stop_) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(10));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t identity, payload;
      (void)socket_.recv(identity);
      (void)socket_.recv(payload);
      auto request = DecodeRequest(payload.to_string_view());
      if (!request.ok()) continue;
      held.emplace_back(identity.to_string(), *request);
      if (held.size() < want_) continue;
      for (const auto& [who, r] : held) {
        Response response;
        response.id = r.id;
        const std::string bytes = EncodeResponse(response);
        socket_.send(zmq::buffer(who), zmq::send_flags::sndmore);
        socket_.send(zmq::buffer(bytes));
      }
      std::lock_guard lock(mu_);
      for (auto& h : held) answered_.push_back(h.second);
      held.clear();
    }
  }

  zmq::socket_t socket_;
  const size_t want_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Request> answered_;
  std::thread thread_;
};

// One client, many threads: their requests are in flight together (the node answers only
// once it holds all 8), each concurrent write under a session of its own (a session has one
// write in flight at a time, so exactly-once holds).
TEST_F(ClientTest, ThreadsSharingOneClientHaveTheirRequestsInFlightTogether) {
  constexpr size_t kThreads = 8;
  GatheringNode node(ctx_, kThreads);
  auto client = ConnectTo({node.endpoint()}, 10'000);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Response r = client->Call(Put("k" + std::to_string(t)));
      if (r.status.ok()) ok++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), static_cast<int>(kThreads));
  std::set<uint64_t> sessions;
  for (const Request& r : node.answered()) sessions.insert(r.client_id);
  EXPECT_EQ(sessions.size(), kThreads);
  EXPECT_EQ(sessions.count(0), 0u);
}


// ---- routing by the cluster map ----------------------------------------------------------

// A map of two regions, east (nodes 0 and 1) and west (node 2), with client addresses
// `addresses` (by node id) and one shard, whose east replica is on `east_holder` and west
// one on node 2. Each of `bumps` policy rules raises the version by one.
placement::ClusterMap TwoRegionMap(const std::vector<std::string>& addresses, placement::NodeId east_holder,
                                   int bumps = 0) {
  using namespace placement;
  ClusterMap map;
  EXPECT_TRUE(map.Apply(AddRegion{"east"}).ok());
  EXPECT_TRUE(map.Apply(AddRegion{"west"}).ok());
  const RegionId region_of[] = {0, 0, 1};
  for (NodeId id = 0; id < 3; ++id) {
    EXPECT_TRUE(map.Apply(AddNode{id, region_of[id], "tcp://127.0.0.1:" + std::to_string(1000 + id), addresses[id]}).ok());
    EXPECT_TRUE(map.Apply(SetNodeState{id, NodeState::kUp}).ok());
  }
  ShardPlacement shard;
  shard.replicas = {east_holder, 2};
  EXPECT_TRUE(map.Apply(InitShards{{shard}}).ok());
  for (int i = 0; i < bumps; ++i) EXPECT_TRUE(map.Apply(SetPolicyRule{"bump" + std::to_string(i) + "/", Mode::kLww}).ok());
  return map;
}

// Answers cluster-map requests with the map last Set (as a node does: value = encoding,
// number = version), and every other request per `other`.
class MapSource {
 public:
  void Set(const placement::ClusterMap& map) {
    std::lock_guard lock(mu_);
    encoded_ = map.Encode();
    version_ = map.version();
  }
  ScriptedNode::Answer Serve(ScriptedNode::Answer other) {
    return [this, other](const Request& r) -> std::optional<Response> {
      if (r.op != Op::kClusterMap) return other(r);
      std::lock_guard lock(mu_);
      Response resp;
      resp.found = true;
      resp.value = encoded_;
      resp.number = static_cast<int64_t>(version_);
      return resp;
    };
  }

 private:
  std::mutex mu_;
  std::string encoded_;
  uint64_t version_ = 0;
};

size_t MapRequests(const std::vector<Request>& seen) {
  size_t n = 0;
  for (const auto& r : seen) n += r.op == Op::kClusterMap ? 1 : 0;
  return n;
}
size_t KeyedRequests(const std::vector<Request>& seen) {
  size_t n = 0;
  for (const auto& r : seen) n += r.op != Op::kClusterMap && r.op != Op::kStatus ? 1 : 0;
  return n;
}

std::unique_ptr<Client> RoutingClient(const std::string& endpoint, int64_t timeout_ms, const std::string& region = "") {
  ClientOptions options;
  options.endpoints = {endpoint};
  options.timeout_ms = timeout_ms;
  options.region = region;
  auto client = Client::Connect(options);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return std::move(client).value();
}

Request Get(const std::string& key) {
  Request r;
  r.op = Op::kGet;
  r.key = key;
  return r;
}

// Connected to node 0 (east) only: the map, fetched from it on the first keyed request,
// sends keyed requests to node 1, the east holder; other requests stay with the endpoint.
TEST_F(ClientTest, RoutesKeyedRequestsToTheShardsHolderInTheClientsRegion) {
  MapSource maps;
  ScriptedNode a(ctx_, maps.Serve(Ok)), b(ctx_, Ok), c(ctx_, Ok);
  const placement::ClusterMap map = TwoRegionMap({a.endpoint(), b.endpoint(), c.endpoint()}, /*east_holder=*/1);
  maps.Set(map);
  auto client = RoutingClient(a.endpoint(), 5000);
  Request status;
  status.op = Op::kStatus;
  ASSERT_TRUE(client->Call(status).status.ok());
  EXPECT_EQ(MapRequests(a.requests()), 0u);  // fetched on the first keyed request, not before
  ASSERT_TRUE(client->Call(Put("k")).status.ok());
  ASSERT_TRUE(client->Call(Get("k")).status.ok());
  ASSERT_TRUE(client->Call(status).status.ok());
  EXPECT_EQ(MapRequests(a.requests()), 1u);
  EXPECT_EQ(KeyedRequests(a.requests()), 0u);
  ASSERT_EQ(b.requests().size(), 2u);
  EXPECT_EQ(b.requests()[0].op, Op::kPut);
  EXPECT_EQ(b.requests()[0].client_id, client->client_id());  // the lane's session, as without routing
  EXPECT_EQ(b.requests()[1].op, Op::kGet);
  EXPECT_TRUE(c.requests().empty());  // another region's holder
  const ClientCounters n = client->counters();
  EXPECT_EQ(n.routed, 2u);
  EXPECT_EQ(n.map_fetches, 1u);
  EXPECT_EQ(n.map_refreshes, 0u);
  EXPECT_EQ(n.redirects, 0u);
  EXPECT_EQ(n.map_version, map.version());
}

// ClientOptions::region names the region; a name the map does not have routes nowhere.
TEST_F(ClientTest, TheRegionOptionChoosesTheRegionRoutedIn) {
  MapSource maps;
  ScriptedNode a(ctx_, maps.Serve(Ok)), b(ctx_, Ok), c(ctx_, Ok);
  maps.Set(TwoRegionMap({a.endpoint(), b.endpoint(), c.endpoint()}, /*east_holder=*/1));
  auto west = RoutingClient(a.endpoint(), 5000, "west");
  ASSERT_TRUE(west->Call(Put("k")).status.ok());
  EXPECT_EQ(c.requests().size(), 1u);
  EXPECT_TRUE(b.requests().empty());
  auto nowhere = RoutingClient(a.endpoint(), 5000, "mars");
  ASSERT_TRUE(nowhere->Call(Put("k")).status.ok());
  EXPECT_EQ(KeyedRequests(a.requests()), 1u);
  EXPECT_EQ(nowhere->counters().routed, 0u);
  EXPECT_EQ(nowhere->counters().map_fetches, 1u);
}

TEST_F(ClientTest, WithoutRoutingNoMapIsFetched) {
  MapSource maps;
  ScriptedNode a(ctx_, maps.Serve(Ok)), b(ctx_, Ok), c(ctx_, Ok);
  maps.Set(TwoRegionMap({a.endpoint(), b.endpoint(), c.endpoint()}, /*east_holder=*/1));
  ClientOptions options;
  options.endpoints = {a.endpoint()};
  options.route_by_map = false;
  auto client = Client::Connect(options);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->Call(Put("k")).status.ok());
  EXPECT_EQ(a.requests().size(), 1u);
  EXPECT_EQ(a.requests()[0].op, Op::kPut);
  EXPECT_TRUE(b.requests().empty());
  EXPECT_EQ((*client)->counters().map_fetches, 0u);
}

// A node that refuses the map, or sends one that does not decode: requests go to the
// endpoint as without routing, and the caller never sees the failure.
TEST_F(ClientTest, AMapThatCannotBeHadIsNeverTheCallersError) {
  ScriptedNode garbage(ctx_, [](const Request& r) -> std::optional<Response> {
    Response resp;
    if (r.op == Op::kClusterMap) resp.value = "not a map";
    return resp;
  });
  ScriptedNode refusing(ctx_, [](const Request& r) -> std::optional<Response> {
    Response resp;
    if (r.op == Op::kClusterMap) resp.status = Status(Code::kUnavailable, "not now");
    return resp;
  });
  for (ScriptedNode* node : {&garbage, &refusing}) {
    auto client = RoutingClient(node->endpoint(), 5000);
    for (int i = 0; i < 3; ++i) {
      const Response r = client->Call(Put("k" + std::to_string(i)));
      EXPECT_TRUE(r.status.ok()) << r.status.ToString();
    }
    EXPECT_EQ(KeyedRequests(node->requests()), 3u);
    EXPECT_GE(MapRequests(node->requests()), 1u);
    EXPECT_EQ(client->counters().routed, 0u);
    EXPECT_EQ(client->counters().map_fetches, 0u);
  }
}

// Node 1 serves by proxy (the shard moved to node 0 in map version v+1) and says so: the
// request succeeds, and the next keyed request fetches the map again first and goes to
// node 0.
TEST_F(ClientTest, ARedirectNamingANewerMapIsFollowedByOneRefresh) {
  MapSource maps;
  std::atomic<uint64_t> newer{0};
  ScriptedNode a(ctx_, maps.Serve(Ok));
  ScriptedNode b(ctx_, [&](const Request&) -> std::optional<Response> {
    Response r;
    r.map_version = newer.load();
    r.redirect_node = 0;
    return r;
  });
  ScriptedNode c(ctx_, Ok);
  const std::vector<std::string> addresses = {a.endpoint(), b.endpoint(), c.endpoint()};
  const placement::ClusterMap before = TwoRegionMap(addresses, /*east_holder=*/1);
  const placement::ClusterMap after = TwoRegionMap(addresses, /*east_holder=*/0, /*bumps=*/1);
  ASSERT_GT(after.version(), before.version());
  newer = after.version();
  maps.Set(before);
  auto client = RoutingClient(a.endpoint(), 5000);
  Response r = client->Call(Put("k1"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.redirect_node, 0u);
  EXPECT_EQ(b.requests().size(), 1u);
  EXPECT_EQ(client->counters().redirects, 1u);
  EXPECT_EQ(client->counters().map_refreshes, 0u);
  maps.Set(after);
  ASSERT_TRUE(client->Call(Put("k2")).status.ok());
  ASSERT_TRUE(client->Call(Put("k3")).status.ok());
  EXPECT_EQ(b.requests().size(), 1u);
  EXPECT_EQ(KeyedRequests(a.requests()), 2u);
  EXPECT_EQ(MapRequests(a.requests()), 2u);
  const ClientCounters n = client->counters();
  EXPECT_EQ(n.map_refreshes, 1u);
  EXPECT_EQ(n.map_version, after.version());
  EXPECT_EQ(n.routed, 3u);  // node 0 is the configured endpoint, and the map's holder now
  EXPECT_EQ(n.redirects, 1u);
}

// The node that answered the map lags behind the version a redirect named: the map is
// fetched again once for that version, not on every request.
TEST_F(ClientTest, ANewerVersionIsFetchedForOnceEvenWhenItDoesNotCome) {
  MapSource maps;
  ScriptedNode a(ctx_, maps.Serve(Ok));
  ScriptedNode b(ctx_, [](const Request&) -> std::optional<Response> {
    Response r;
    r.map_version = 1'000'000;  // a version no node here ever serves
    r.redirect_node = 0;
    return r;
  });
  ScriptedNode c(ctx_, Ok);
  maps.Set(TwoRegionMap({a.endpoint(), b.endpoint(), c.endpoint()}, /*east_holder=*/1));
  auto client = RoutingClient(a.endpoint(), 5000);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(client->Call(Put("k" + std::to_string(i))).status.ok());
  EXPECT_EQ(b.requests().size(), 4u);  // still the holder by the only map there is
  EXPECT_EQ(MapRequests(a.requests()), 2u);
  EXPECT_EQ(client->counters().redirects, 4u);
  EXPECT_EQ(client->counters().map_refreshes, 1u);
}

// A silent routed-to node: a write that may be re-sent goes to the endpoint under the same
// session; one that may not (add) fails with kTimeout and is not re-sent. The map is
// fetched again, and the node is passed over for a while.
TEST_F(ClientTest, ASilentRoutedNodeCostsOneTimeoutAndTheEndpointTakesOver) {
  MapSource maps;
  ScriptedNode a(ctx_, maps.Serve(Ok)), b(ctx_, Silent), c(ctx_, Ok);
  maps.Set(TwoRegionMap({a.endpoint(), b.endpoint(), c.endpoint()}, /*east_holder=*/1));
  auto client = RoutingClient(a.endpoint(), 300);
  Request add;
  add.op = Op::kAdd;
  add.key = "n";
  add.delta = 1;
  Response r = client->Call(add);
  EXPECT_EQ(r.status.code(), Code::kTimeout) << r.status.ToString();
  EXPECT_EQ(KeyedRequests(a.requests()), 0u);  // never re-sent
  ASSERT_EQ(b.requests().size(), 1u);
  const auto second = std::chrono::steady_clock::now();
  r = client->Call(Put("k"));
  const bool within_avoid = std::chrono::steady_clock::now() - second < std::chrono::milliseconds(Client::kAvoidMs);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(MapRequests(a.requests()), 2u);  // fetched again after the silence
  EXPECT_EQ(client->counters().map_refreshes, 1u);
  ASSERT_EQ(KeyedRequests(a.requests()), 1u);
  // Passed over while within kAvoidMs (the only case this test can tell).
  if (within_avoid) {
    EXPECT_EQ(b.requests().size(), 1u);
  }
  // Re-sent or not, one session and one sequence number for one write.
  const std::vector<Request> at_a = a.requests(), at_b = b.requests();
  const Request& put = at_a.back();
  EXPECT_EQ(put.op, Op::kPut);
  EXPECT_EQ(put.client_id, client->client_id());
  EXPECT_EQ(put.seq, at_b[0].seq + 1);
}

}  // namespace
}  // namespace geokv
