#include "core/server/client.h"

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <random>
#include <utility>

#include <zmq.hpp>

namespace geokv {

struct Client::Context {
  zmq::context_t context{1};
};

// One caller at a time: its sockets and its session.
struct Client::Lane {
  std::vector<zmq::socket_t> dealers;  // one per endpoint
  // Routed-to nodes that are not configured endpoints: node -> (its address, socket).
  std::map<placement::NodeId, std::pair<std::string, zmq::socket_t>> routed;
  uint64_t client_id = 0;              // random, never 0: this lane's Paxos session
  uint64_t next_id = 1;
  uint64_t next_seq = 1;               // session sequence of the next write
};

namespace {

bool IsRefusal(const Status& s) { return s.code() == Code::kUnavailable || s.code() == Code::kBusy; }

bool IsReadOnly(Op op) {
  switch (op) {
    case Op::kGet: case Op::kSetMembers: case Op::kSetContains: case Op::kMvGet:
    case Op::kPolicyList: case Op::kStatus: case Op::kClusterMap: case Op::kShardSnapshot: case Op::kCrdtDump:
      return true;
    default:
      return false;
  }
}

// Operations on one key: those a client routes by the key's shard.
bool IsKeyed(Op op) {
  switch (op) {
    case Op::kGet: case Op::kPut: case Op::kDelete: case Op::kCas: case Op::kAdd:
    case Op::kSetAdd: case Op::kSetRemove: case Op::kSetMembers: case Op::kSetContains:
    case Op::kMvGet: case Op::kMvPut: case Op::kMvDelete:
      return true;
    default:
      return false;
  }
}

// A node's refusal in the words of its internals ("paxos: not the leader") told in the
// user's: what happened and what to do.
Status InUserTerms(Status s) {
  if (s.code() == Code::kUnavailable && s.message().rfind("paxos:", 0) == 0) {
    return Status(Code::kUnavailable,
                  "no node could reach a leader for this key's shard (an election may be under way); "
                  "nothing was applied: retry");
  }
  return s;
}

uint64_t RandomClientId() {
  std::random_device rd;
  const uint64_t id = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return id | 1;  // never 0, which means "no session"
}

}  // namespace

bool Client::Resendable(Op op) {
  switch (op) {
    case Op::kPut: case Op::kDelete: case Op::kCas: case Op::kSetAdd: case Op::kSetRemove:
    case Op::kMvDelete: case Op::kPolicySet: case Op::kNodeState:
      return true;
    default:
      return false;
  }
}

namespace {

// Runs a ZeroMQ call again when a signal interrupted it.
template <typename Fn>
auto RetryEintr(Fn&& fn) {
  for (;;) {
    try {
      return fn();
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
  }
}

// A DEALER socket connected to `address` (throws zmq::error_t). `server_key`: CURVE's
// server public key (nullptr: plain TCP).
zmq::socket_t Dealer(zmq::context_t& context, const ClientOptions& options, const std::string& address,
                     const std::string* server_key) {
  zmq::socket_t s(context, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMessageBytesMax));
  s.set(zmq::sockopt::sndhwm, 1000);
  s.set(zmq::sockopt::rcvhwm, 1000);
  s.set(zmq::sockopt::reconnect_ivl, 100);
  s.set(zmq::sockopt::reconnect_ivl_max, 2000);
  if (server_key != nullptr) {
    s.set(zmq::sockopt::curve_serverkey, *server_key);
    s.set(zmq::sockopt::curve_publickey, options.public_key_z85);
    s.set(zmq::sockopt::curve_secretkey, options.secret_key_z85);
  }
  s.connect(address);
  return s;
}

}  // namespace

Client::Client(ClientOptions options) : options_(std::move(options)), context_(std::make_unique<Context>()) {}

Client::~Client() {
  // Sockets close before the context they belong to.
  idle_.clear();
}

uint64_t Client::client_id() const { return first_client_id_; }

StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  if (options.endpoints.empty()) return InvalidArgument("no endpoints to connect to");
  if (options.endpoints.size() > 64) return InvalidArgument("at most 64 endpoints");
  if (options.timeout_ms <= 0) return InvalidArgument("timeout_ms must be positive");
  const bool curve = !options.server_public_keys_z85.empty();
  if (curve && (options.public_key_z85.size() != 40 || options.secret_key_z85.size() != 40)) {
    return InvalidArgument("CURVE needs this client's public and secret keys (40 Z85 characters each)");
  }
  if (curve && options.server_public_keys_z85.size() != 1 &&
      options.server_public_keys_z85.size() != options.endpoints.size()) {
    return InvalidArgument("give one server public key, or one per endpoint");
  }
  std::unique_ptr<Client> c(new Client(options));
  // The first lane now: a bad endpoint or key fails here, not at the first call.
  auto lane = c->NewLane();
  if (!lane.ok()) return lane.status();
  c->first_client_id_ = (*lane)->client_id;
  c->lanes_ = 1;
  c->idle_.push_back(std::move(lane).value());
  return c;
}

