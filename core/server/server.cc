#include "core/server/server.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <utility>

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "core/engine/engine.h"
#include "core/server/log.h"
#include "core/storage/wiredtiger_storage.h"
#include "replication/transport/curve_keys.h"
#include "replication/transport/zap_authorizer.h"
#include "replication/transport/zmq_transport.h"
#include "replication/wire/aligned.h"
#include "replication/wire/node_generated.h"

namespace geokv {

namespace {

using Clock = std::chrono::steady_clock;

int64_t MonotonicUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count();
}

// Times every write to the storage (the WiredTiger commit latency metric).
class TimedStorage final : public storage::Storage {
 public:
  explicit TimedStorage(std::unique_ptr<storage::WiredTigerStorage> inner) : inner_(std::move(inner)) {}
  Status Write(const storage::WriteBatch& batch, storage::Durability durability) override {
    const int64_t start = MonotonicUs();
    Status s = inner_->Write(batch, durability);
    commit_us_sum_ += MonotonicUs() - start;
    commits_++;
    return s;
  }
  StatusOr<std::string> Get(std::string_view table, std::string_view key) override { return inner_->Get(table, key); }
  StatusOr<std::vector<storage::Entry>> Scan(std::string_view table, std::string_view prefix, std::string_view after,
                                             size_t limit) override {
    return inner_->Scan(table, prefix, after, limit);
  }
  Status Close() override { return inner_->Close(); }
  int64_t commit_us_sum() const { return commit_us_sum_; }
  uint64_t commits() const { return commits_; }

 private:
  std::unique_ptr<storage::WiredTigerStorage> inner_;
  int64_t commit_us_sum_ = 0;  // event-loop thread only
  uint64_t commits_ = 0;
};

// The nodes of the config this node does not connect to: the removed ones, and a node whose
// peer address a node of a higher id has (or this node itself): node ids are never reused,
// so that one replaced it there (geokv node replace on the same host and ports), and two
// links to one address would fight over it.
std::set<uint32_t> UnreachedNodes(const ClusterConfig& cc) {
  std::set<uint32_t> out;
  for (const auto& n : cc.nodes) {
    if (n.id == cc.self) continue;
    bool shadowed = n.removed || n.peer_endpoint == cc.me().peer_endpoint;
    for (const auto& later : cc.nodes) shadowed = shadowed || (later.id > n.id && later.peer_endpoint == n.peer_endpoint);
    if (shadowed) out.insert(n.id);
  }
  return out;
}

// The environment of a real node. Thread-safety: the engine calls it on the event-loop
// thread; ReloadPeerKeys may run on another (SIGHUP) and shares only the peer-key state,
// guarded by peers_mu_.
class ProdEnv final : public Env {
 public:
  ProdEnv(transport::Transport& transport, storage::Storage& store, const ClusterConfig& cc, int64_t wall_offset_us)
      : transport_(transport), store_(store), self_(cc.self), self_address_(cc.me().peer_endpoint), curve_(cc.curve),
        wall_offset_us_(wall_offset_us), rng_(std::random_device{}()), unreached_(UnreachedNodes(cc)) {
    for (const auto& n : cc.nodes) keys_[n.id] = n.curve_public_key;
  }
  int64_t NowUs() override { return MonotonicUs(); }
  int64_t WallUs() override {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
               .count() +
           wall_offset_us_;
  }
  void Send(uint32_t to, std::string bytes) override {
    // kBusy: the peer's queue is full. The protocols resend what matters; count it.
    if (!transport_.Send(to, bytes).ok()) send_failures_++;
  }
  // Every node of the config but UnreachedNodes is connected at start; this connects a node
  // added to the running cluster, with its CURVE key from the config. Without a key (CURVE
  // on, the config does not list the node yet) it waits for ReloadPeerKeys. A node at the
  // address of a node of a lower id replaces that one there (UnreachedNodes).
  void ConnectPeer(uint32_t node, const std::string& region, const std::string& peer_address) override {
    const transport::PeerTable peers = transport_.Peers();
    if (node == self_ || peers.count(node) != 0) return;
    std::lock_guard lock(peers_mu_);
    if (unreached_.count(node) != 0) return;
    for (const auto& [id, p] : peers) {
      if (p.endpoint == peer_address && id > node) unreached_.insert(node);
    }
    if (peer_address == self_address_) unreached_.insert(node);
    if (unreached_.count(node) != 0) {
      spdlog::warn("node {} is not reached: its address {} is a node's of a higher id (it replaced node {} there)",
                   node, peer_address, node);
      return;
    }
    for (const auto& [id, p] : peers) {
      if (p.endpoint != peer_address) continue;
      unreached_.insert(id);
      waiting_.erase(id);
      (void)transport_.RemovePeer(id);
      spdlog::warn("node {} is at {}, node {}'s address: node {} is not reached anymore (replaced there)", node,
                   peer_address, id, id);
    }
    transport::Peer peer{peer_address, region, ""};
    if (curve_) {
      auto key = keys_.find(node);
      if (key == keys_.end() || key->second.empty()) {
        if (waiting_.emplace(node, peer).second) {
          spdlog::error("node {} (peer address {}) is in the cluster map but not in this node's config, and CURVE is "
                        "on: not connected; add its key to the config and reload keys (geokv reload-keys or SIGHUP)",
                        node, peer_address);
        }
        return;
      }
      peer.curve_public_key_z85 = key->second;
    }
    Connect(node, peer);
  }
  // After a key reload (`cc` is the new config): its peer keys replace the known ones; a
  // node whose key changed reconnects with it (at the config's endpoint), and a node
  // ConnectPeer skipped for lack of a key connects now that it has one. Any thread.
  Status ReloadPeerKeys(const ClusterConfig& cc) {
    std::lock_guard lock(peers_mu_);
    for (const auto& n : cc.nodes) {
      if (n.id == self_ || unreached_.count(n.id) != 0) continue;
      std::string& known = keys_[n.id];
      const bool changed = !known.empty() && known != n.curve_public_key;
      known = n.curve_public_key;
      if (auto waiting = waiting_.find(n.id); waiting != waiting_.end()) {
        transport::Peer peer = waiting->second;
        peer.curve_public_key_z85 = n.curve_public_key;
        GEOKV_RETURN_IF_ERROR(transport_.AddPeer(n.id, peer));
        waiting_.erase(waiting);
        spdlog::info("reloading keys: node {} ({}) connected with key {}", n.id, peer.endpoint, n.curve_public_key);
      } else if (changed) {
        // A new key for a peer: its link reconnects with it, and only it is that peer's.
        GEOKV_RETURN_IF_ERROR(transport_.AddPeer(n.id, transport::Peer{n.peer_endpoint, n.region, n.curve_public_key}));
        spdlog::info("reloading keys: node {} now has key {}", n.id, n.curve_public_key);
      }
    }
    return Status::Ok();
  }
  storage::Storage& Store() override { return store_; }
  uint64_t Random() override { return rng_(); }
  uint64_t send_failures() const { return send_failures_; }

