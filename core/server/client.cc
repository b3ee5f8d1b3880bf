#include "core/server/client.h"

#include <cerrno>
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
      zmq::socket_t s(context_->context, zmq::socket_type::dealer);
      s.set(zmq::sockopt::linger, 0);
      s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMessageBytesMax));
      s.set(zmq::sockopt::sndhwm, 1000);
      s.set(zmq::sockopt::rcvhwm, 1000);
      s.set(zmq::sockopt::reconnect_ivl, 100);
      s.set(zmq::sockopt::reconnect_ivl_max, 2000);
      if (curve) {
        const auto& server = options_.server_public_keys_z85.size() == 1 ? options_.server_public_keys_z85[0]
                                                                          : options_.server_public_keys_z85[i];
        s.set(zmq::sockopt::curve_serverkey, server);
        s.set(zmq::sockopt::curve_publickey, options_.public_key_z85);
        s.set(zmq::sockopt::curve_secretkey, options_.secret_key_z85);
      }
      s.connect(options_.endpoints[i]);
      lane->dealers.push_back(std::move(s));
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
  Response r = CallOn(**lane, std::move(request));
  Release(std::move(lane).value());
  return r;
}

Response Client::CallOn(Lane& lane, Request request) {
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
  Response last;
  last.status = Status(Code::kUnavailable, "no node answered");
  const size_t start = preferred_.load() % n;  // preferred_ moves on during the loop after a timeout
  for (size_t attempt = 0; attempt < n; ++attempt) {
    const size_t which = (start + attempt) % n;
    zmq::socket_t& s = lane.dealers[which];
    request.id = lane.next_id++;  // a late answer to an earlier attempt is told apart
    const std::string bytes = EncodeRequest(request);
    bool sent = false;
    bool answered = false;
    try {
      sent = RetryEintr([&] { return s.send(zmq::buffer(bytes), zmq::send_flags::dontwait).has_value(); });
      if (!sent) {
        // Nothing left this process: not applied, so any request may move on.
        last.status = Status(Code::kUnavailable, "node " + options_.endpoints[which] + " is not accepting requests");
        continue;
      }
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
      while (!answered) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
        RetryEintr([&] { return zmq::poll(&item, 1, left); });
        if (!(item.revents & ZMQ_POLLIN)) continue;
        zmq::message_t msg;
        if (!RetryEintr([&] { return s.recv(msg, zmq::recv_flags::dontwait).has_value(); })) continue;
        auto resp = DecodeResponse(msg.to_string_view());
        if (!resp.ok() || resp->id != request.id) continue;  // garbage, or a late answer to an earlier request
        answered = true;
        last = std::move(resp).value();
      }
      if (!answered) {
        last.status = Status(Code::kTimeout, "node " + options_.endpoints[which] + " did not answer within " +
                                                 std::to_string(timeout_ms) + " ms; " +
                                                 (read_only ? "nothing was changed"
                                                            : "the write may or may not have been applied"));
      }
    } catch (const zmq::error_t& e) {
      if (!sent) {
        last.status = Status(Code::kUnavailable, "node " + options_.endpoints[which] + ": " + e.what());
        continue;
      }
      // Sent, then the socket failed: the node may have applied it.
      last.status = Status(Code::kTimeout, "node " + options_.endpoints[which] + " failed after the request was sent (" +
                                               e.what() + "); its outcome is unknown");
    }
    if (last.status.code() == Code::kTimeout) {
      // Unknown outcome. Whatever happens next, later requests start at the next node.
      preferred_ = (which + 1) % n;
      if (read_only || Resendable(request.op)) continue;  // the same session: applied once
      return last;
    }
    if (IsRefusal(last.status) && attempt + 1 < n) continue;  // refused before taking effect: next node
    preferred_ = which;
    last.status = InUserTerms(std::move(last.status));
    return last;
  }
  last.status = InUserTerms(std::move(last.status));
  return last;
}

}  // namespace geokv