StatusOr<std::unique_ptr<Client::Lane>> Client::NewLane() {
  auto lane = std::make_unique<Lane>();
  lane->client_id = RandomClientId();
  const bool curve = !options_.server_public_keys_z85.empty();
  try {
    for (size_t i = 0; i < options_.endpoints.size(); ++i) {
      const std::string* server = nullptr;
      if (curve) {
        server = options_.server_public_keys_z85.size() == 1 ? &options_.server_public_keys_z85[0]
                                                             : &options_.server_public_keys_z85[i];
      }
      lane->dealers.push_back(Dealer(context_->context, options_, options_.endpoints[i], server));
    }
  } catch (const zmq::error_t& e) {
    return InvalidArgument(std::string("cannot connect: ") + e.what());
  }
  return lane;
}

StatusOr<std::unique_ptr<Client::Lane>> Client::Acquire() {
  std::unique_lock lock(mu_);
  lane_freed_.wait(lock, [this] { return !idle_.empty() || lanes_ < kLanesMax; });
  if (!idle_.empty()) {
    auto lane = std::move(idle_.back());
    idle_.pop_back();
    return lane;
  }
  ++lanes_;
  lock.unlock();
  auto lane = NewLane();
  if (!lane.ok()) {
    lock.lock();
    --lanes_;
    lane_freed_.notify_one();
  }
  return lane;
}

void Client::Release(std::unique_ptr<Lane> lane) {
  {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(lane));
  }
  lane_freed_.notify_one();
}

Response Client::Call(Request request) {
  auto lane = Acquire();
  if (!lane.ok()) {
    Response r;
    r.status = Status(Code::kUnavailable, lane.status().message());
    return r;
  }
  const int64_t timeout_ms = request.timeout_ms != 0 ? request.timeout_ms : options_.timeout_ms;
  const std::optional<Target> routed = RouteFor(**lane, request, timeout_ms);
  if (routed) routed_++;
  Response r = CallOn(**lane, std::move(request), routed);
  Release(std::move(lane).value());
  return r;
}

ClientCounters Client::counters() const {
  ClientCounters c;
  c.routed = routed_.load();
  c.map_fetches = map_fetches_.load();
  c.map_refreshes = map_refreshes_.load();
  c.redirects = redirects_.load();
  std::lock_guard lock(route_mu_);
  c.map_version = route_ ? route_->map.version() : 0;
  return c;
}

bool Client::CurveKeyPerEndpoint() const {
  const auto& keys = options_.server_public_keys_z85;
  return !keys.empty() && !(keys.size() == 1 && options_.endpoints.size() > 1);
}

zmq::socket_t& Client::Socket(Lane& lane, const Target& target) {
  if (target.endpoint != SIZE_MAX) return lane.dealers[target.endpoint];
  auto it = lane.routed.find(target.node);
  if (it != lane.routed.end() && it->second.first == target.address) return it->second.second;
  if (it != lane.routed.end()) {
    lane.routed.erase(it);  // the node has another address now
  } else if (lane.routed.size() >= kRoutedSocketsMax) {
    lane.routed.clear();
  }
  // Only with one server key for all (RouteFor routes nowhere else under CURVE).
  const std::string* server = options_.server_public_keys_z85.empty() ? nullptr : &options_.server_public_keys_z85[0];
  zmq::socket_t s = Dealer(context_->context, options_, target.address, server);
  return lane.routed.emplace(target.node, std::make_pair(target.address, std::move(s))).first->second.second;
}