 private:
  void Connect(uint32_t node, const transport::Peer& peer) {
    if (Status s = transport_.AddPeer(node, peer); !s.ok()) {
      send_failures_++;
      spdlog::error("cannot connect to node {} at {}: {}", node, peer.endpoint, s.ToString());
    } else {
      spdlog::info("connected to node {} ({}) at {}", node, peer.region, peer.endpoint);
    }
  }

  transport::Transport& transport_;
  storage::Storage& store_;
  const uint32_t self_;
  const std::string self_address_;  // this node's peer endpoint
  const bool curve_;
  const int64_t wall_offset_us_;  // TEST ONLY: [wan] clock_offset_ms
  std::mt19937_64 rng_;
  uint64_t send_failures_ = 0;  // event-loop thread only

  std::mutex peers_mu_;
  std::map<uint32_t, std::string> keys_;           // node -> Z85 public key from the config; peers_mu_
  std::set<uint32_t> unreached_;                   // UnreachedNodes, and nodes replaced since; peers_mu_
  std::map<uint32_t, transport::Peer> waiting_;    // skipped by ConnectPeer for lack of a key; peers_mu_
};

bool VerifyEnvelope(std::string_view bytes) {
  const wire::AlignedBytes aligned(bytes);
  flatbuffers::Verifier v(aligned.data(), aligned.size());
  return v.VerifyBuffer<wire::node::Envelope>(nullptr);
}

std::string ModeLabel(Op op, const Policy& policy, std::string_view key) {
  switch (op) {
    case Op::kPolicySet: case Op::kPolicyRemove: case Op::kPolicyList: return "policy";
    case Op::kStatus: case Op::kPartition: case Op::kHeal: case Op::kReloadKeys: case Op::kNodeState:
    case Op::kPlacement: case Op::kClusterMap: case Op::kNodeAdd: case Op::kPolicyCheck:
    case Op::kShardSnapshot: case Op::kCrdtDump:
      return "admin";
    default: return std::string(ModeName(policy.Lookup(key)));
  }
}

// Operations that need an admin identity (docs/security.md): what changes how the
// cluster treats keys or reaches its regions, and what reads every key at once (backups).
// Later admin operations belong here too.
bool IsAdminOp(Op op) {
  switch (op) {
    case Op::kPolicySet: case Op::kPolicyRemove: case Op::kPartition: case Op::kHeal: case Op::kReloadKeys:
    case Op::kNodeState: case Op::kNodeAdd: case Op::kShardSnapshot: case Op::kCrdtDump:
      return true;
    default:
      return false;
  }
}

// The client-endpoint allowlists. Clients: allowed ∪ admins; admins: admins.
struct ClientKeys {
  std::set<std::string> allowed;
  std::set<std::string> admins;
};

StatusOr<ClientKeys> ReadClientKeys(const ClusterConfig& cc) {
  ClientKeys k;
  auto allowed = transport::ReadCurveKeyListFile(cc.curve_allowed_keys_file);
  if (!allowed.ok()) return allowed.status();
  k.allowed.insert(allowed->begin(), allowed->end());
  if (!cc.curve_admin_keys_file.empty()) {
    auto admins = transport::ReadCurveKeyListFile(cc.curve_admin_keys_file);
    if (!admins.ok()) return admins.status();
    k.admins.insert(admins->begin(), admins->end());
    k.allowed.insert(admins->begin(), admins->end());
  }
  if (k.allowed.empty()) return Status(Code::kConfig, "curve.allowed_keys_file: the allowlist is empty");
  return k;
}

// Why each client request was dropped before the event loop saw it (metric labels).
enum DropReason : size_t { kDropConnectionRequests, kDropConnectionBytes, kDropTotalRequests, kDropTotalBytes,
                           kDropRevoked, kDropMalformed, kDropReasons };
constexpr const char* kDropReasonNames[kDropReasons] = {"connection_requests", "connection_bytes", "total_requests",
                                                        "total_bytes", "revoked_key", "malformed"};

}  // namespace

struct Server::Impl {
  Config config;
  std::unique_ptr<TimedStorage> store;
  std::unique_ptr<transport::ZmqTransport> transport;
  std::unique_ptr<ProdEnv> env;
  std::unique_ptr<Engine> engine;

  zmq::context_t context{1};
  zmq::socket_t clients;
  zmq::socket_t zap;  // CURVE for clients: our own ZAP handler in this context
  std::string bound_client;
  bool client_ipc = false;  // the client endpoint is ipc:// (local: no peer address)

  // CURVE keys of clients and admins; replaced by ReloadKeys, read by the client I/O thread.
  std::mutex keys_mu;
  std::shared_ptr<const ClientKeys> client_keys;                // guarded by keys_mu
  std::shared_ptr<const transport::ZapAuthorizer> authorizer;   // guarded by keys_mu; null: CURVE off
  std::atomic<uint64_t> reloads{0}, reload_failures{0};
  std::mutex reload_mu;  // serialises ReloadKeys callers

  // The client I/O thread owns `clients`, `zap` and `wake_io`; it only moves bytes between
  // the socket and these queues (STYLE 25). It wakes the event loop with an empty message
  // to self through the transport (whose Poll the loop blocks in), and the loop wakes it
  // through the inproc pair `wake_loop` -> `wake_io`.
  //
  // Both queues are bounded in count and bytes, in total and (requests) per connection, so
  // unauthenticated senders cannot make the node hold more than [queues] says.
  static constexpr size_t kClientQueueMax = 100'000;
  struct QueuedRequest {
    std::string identity;
    std::string bytes;
    bool admin = false;  // the connection has an admin identity (docs/security.md)
  };
  struct Usage {
    size_t requests = 0;
    size_t bytes = 0;
  };
  std::thread client_io;
  zmq::socket_t wake_io;    // client I/O thread end
  zmq::socket_t wake_loop;  // event-loop end
  std::mutex client_mu;
  std::deque<QueuedRequest> client_in;                         // guarded by client_mu
  std::deque<std::pair<std::string, std::string>> client_out;  // (identity, response); guarded by client_mu
  std::map<std::string, Usage> client_usage;                   // per connection, of client_in; client_mu
  size_t client_in_bytes = 0;                                  // guarded by client_mu
  size_t client_out_bytes = 0;                                 // guarded by client_mu
  std::atomic<uint64_t> client_in_bytes_peak{0};
  std::atomic<uint64_t> client_dropped[kDropReasons] = {};
  std::atomic<uint64_t> replies_dropped{0};
  std::atomic<uint64_t> bad_requests{0};
  std::atomic<uint64_t> clients_refused{0};  // CURVE handshakes of clients whose key is not allowed
  bool reply_pending = false;  // event loop only: client_out gained replies this round

  std::thread loop;
  std::atomic<bool> stop{false};
  std::once_flag stopped;

  mutable std::mutex metrics_mu;
  std::string metrics;  // guarded by metrics_mu
  std::string not_ready_reason = "starting";  // guarded by metrics_mu; empty: ready
  std::atomic<int64_t> loop_alive_us{0};      // when the event loop last finished a round
  std::atomic<bool> failed{false};            // the engine stopped (fail-stop)
  std::unique_ptr<httplib::Server> http;
  std::thread http_thread;

  // Event-loop thread only.
  struct OpStats { uint64_t count = 0, errors = 0; double seconds = 0; };
  std::map<std::string, OpStats> per_mode;
  std::map<std::pair<std::string, std::string>, uint64_t> admin_refused;  // (op, reason)
  std::function<void(const Status&)> on_fatal;  // from Start; called once, on the loop thread
  bool fatal_reported = false;

  void Run();
  void RunClientIo();
  void ReceiveClients();
  void AnswerZap();
  // Moves the queued client requests into the round's inputs (admin operations are
  // answered here).
  void TakeClientRequests(Engine::RoundInputs* in);
  void Reply(const std::string& identity, const Response& r);
  void RefreshMetrics();
  // Admin operations: the identity check, then partition/heal/reload here; false when the
  // request is not one of these and goes on to the engine.
  bool HandleAdmin(const QueuedRequest& q, const Request& request);
  // Whether the sender of `msg` (a request part) has an admin identity; false (and counted)
  // via *revoked when its CURVE key is no longer allowed.
  bool AdminIdentity(const zmq::message_t& msg, bool* revoked);
  void AddSecurityStatus(Response* r) const;
  Status StartHttp();
  std::string Readiness() const;  // "" when ready, else why not; event loop only
  Status ReloadKeys(const Config& new_config);
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Stop(); }

StatusOr<std::unique_ptr<Server>> Server::Start(const Config& config, std::function<void(const Status&)> on_fatal) {
  if (!config.cluster) return Status(Code::kConfig, "cluster: missing (a server needs [node] and [cluster])");
  GEOKV_RETURN_IF_ERROR(config.Validate());
  // Before anything binds: a refused configuration leaves nothing listening.
  GEOKV_RETURN_IF_ERROR(config.cluster->CheckSecurity());
  GEOKV_RETURN_IF_ERROR(SetLogLevel(config.log_level));
  const ClusterConfig& cc = *config.cluster;
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->on_fatal = std::move(on_fatal);

  storage::WiredTigerStorage::Options so;
  so.dir = config.data_dir;
  so.cache_mb = config.cache_mb;
  so.group_commit_batches_max = config.group_commit_batches_max;
  so.commit_timeout_ms = config.commit_timeout_ms;
  // Journal files of 16 MiB (WiredTiger preallocates the next ones): an empty node takes
  // tens of MB of disk, not hundreds, and group commit fills a file in seconds at most.
  so.log_file_bytes_max = 16u << 20;
  auto wt = storage::WiredTigerStorage::Open(so);
  if (!wt.ok()) return wt.status();
  impl->store = std::make_unique<TimedStorage>(std::move(wt).value());

  transport::ZmqTransportOptions to;
  to.self = cc.self;
  to.region = cc.me().region;
  to.bind_endpoint = cc.me().peer_endpoint;
  const std::set<uint32_t> unreached = UnreachedNodes(cc);
  for (const auto& n : cc.nodes) {
    if (n.id == cc.self || unreached.count(n.id) != 0) continue;
    to.peers[n.id] = transport::Peer{n.peer_endpoint, n.region, n.curve_public_key};
  }
  to.verifier = VerifyEnvelope;
  to.message_bytes_max = kMessageBytesMax;
  to.inbound_queue_bytes_max = cc.peer_inbound_bytes_max;
  to.inbound_per_peer_bytes_max = std::min(cc.peer_inbound_per_peer_bytes_max, cc.peer_inbound_bytes_max);
  to.wan.enabled = cc.wan_enabled;
  to.wan.seed = cc.wan_seed;
  for (const auto& [region, link] : cc.wan_links) {
    to.wan.links[region] = transport::LinkProfile{link.delay_ms, link.jitter_ms, link.loss};
  }
  if (cc.curve) {
    to.curve.enabled = true;
    to.curve.secret_key_file = cc.curve_secret_key_file;
    to.curve.public_key_file = cc.curve_public_key_file;
    to.curve.allowed_public_keys_file = cc.curve_allowed_keys_file;
  }
  auto transport = transport::ZmqTransport::Start(std::move(to));
  if (!transport.ok()) return transport.status();
  impl->transport = std::move(transport).value();
  impl->env = std::make_unique<ProdEnv>(*impl->transport, *impl->store, cc, cc.wan_clock_offset_ms * 1000);

  EngineOptions eo;
  eo.self = cc.self;
  eo.new_cluster = config.new_cluster;
  eo.regions = static_cast<uint32_t>(cc.Regions().size());
  for (const auto& n : cc.nodes) {
    eo.members.push_back({cc.RegionIndex(n.region), n.region, n.peer_endpoint, n.client_endpoint, n.added, n.removed});
  }
  eo.shards = cc.shards;
  for (const auto& region : cc.preferred_leader) {
    std::optional<uint32_t> id;
    if (!region.empty()) id = cc.RegionIndex(region);
    eo.preferred_leader.push_back(id);
  }
  eo.policy = cc.policy;
  eo.limits = config.limits;
  eo.durability = config.durability;
  eo.request_timeout_ms = cc.request_timeout_ms;
  auto engine = Engine::Open(eo, *impl->env);
  if (!engine.ok()) return engine.status();
  impl->engine = std::move(engine).value();

  try {
    impl->clients = zmq::socket_t(impl->context, zmq::socket_type::router);
    impl->clients.set(zmq::sockopt::linger, 0);
    impl->clients.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMessageBytesMax));
    impl->clients.set(zmq::sockopt::sndhwm, 10000);
    impl->clients.set(zmq::sockopt::rcvhwm, 10000);
    if (cc.curve) {
      auto secret = transport::ReadCurveKeyFile(cc.curve_secret_key_file);
      if (!secret.ok()) return secret.status();
      auto keys = ReadClientKeys(cc);
      if (!keys.ok()) return keys.status();
      impl->authorizer = std::make_shared<const transport::ZapAuthorizer>(keys->allowed);
      impl->client_keys = std::make_shared<const ClientKeys>(std::move(keys).value());
      impl->zap = zmq::socket_t(impl->context, zmq::socket_type::rep);
      impl->zap.set(zmq::sockopt::linger, 0);
      impl->zap.bind("inproc://zeromq.zap.01");
      impl->clients.set(zmq::sockopt::curve_server, 1);
      impl->clients.set(zmq::sockopt::curve_secretkey, *secret);
      impl->clients.set(zmq::sockopt::zap_domain, "geokv-clients");
    }
    impl->client_ipc = cc.me().client_endpoint.rfind("ipc://", 0) == 0;
    impl->clients.bind(cc.me().client_endpoint);
    impl->bound_client = impl->clients.get(zmq::sockopt::last_endpoint);
    const std::string wake = "inproc://geokv-client-wake";
    impl->wake_io = zmq::socket_t(impl->context, zmq::socket_type::pair);
    impl->wake_io.bind(wake);
    impl->wake_loop = zmq::socket_t(impl->context, zmq::socket_type::pair);
    impl->wake_loop.set(zmq::sockopt::linger, 0);
    impl->wake_loop.connect(wake);
  } catch (const zmq::error_t& e) {
    return IOError("cannot bind the client endpoint " + cc.me().client_endpoint + ": " + e.what());
  }

  GEOKV_RETURN_IF_ERROR(impl->StartHttp());
  if (cc.insecure && !cc.curve) {
    spdlog::warn("INSECURE: [cluster] insecure = true and CURVE is off: anyone who reaches the peer endpoint {} "
                 "can act as a peer (docs/security.md)", cc.me().peer_endpoint);
  }
  spdlog::info("geokvd node {} ({}) serving clients on {}, peers on {}", cc.self, cc.me().region,
               impl->bound_client, impl->transport->bound_endpoint());
  Impl* raw = impl.get();
  impl->loop_alive_us.store(MonotonicUs());
  impl->loop = std::thread([raw] { raw->Run(); });
  impl->client_io = std::thread([raw] { raw->RunClientIo(); });
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::Stop() {
  if (!impl_) return;
  std::call_once(impl_->stopped, [this] {
    impl_->stop = true;
    if (impl_->loop.joinable()) impl_->loop.join();
    if (impl_->client_io.joinable()) impl_->client_io.join();
    if (impl_->http) impl_->http->stop();
    if (impl_->http_thread.joinable()) impl_->http_thread.join();
    impl_->transport->Stop(500);
    impl_->engine.reset();
    Status s = impl_->store->Close();
    if (!s.ok()) spdlog::error("closing storage: {}", s.ToString());
  });
}