std::optional<Client::Target> Client::RouteFor(Lane& lane, const Request& request, int64_t timeout_ms) {
  if (!options_.route_by_map || !IsKeyed(request.op)) return std::nullopt;
  bool fetch = false, refresh = false;
  {
    std::lock_guard lock(route_mu_);
    if (!fetching_) {
      const uint64_t have = route_ ? route_->map.version() : 0;
      if (route_ == nullptr) {
        fetch = std::chrono::steady_clock::now() >= retry_fetch_at_;
      } else if (announced_version_ > have && announced_version_ > fetched_for_version_) {
        fetch = refresh = true;  // once per version announced
      }
      if (fetch) {
        fetching_ = true;
        fetched_for_version_ = std::max(fetched_for_version_, announced_version_);
      }
    }
  }
  if (fetch) FetchMap(lane, timeout_ms, refresh);

  std::lock_guard lock(route_mu_);
  if (route_ == nullptr || !route_->region) return std::nullopt;
  const placement::ClusterMap& map = route_->map;
  if (map.shards().empty()) return std::nullopt;
  const auto& replicas = map.shards()[map.ShardOf(request.key)].replicas;
  if (*route_->region >= replicas.size()) return std::nullopt;
  const placement::NodeId holder = replicas[*route_->region];
  const placement::Node* node = map.FindNode(holder);
  if (node == nullptr || node->client_address.empty() ||
      (node->state != placement::NodeState::kUp && node->state != placement::NodeState::kDraining)) {
    return std::nullopt;
  }
  if (auto it = avoid_.find(holder); it != avoid_.end()) {
    if (std::chrono::steady_clock::now() < it->second) return std::nullopt;
    avoid_.erase(it);
  }
  Target t;
  t.node = holder;
  t.address = node->client_address;
  for (size_t i = 0; i < options_.endpoints.size(); ++i) {
    if (options_.endpoints[i] == t.address) {
      t.endpoint = i;
      break;
    }
  }
  // The map carries no keys: with a key per endpoint, only those endpoints are known.
  if (t.endpoint == SIZE_MAX && CurveKeyPerEndpoint()) return std::nullopt;
  return t;
}

void Client::FetchMap(Lane& lane, int64_t timeout_ms, bool refresh) {
  Request request;
  request.op = Op::kClusterMap;
  request.timeout_ms = static_cast<uint32_t>(timeout_ms);
  Target answered;
  // All attempts together within one request timeout: the request it precedes still gets
  // its own.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  const Response r = CallOn(lane, std::move(request), std::nullopt, deadline, &answered);
  std::shared_ptr<Route> fresh;
  if (r.status.ok()) {
    auto map = placement::ClusterMap::Decode(r.value);
    if (map.ok()) {
      fresh = std::make_shared<Route>();
      fresh->map = std::move(map).value();
      const auto& m = fresh->map;
      if (!options_.region.empty()) {
        for (const auto& region : m.regions()) {
          if (region.name == options_.region) fresh->region = region.id;
        }
      } else {
        auto region_behind = [&m](const std::string& endpoint) -> std::optional<placement::RegionId> {
          for (const auto& [id, node] : m.nodes()) {
            if (node.client_address == endpoint && node.state != placement::NodeState::kRemoved) return node.region;
          }
          return std::nullopt;
        };
        if (answered.endpoint < options_.endpoints.size()) fresh->region = region_behind(options_.endpoints[answered.endpoint]);
        for (size_t i = 0; !fresh->region && i < options_.endpoints.size(); ++i) {
          fresh->region = region_behind(options_.endpoints[i]);
        }
      }
    }
  }
  std::lock_guard lock(route_mu_);
  fetching_ = false;
  if (fresh == nullptr) {
    // Requests go to the endpoints meanwhile; the caller never sees this.
    if (route_ == nullptr) {
      retry_fetch_at_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(kMapRetryMs);
    }
    return;
  }
  map_fetches_++;
  if (refresh) map_refreshes_++;
  // A node may answer with a map older than the one in use; never go back.
  if (route_ == nullptr || fresh->map.version() > route_->map.version() ||
      (fresh->map.version() == route_->map.version() && !route_->region && fresh->region)) {
    route_ = std::move(fresh);
  }
}

void Client::Observe(const Response& response, const std::optional<Target>& routed, bool routed_timed_out) {
  if (response.redirect_node != kNoRedirect) redirects_++;
  if (response.map_version == 0 && !routed_timed_out) return;
  std::lock_guard lock(route_mu_);
  announced_version_ = std::max(announced_version_, response.map_version);
  if (routed_timed_out && routed) {
    // Dead, paused or cut off: the map may say so by now. Fetch it again once for the map
    // in use, and pass the node over meanwhile.
    const auto now = std::chrono::steady_clock::now();
    for (auto it = avoid_.begin(); it != avoid_.end();) it = it->second <= now ? avoid_.erase(it) : std::next(it);
    avoid_[routed->node] = now + std::chrono::milliseconds(kAvoidMs);
    if (route_ != nullptr) announced_version_ = std::max(announced_version_, route_->map.version() + 1);
  }
}