std::string Server::client_endpoint() const { return impl_->bound_client; }

Status Server::ReloadKeys(const Config& config) { return impl_->ReloadKeys(config); }

Status Server::Impl::ReloadKeys(const Config& new_config) {
  const Config& config = new_config;
  Impl& im = *this;
  std::lock_guard reload_lock(im.reload_mu);
  const ClusterConfig& old = *im.config.cluster;
  auto fail = [&im](Status s) {
    im.reload_failures++;
    spdlog::error("reloading keys: {} (the previous keys stay)", s.ToString());
    return s;
  };
  if (!config.cluster) return fail(Status(Code::kConfig, "cluster: missing"));
  const ClusterConfig& cc = *config.cluster;
  // Nodes may be appended (added to the running cluster), never dropped or renumbered.
  if (cc.self != old.self || cc.nodes.size() < old.nodes.size() || cc.curve != old.curve) {
    return fail(Status(Code::kConfig, "node.id, cluster.nodes (other than appended ones) or [curve] on/off changed: "
                                      "that needs a restart"));
  }
  if (!cc.curve) return fail(Status(Code::kInvalidArgument, "CURVE is off: there are no keys to reload"));
  if (cc.curve_allowed_keys_file != old.curve_allowed_keys_file) {
    return fail(Status(Code::kConfig, "curve.allowed_keys_file: the transport re-reads the file it started with; "
                                      "edit that file (or restart)"));
  }
  auto keys = ReadClientKeys(cc);
  if (!keys.ok()) return fail(keys.status());
  if (Status s = im.transport->ReloadCurveAllowlist(); !s.ok()) return fail(s);
  if (Status s = im.env->ReloadPeerKeys(cc); !s.ok()) return fail(s);
  {
    std::lock_guard lock(im.keys_mu);
    im.authorizer = std::make_shared<const transport::ZapAuthorizer>(keys->allowed);
    spdlog::info("reloading keys: {} client keys, {} of them admins", keys->allowed.size(), keys->admins.size());
    im.client_keys = std::make_shared<const ClientKeys>(std::move(keys).value());
  }
  im.config.cluster->curve_admin_keys_file = cc.curve_admin_keys_file;
  im.reloads++;
  return Status::Ok();
}

std::string Server::MetricsText() const {
  std::lock_guard lock(impl_->metrics_mu);
  return impl_->metrics;
}

void Server::Impl::Reply(const std::string& identity, const Response& r) {
  std::string bytes = EncodeResponse(r);
  std::lock_guard lock(client_mu);
  if (client_out.size() >= kClientQueueMax || client_out_bytes + bytes.size() > config.cluster->client_bytes_max) {
    replies_dropped++;  // the client I/O thread is stuck; the client times out
    return;
  }
  client_out_bytes += bytes.size();
  client_out.emplace_back(identity, std::move(bytes));
  reply_pending = true;
}

// Client I/O thread: requests from the socket into client_in (waking the event loop), and
// replies from client_out onto the socket.
void Server::Impl::RunClientIo() {
  std::vector<zmq::pollitem_t> items;
  items.push_back({clients.handle(), 0, ZMQ_POLLIN, 0});
  items.push_back({wake_io.handle(), 0, ZMQ_POLLIN, 0});
  if (config.cluster->curve) items.push_back({zap.handle(), 0, ZMQ_POLLIN, 0});
  while (!stop.load()) {
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100));
      if (items[0].revents & ZMQ_POLLIN) ReceiveClients();
      if (items[1].revents & ZMQ_POLLIN) {
        zmq::message_t token;
        while (wake_io.recv(token, zmq::recv_flags::dontwait)) {}
        std::deque<std::pair<std::string, std::string>> out;
        {
          std::lock_guard lock(client_mu);
          out.swap(client_out);
          client_out_bytes = 0;
        }
        for (const auto& [identity, bytes] : out) {
          clients.send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
          clients.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
        }
      }
      if (items.size() > 2 && (items[2].revents & ZMQ_POLLIN)) AnswerZap();
    } catch (const zmq::error_t& e) {
      spdlog::warn("client socket: {}", e.what());
    }
  }
}

bool Server::Impl::AdminIdentity(const zmq::message_t& msg, bool* revoked) {
  *revoked = false;
  if (config.cluster->curve) {
    // The ZAP handler set User-Id to the client's key for every message of its connection.
    const char* user_id = zmq_msg_gets(msg.handle(), "User-Id");
    std::shared_ptr<const ClientKeys> keys;
    {
      std::lock_guard lock(keys_mu);
      keys = client_keys;
    }
    if (user_id == nullptr || keys->allowed.count(user_id) == 0) {
      *revoked = true;  // admitted under a key that a reload has since removed
      return false;
    }
    return keys->admins.count(user_id) > 0;
  }
  // Without CURVE nobody proves who they are: only the machine's own users are admins.
  if (client_ipc) return true;
  const char* address = zmq_msg_gets(msg.handle(), "Peer-Address");
  return address != nullptr && IsLoopbackHost(address);
}