Response Client::CallOn(Lane& lane, Request request, const std::optional<Target>& routed,
                        std::optional<SteadyTime> deadline, Target* answered) {
  const int64_t timeout_ms = request.timeout_ms != 0 ? request.timeout_ms : options_.timeout_ms;
  const size_t n = lane.dealers.size();
  const bool read_only = IsReadOnly(request.op);
  if (!read_only) {
    // One session sequence per write, the same on every re-send: applied once.
    request.client_id = lane.client_id;
    request.seq = lane.next_seq++;
  }
  // The node gets the budget minus a margin, so its answer beats our deadline.
  request.timeout_ms = static_cast<uint32_t>(std::max<int64_t>(1, timeout_ms * 9 / 10));
  // The routed-to node first, then the endpoints from the preferred one on (preferred_
  // moves on during the loop after a timeout).
  std::vector<Target> targets;
  if (routed) targets.push_back(*routed);
  const size_t start = preferred_.load() % n;
  for (size_t i = 0; i < n; ++i) {
    const size_t e = (start + i) % n;
    if (routed && routed->endpoint == e) continue;
    Target t;
    t.endpoint = e;
    t.address = options_.endpoints[e];
    targets.push_back(std::move(t));
  }
  Response last;
  last.status = Status(Code::kUnavailable, "no node answered");
  for (size_t attempt = 0; attempt < targets.size(); ++attempt) {
    const Target& target = targets[attempt];
    const bool is_routed = routed && attempt == 0;
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    if (deadline) {
      if (std::chrono::steady_clock::now() >= *deadline) break;
      until = std::min(until, *deadline);
    }
    request.id = lane.next_id++;  // a late answer to an earlier attempt is told apart
    const std::string bytes = EncodeRequest(request);
    bool sent = false;
    bool answered_here = false;
    try {
      zmq::socket_t& s = Socket(lane, target);
      sent = RetryEintr([&] { return s.send(zmq::buffer(bytes), zmq::send_flags::dontwait).has_value(); });
      if (!sent) {
        // Nothing left this process: not applied, so any request may move on.
        last.status = Status(Code::kUnavailable, "node " + target.address + " is not accepting requests");
        continue;
      }
      while (!answered_here) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
        RetryEintr([&] { return zmq::poll(&item, 1, left); });
        if (!(item.revents & ZMQ_POLLIN)) continue;
        zmq::message_t msg;
        if (!RetryEintr([&] { return s.recv(msg, zmq::recv_flags::dontwait).has_value(); })) continue;
        auto resp = DecodeResponse(msg.to_string_view());
        if (!resp.ok() || resp->id != request.id) continue;  // garbage, or a late answer to an earlier request
        answered_here = true;
        last = std::move(resp).value();
      }
      if (!answered_here) {
        last.status = Status(Code::kTimeout, "node " + target.address + " did not answer within " +
                                                 std::to_string(timeout_ms) + " ms; " +
                                                 (read_only ? "nothing was changed"
                                                            : "the write may or may not have been applied"));
      }
    } catch (const zmq::error_t& e) {
      if (!sent) {
        last.status = Status(Code::kUnavailable, "node " + target.address + ": " + e.what());
        continue;
      }
      // Sent, then the socket failed: the node may have applied it.
      last.status = Status(Code::kTimeout, "node " + target.address + " failed after the request was sent (" +
                                               e.what() + "); its outcome is unknown");
    }
    if (last.status.code() == Code::kTimeout) {
      // Unknown outcome. Whatever happens next, later requests start at the next node.
      if (target.endpoint != SIZE_MAX) preferred_ = (target.endpoint + 1) % n;
      // A routed-to node that answered (its own deadline passed) is alive; one that did
      // not is passed over for a while.
      if (is_routed && !answered_here) Observe(last, routed, /*routed_timed_out=*/true);
      if (read_only || Resendable(request.op)) continue;  // the same session: applied once
      return last;
    }
    if (IsRefusal(last.status) && attempt + 1 < targets.size()) continue;  // refused before taking effect: next node
    if (!is_routed) preferred_ = target.endpoint;
    if (answered != nullptr) *answered = target;
    Observe(last, routed, /*routed_timed_out=*/false);
    last.status = InUserTerms(std::move(last.status));
    return last;
  }
  last.status = InUserTerms(std::move(last.status));
  return last;
}

}  // namespace geokv