void Server::Impl::ReceiveClients() {
  const ClusterConfig& cc = *config.cluster;
  bool queued = false;
  for (int i = 0; i < 256; ++i) {  // a bounded batch per wakeup
    std::vector<zmq::message_t> parts;
    zmq::message_t part;
    if (!clients.recv(part, zmq::recv_flags::dontwait)) break;
    parts.push_back(std::move(part));
    while (parts.back().more() && parts.size() < 4) {
      zmq::message_t next;
      if (!clients.recv(next, zmq::recv_flags::dontwait)) break;
      parts.push_back(std::move(next));
    }
    if (parts.size() != 2) {
      bad_requests++;
      client_dropped[kDropMalformed]++;
      continue;
    }
    bool revoked = false;
    const bool admin = AdminIdentity(parts[1], &revoked);
    if (revoked) {
      client_dropped[kDropRevoked]++;
      continue;
    }
    std::string identity = parts[0].to_string();
    const size_t bytes = parts[1].size() + identity.size();
    std::optional<DropReason> drop;
    std::lock_guard lock(client_mu);
    Usage& usage = client_usage[identity];
    if (usage.requests >= cc.client_connection_requests_max) {
      drop = kDropConnectionRequests;
    } else if (usage.bytes + bytes > cc.client_connection_bytes_max) {
      drop = kDropConnectionBytes;
    } else if (client_in.size() >= kClientQueueMax) {
      drop = kDropTotalRequests;
    } else if (client_in_bytes + bytes > cc.client_bytes_max) {
      drop = kDropTotalBytes;
    }
    if (drop) {
      // Flooding (this connection) or overloaded (all): dropped before it costs memory; the
      // sender's requests time out. Counted per reason.
      client_dropped[*drop]++;
      bad_requests++;
      if (usage.requests == 0) client_usage.erase(identity);
      continue;
    }
    usage.requests++;
    usage.bytes += bytes;
    client_in_bytes += bytes;
    if (client_in_bytes > client_in_bytes_peak.load(std::memory_order_relaxed)) {
      client_in_bytes_peak.store(client_in_bytes, std::memory_order_relaxed);
    }
    client_in.push_back(QueuedRequest{std::move(identity), parts[1].to_string(), admin});
    queued = true;
  }
  // An empty message to self wakes the event loop out of its transport Poll.
  if (queued) (void)transport->Send(transport->self(), std::string_view());
}

void Server::Impl::AnswerZap() {
  std::vector<std::string> request;
  zmq::message_t frame;
  while (zap.recv(frame, zmq::recv_flags::dontwait)) {
    request.push_back(frame.to_string());
    if (!frame.more()) break;
  }
  std::shared_ptr<const transport::ZapAuthorizer> auth;
  {
    std::lock_guard lock(keys_mu);
    auth = authorizer;
  }
  auto reply = auth->Handle(request);
  if (!transport::ZapAuthorizer::Accepted(reply)) clients_refused++;
  for (size_t i = 0; i < reply.size(); ++i) {
    zap.send(zmq::buffer(reply[i]), i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

// Event loop: decodes the queued client requests into the round's inputs.
void Server::Impl::TakeClientRequests(Engine::RoundInputs* in) {
  std::deque<QueuedRequest> queued;
  {
    std::lock_guard lock(client_mu);
    const size_t n = std::min(client_in.size(), Engine::kRoundInputsMax);
    for (size_t i = 0; i < n; ++i) {
      QueuedRequest& q = client_in.front();
      const size_t bytes = q.bytes.size() + q.identity.size();
      client_in_bytes -= bytes;
      if (auto it = client_usage.find(q.identity); it != client_usage.end()) {
        it->second.bytes -= bytes;
        if (--it->second.requests == 0) client_usage.erase(it);
      }
      queued.push_back(std::move(q));
      client_in.pop_front();
    }
  }
  for (auto& q : queued) {
    const std::string& identity = q.identity;
    auto request = DecodeRequest(q.bytes);
    if (!request.ok()) {
      bad_requests++;
      Response r;
      r.status = request.status();
      Reply(identity, r);
      continue;
    }
    if (!engine->failure().ok()) {  // stopped (fail-stop): say why instead of going silent
      Response r;
      r.id = request->id;
      r.status = engine->failure();
      Reply(identity, r);
      continue;
    }
    if (HandleAdmin(q, *request)) continue;
    const std::string mode = ModeLabel(request->op, engine->policy(), request->key);
    const int64_t start = MonotonicUs();
    const bool status_op = request->op == Op::kStatus;
    in->calls.push_back(Engine::Call{std::move(request).value(), [this, identity = identity, mode, start, status_op](Response r) {
      OpStats& s = per_mode[mode];
      s.count++;
      if (!r.status.ok() && !r.status.IsNotFound()) s.errors++;
      s.seconds += static_cast<double>(MonotonicUs() - start) / 1e6;
      if (status_op && r.status.ok()) AddSecurityStatus(&r);
      Reply(identity, r);
    }});
  }
}

bool Server::Impl::HandleAdmin(const QueuedRequest& q, const Request& request) {
  if (!IsAdminOp(request.op)) return false;
  const ClusterConfig& cc = *config.cluster;
  const std::string op(OpName(request.op));
  Response r;
  r.id = request.id;
  auto refuse = [&](const char* reason, Status why) {
    admin_refused[{op, reason}]++;
    spdlog::warn("admin: refused {}: {}", op, why.message());
    r.status = std::move(why);
    Reply(q.identity, r);
    return true;
  };
  if (!q.admin) {
    return refuse("not_admin",
                  Status(Code::kPermissionDenied,
                         op + " is an admin operation: " +
                             (cc.curve ? std::string("this client's key is not in curve.admin_keys_file")
                                       : std::string("without CURVE only clients on this machine (loopback) are admins"))));
  }
  switch (request.op) {
    case Op::kPartition:
    case Op::kHeal:
      if (!cc.wan_enabled) {
        return refuse("wan_off", Status(Code::kInvalidArgument,
                                        op + " exists only while WAN emulation is on ([wan] enabled = true); "
                                             "this node talks to its peers over the real network"));
      }
      if (request.op == Op::kHeal) {
        transport->Heal();
      } else {
        transport->Partition(request.key, request.value == "1");
      }
      break;
    case Op::kReloadKeys: {
      if (config.source_path.empty()) {
        r.status = Status(Code::kInvalidArgument, "this node was not started from a config file");
      } else {
        auto fresh = Config::LoadFile(config.source_path);
        r.status = fresh.ok() ? ReloadKeys(*fresh) : fresh.status();
      }
      if (!r.status.ok()) admin_refused[{op, "reload_failed"}]++;
      break;
    }
    default:
      return false;  // policy changes: admitted, the engine does them
  }
  spdlog::info("admin: {} {}", op, request.key);
  Reply(q.identity, r);
  return true;
}

void Server::Impl::AddSecurityStatus(Response* r) const {
  const ClusterConfig& cc = *config.cluster;
  r->values.push_back(std::string("security: curve ") + (cc.curve ? "on" : "off") + "; admins: " +
                      (cc.curve ? "keys in curve.admin_keys_file" : "loopback clients"));
  if (cc.insecure && !cc.curve) {
    r->values.push_back("security: WARNING insecure = true: CURVE is off and the peer endpoint " +
                        cc.me().peer_endpoint + " is reachable from the network; anyone who reaches it can act as a peer");
  }
}

// The event loop: gathers what is ready (peer messages, client requests) into one round of
// the engine, waiting at most until the engine's next timer. Everything the round persists
// shares one storage commit.
void Server::Impl::Run() {
  const transport::NodeId self = transport->self();
  int64_t next_metrics = 0;
  transport::Event ev;
  while (!stop.load()) {
    Engine::RoundInputs in;
    const int64_t wait_us = std::clamp<int64_t>(engine->NextTimerUs() - MonotonicUs(), 0, 100'000);
    if (transport->Poll(&ev, static_cast<int>((wait_us + 999) / 1000))) {
      do {
        if (ev.from == self && ev.bytes.empty()) continue;  // a wake-up: clients are taken below
        in.messages.push_back(Engine::PeerMessage{static_cast<uint32_t>(ev.from), std::move(ev.bytes)});
      } while (in.messages.size() < Engine::kRoundInputsMax && transport->Poll(&ev, 0));
    }
    TakeClientRequests(&in);
    engine->Round(std::move(in));
    loop_alive_us.store(MonotonicUs());
    if (!engine->failure().ok() && !fatal_reported) {
      fatal_reported = true;
      failed.store(true);
      spdlog::critical("node stops: {}", engine->failure().ToString());
      spdlog::default_logger()->flush();
      if (on_fatal) on_fatal(engine->failure());
    }
    const int64_t now = MonotonicUs();
    if (now >= next_metrics) {
      RefreshMetrics();
      next_metrics = now + 500'000;
    }
    bool wake = false;
    {
      std::lock_guard lock(client_mu);
      wake = reply_pending;
      reply_pending = false;
    }
    if (wake) {
      try {
        wake_loop.send(zmq::str_buffer("w"), zmq::send_flags::dontwait);
      } catch (const zmq::error_t& e) {
        spdlog::warn("waking the client I/O thread: {}", e.what());
      }
    }
  }
}

Status Server::Impl::StartHttp() {
  const ClusterConfig& cc = *config.cluster;
  auto where = ParseMetricsEndpoint(cc.metrics_endpoint);
  if (!where.ok()) return where.status();
  if (where->second == 0) return Status::Ok();  // off
  http = std::make_unique<httplib::Server>();
  Impl* raw = this;
  http->Get("/metrics", [raw](const httplib::Request&, httplib::Response& res) {
    std::lock_guard lock(raw->metrics_mu);
    res.set_content(raw->metrics, "text/plain; version=0.0.4");
  });
  // Alive: the event loop turns and the node has not stopped itself. A supervisor restarts
  // a node that stays unhealthy.
  http->Get("/healthz", [raw](const httplib::Request&, httplib::Response& res) {
    constexpr int64_t kStuckUs = 10'000'000;
    if (raw->failed.load()) {
      res.status = 503;
      res.set_content("failed: the node stopped (see its log)\n", "text/plain");
    } else if (MonotonicUs() - raw->loop_alive_us.load() > kStuckUs) {
      res.status = 503;
      res.set_content("stuck: the event loop has not finished a round for 10 s\n", "text/plain");
    } else {
      res.set_content("ok\n", "text/plain");
    }
  });
  // Ready: serving and caught up (every group has a leader and this node applied all it
  // knows to be committed). A load balancer sends clients only to ready nodes.
  http->Get("/readyz", [raw](const httplib::Request&, httplib::Response& res) {
    std::lock_guard lock(raw->metrics_mu);
    if (raw->not_ready_reason.empty()) {
      res.set_content("ready\n", "text/plain");
    } else {
      res.status = 503;
      res.set_content("not ready: " + raw->not_ready_reason + "\n", "text/plain");
    }
  });
  if (!http->bind_to_port(where->first, where->second)) {
    return IOError("node.metrics_endpoint: cannot bind " + where->first + ":" + std::to_string(where->second));
  }
  http_thread = std::thread([raw] { raw->http->listen_after_bind(); });
  return Status::Ok();
}

std::string Server::Impl::Readiness() const {
  if (!engine->failure().ok()) return "the node stopped: " + engine->failure().message();
  for (uint32_t g = 0; g < engine->groups(); ++g) {
    if (!engine->Hosts(g)) continue;  // a replica another node of this region holds
    const auto& r = engine->replica(g);
    const std::string name = g + 1 == engine->groups() ? std::string("meta") : "shard " + std::to_string(g);
    if (r.leader_hint() < 0) return name + " has no known leader";
    if (r.applied_index() < r.commit_index()) {
      return name + " is catching up (applied " + std::to_string(r.applied_index()) + " of " +
             std::to_string(r.commit_index()) + ")";
    }
  }
  return "";
}

void Server::Impl::RefreshMetrics() {
  std::ostringstream m;
  const auto& es = engine->stats();
  m << "# HELP geokv_requests_total Client operations answered, by key mode.\n# TYPE geokv_requests_total counter\n";
  for (const auto& [mode, s] : per_mode) m << "geokv_requests_total{mode=\"" << mode << "\"} " << s.count << "\n";
  m << "# TYPE geokv_request_errors_total counter\n";
  for (const auto& [mode, s] : per_mode) m << "geokv_request_errors_total{mode=\"" << mode << "\"} " << s.errors << "\n";
  m << "# HELP geokv_request_seconds Time from receiving an operation to answering it.\n# TYPE geokv_request_seconds summary\n";
  for (const auto& [mode, s] : per_mode) {
    m << "geokv_request_seconds_sum{mode=\"" << mode << "\"} " << s.seconds << "\n";
    m << "geokv_request_seconds_count{mode=\"" << mode << "\"} " << s.count << "\n";
  }
  m << "# TYPE geokv_bad_requests_total counter\ngeokv_bad_requests_total " << bad_requests.load() << "\n";
  m << "# TYPE geokv_clients_refused_total counter\ngeokv_clients_refused_total " << clients_refused.load() << "\n";
  m << "# TYPE geokv_forwarded_total counter\ngeokv_forwarded_total " << es.forwarded << "\n";
  m << "# HELP geokv_proxied_total Requests for shards this node holds no replica of, sent to its region's holder.\n"
       "# TYPE geokv_proxied_total counter\ngeokv_proxied_total " << es.proxied << "\n";
  m << "# HELP geokv_duplicate_proxies_total Proxied requests the network delivered twice, served once.\n"
       "# TYPE geokv_duplicate_proxies_total counter\ngeokv_duplicate_proxies_total " << es.duplicate_proxies << "\n";
  m << "# HELP geokv_paxos_held_for_join_total Paxos messages a move's learner did not send while its CRDT replica joined.\n"
       "# TYPE geokv_paxos_held_for_join_total counter\ngeokv_paxos_held_for_join_total " << es.paxos_held_for_join << "\n";
  m << "# HELP geokv_crdt_replicas_total CRDT replicas of shards opened here, and erased (released, aborted or moved away).\n"
       "# TYPE geokv_crdt_replicas_total counter\n";
  m << "geokv_crdt_replicas_total{event=\"opened\"} " << es.crdt_replicas_opened << "\n";
  m << "geokv_crdt_replicas_total{event=\"erased\"} " << es.crdt_replicas_erased << "\n";
  m << "# HELP geokv_crdt_releases_total Departed CRDT replicas here that shipped everything (ReleaseReplica proposed).\n"
       "# TYPE geokv_crdt_releases_total counter\ngeokv_crdt_releases_total " << es.crdt_releases << "\n";
  m << "# TYPE geokv_misrouted_peer_messages_total counter\ngeokv_misrouted_peer_messages_total " << es.misrouted_messages << "\n";
  m << "# TYPE geokv_request_timeouts_total counter\ngeokv_request_timeouts_total " << es.timeouts << "\n";
  m << "# TYPE geokv_bad_peer_messages_total counter\ngeokv_bad_peer_messages_total " << es.bad_messages << "\n";
  m << "# TYPE geokv_paxos_commit_index gauge\n# TYPE geokv_paxos_leader gauge\n"
       "# TYPE geokv_paxos_elections_total counter\n# TYPE geokv_paxos_leaderships_total counter\n"
       "# TYPE geokv_paxos_malformed_total counter\n";
  for (uint32_t g = 0; g < engine->groups(); ++g) {
    if (!engine->Hosts(g)) continue;  // the groups this node holds a replica of
    const auto& r = engine->replica(g);
    const std::string label = "{group=\"" + (g + 1 == engine->groups() ? std::string("meta") : std::to_string(g)) + "\"}";
    m << "geokv_paxos_commit_index" << label << " " << r.commit_index() << "\n";
    m << "geokv_paxos_leader" << label << " " << engine->LeaderOf(g) << "\n";
    m << "geokv_paxos_elections_total" << label << " " << r.stats().elections << "\n";
    m << "geokv_paxos_leaderships_total" << label << " " << r.stats().leaderships << "\n";
    m << "geokv_paxos_malformed_total" << label << " " << r.stats().malformed << "\n";
  }
  // The nodes as this node's cluster map has them: one series per node and state (1 for the
  // state it is in), its replicas, and the groups it leads as this node sees them.
  const auto& map = engine->cluster_map();
  m << "# HELP geokv_cluster_map_version Version of the cluster map this node applied.\n"
       "# TYPE geokv_cluster_map_version gauge\ngeokv_cluster_map_version " << map.version() << "\n";
  m << "# HELP geokv_node_state Each node's state in the cluster map (1 for its state, 0 for the others).\n"
       "# TYPE geokv_node_state gauge\n# TYPE geokv_node_replicas gauge\n# TYPE geokv_node_leaderships gauge\n";
  for (const auto& [id, node] : map.nodes()) {
    const std::string region = map.RegionName(node.region);
    const std::string labels = "node=\"" + std::to_string(id) + "\",region=\"" + region + "\"";
    for (uint8_t st = 0; st <= static_cast<uint8_t>(placement::kNodeStateMax); ++st) {
      const auto state = static_cast<placement::NodeState>(st);
      m << "geokv_node_state{" << labels << ",state=\"" << placement::NodeStateName(state) << "\"} "
        << (node.state == state ? 1 : 0) << "\n";
    }
    m << "geokv_node_replicas{" << labels << "} " << node.load.shards << "\n";
    m << "geokv_node_leaderships{" << labels << "} " << engine->GroupsLedBy(id) << "\n";
  }
  m << "# TYPE geokv_node_heartbeats_sent_total counter\ngeokv_node_heartbeats_sent_total " << es.node_heartbeats_sent << "\n";
  m << "# HELP geokv_foreign_disk_messages_total Peer messages dropped: their sender's data directory is not the one "
       "this node knows for it (lost or replaced).\n"
       "# TYPE geokv_foreign_disk_messages_total counter\ngeokv_foreign_disk_messages_total "
    << es.foreign_disk_messages << "\n";
  m << "# HELP geokv_data_directory_lost 1 when a peer knows this node by another data directory: it serves no "
       "client operation but status.\n# TYPE geokv_data_directory_lost gauge\ngeokv_data_directory_lost "
    << (engine->data_directory_lost() ? 1 : 0) << "\n";
  m << "# HELP geokv_node_verdicts_total Node states this node's failure detector proposed as metadata leader.\n"
       "# TYPE geokv_node_verdicts_total counter\ngeokv_node_verdicts_total " << es.verdicts_proposed << "\n";
  m << "# TYPE geokv_detector_restarts_total counter\ngeokv_detector_restarts_total " << es.detector_restarts << "\n";
  m << "# HELP geokv_leader_handoffs_total Leaderships this node handed away while draining.\n"
       "# TYPE geokv_leader_handoffs_total counter\ngeokv_leader_handoffs_total " << es.leader_handoffs << "\n";
  m << "# HELP geokv_moves_planned_total Replica moves the placement driver proposed while this node led the metadata group.\n"
       "# TYPE geokv_moves_planned_total counter\ngeokv_moves_planned_total " << es.moves_planned << "\n";
  m << "# HELP geokv_member_changes_total Paxos membership changes this node proposed as a group's leader.\n"
       "# TYPE geokv_member_changes_total counter\ngeokv_member_changes_total " << es.member_changes << "\n";
  m << "# HELP geokv_replicas_moved_total Replicas moves placed on this node (in) and took from it (out, data erased).\n"
       "# TYPE geokv_replicas_moved_total counter\n"
    << "geokv_replicas_moved_total{dir=\"in\"} " << es.replicas_opened << "\n"
    << "geokv_replicas_moved_total{dir=\"out\"} " << es.replicas_closed << "\n";
  {
    uint32_t in_flight = 0;
    for (const auto& shard : engine->cluster_map().shards()) in_flight += shard.change ? 1 : 0;
    m << "# HELP geokv_moves_in_flight Replica moves the cluster map has in flight.\n"
         "# TYPE geokv_moves_in_flight gauge\ngeokv_moves_in_flight " << in_flight << "\n";
  }
  const crdt::DisseminatorStats ds = engine->CrdtStats();
  m << "# TYPE geokv_crdt_batches_sealed_total counter\ngeokv_crdt_batches_sealed_total " << ds.batches_sealed << "\n";
  m << "# TYPE geokv_crdt_batches_applied_total counter\ngeokv_crdt_batches_applied_total " << ds.batches_applied << "\n";
  m << "# TYPE geokv_crdt_bytes_sent_total counter\ngeokv_crdt_bytes_sent_total " << ds.bytes_sent << "\n";
  m << "# TYPE geokv_crdt_messages_bad_total counter\ngeokv_crdt_messages_bad_total " << ds.messages_bad << "\n";
  const auto ts = transport->Stats();
  m << "# TYPE geokv_transport_messages_total counter\n";
  m << "geokv_transport_messages_total{dir=\"sent\"} " << ts.sent << "\n";
  m << "geokv_transport_messages_total{dir=\"received\"} " << ts.received << "\n";
  m << "# HELP geokv_transport_bytes_total Payload bytes of the peer messages (frame headers excluded).\n"
       "# TYPE geokv_transport_bytes_total counter\n";
  m << "geokv_transport_bytes_total{dir=\"sent\"} " << ts.sent_bytes << "\n";
  m << "geokv_transport_bytes_total{dir=\"received\"} " << ts.received_bytes << "\n";
  m << "# HELP geokv_envelopes_sent_total Protocol messages (Paxos, CRDT, forwards) sent; several travel in one transport message.\n"
       "# TYPE geokv_envelopes_sent_total counter\ngeokv_envelopes_sent_total " << es.envelopes_sent << "\n";
  m << "# TYPE geokv_transport_dropped_total counter\n";
  m << "geokv_transport_dropped_total{reason=\"bad\"} " << ts.dropped_bad << "\n";
  m << "geokv_transport_dropped_total{reason=\"queue_full\"} " << ts.dropped_queue_full << "\n";
  m << "geokv_transport_dropped_total{reason=\"wan_loss\"} " << ts.dropped_wan_loss << "\n";
  m << "geokv_transport_dropped_total{reason=\"partition\"} " << ts.dropped_partition << "\n";
  m << "geokv_transport_dropped_total{reason=\"expired\"} " << ts.dropped_expired << "\n";
  m << "geokv_transport_dropped_total{reason=\"auth\"} " << ts.refused_auth << "\n";
  m << "geokv_transport_dropped_total{reason=\"flood\"} " << ts.dropped_flood << "\n";
  m << "# TYPE geokv_transport_inbound_bytes gauge\ngeokv_transport_inbound_bytes " << ts.inbound_bytes << "\n";
  m << "# TYPE geokv_transport_inbound_bytes_peak gauge\ngeokv_transport_inbound_bytes_peak " << ts.inbound_bytes_peak
    << "\n";
  m << "# HELP geokv_storage_commit_seconds WiredTiger write (and fsync) time per event-loop round.\n"
       "# TYPE geokv_storage_commit_seconds summary\n";
  m << "geokv_storage_commit_seconds_sum " << static_cast<double>(store->commit_us_sum()) / 1e6 << "\n";
  m << "geokv_storage_commit_seconds_count " << store->commits() << "\n";
  m << "# HELP geokv_rounds_total Event-loop rounds of the engine.\n# TYPE geokv_rounds_total counter\n"
    << "geokv_rounds_total " << es.rounds << "\n";
  m << "# HELP geokv_storage_syncs_total Storage commits that were synced to disk (fsync).\n"
       "# TYPE geokv_storage_syncs_total counter\ngeokv_storage_syncs_total " << es.storage_syncs << "\n";
  m << "# TYPE geokv_forwards_resent_total counter\ngeokv_forwards_resent_total " << es.reforwards << "\n";
  m << "# TYPE geokv_requests_parked_total counter\ngeokv_requests_parked_total " << es.parked << "\n";
  m << "# TYPE geokv_compaction_failures_total counter\ngeokv_compaction_failures_total " << es.compaction_failures << "\n";
  m << "# HELP geokv_admin_refused_total Admin operations refused, by operation and reason.\n"
       "# TYPE geokv_admin_refused_total counter\n";
  for (const auto& [key, n] : admin_refused) {
    m << "geokv_admin_refused_total{op=\"" << key.first << "\",reason=\"" << key.second << "\"} " << n << "\n";
  }
  m << "# HELP geokv_client_requests_dropped_total Client requests dropped before the event loop, by reason.\n"
       "# TYPE geokv_client_requests_dropped_total counter\n";
  for (size_t i = 0; i < kDropReasons; ++i) {
    m << "geokv_client_requests_dropped_total{reason=\"" << kDropReasonNames[i] << "\"} " << client_dropped[i].load()
      << "\n";
  }
  m << "# TYPE geokv_client_replies_dropped_total counter\ngeokv_client_replies_dropped_total " << replies_dropped.load()
    << "\n";
  {
    size_t in_bytes = 0;
    {
      std::lock_guard lock(client_mu);
      in_bytes = client_in_bytes;
    }
    m << "# HELP geokv_client_queue_bytes Bytes of client requests waiting for the event loop.\n"
         "# TYPE geokv_client_queue_bytes gauge\ngeokv_client_queue_bytes " << in_bytes << "\n";
    m << "# TYPE geokv_client_queue_bytes_peak gauge\ngeokv_client_queue_bytes_peak " << client_in_bytes_peak.load()
      << "\n";
    m << "# TYPE geokv_client_queue_bytes_max gauge\ngeokv_client_queue_bytes_max " << config.cluster->client_bytes_max
      << "\n";
  }
  m << "# TYPE geokv_key_reloads_total counter\n";
  m << "geokv_key_reloads_total{result=\"ok\"} " << reloads.load() << "\n";
  m << "geokv_key_reloads_total{result=\"failed\"} " << reload_failures.load() << "\n";
  m << "# HELP geokv_insecure 1 when CURVE is off and [cluster] insecure = true.\n# TYPE geokv_insecure gauge\n"
    << "geokv_insecure " << (config.cluster->insecure && !config.cluster->curve ? 1 : 0) << "\n";
  const std::string not_ready = Readiness();
  m << "# HELP geokv_ready 1 when /readyz says ready (caught up and serving).\n# TYPE geokv_ready gauge\n"
    << "geokv_ready " << (not_ready.empty() ? 1 : 0) << "\n";
  m << "# HELP geokv_node_failed 1 once the node stopped because its storage failed (fail-stop).\n"
       "# TYPE geokv_node_failed gauge\ngeokv_node_failed " << (engine->failure().ok() ? 0 : 1) << "\n";
  std::lock_guard lock(metrics_mu);
  metrics = m.str();
  not_ready_reason = not_ready;
}

}  // namespace geokv
