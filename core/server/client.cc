#include "core/server/client.h"

#include <chrono>
#include <utility>

#include <zmq.hpp>

namespace geokv {

struct Client::Sockets {
  zmq::context_t context{1};
  std::vector<zmq::socket_t> dealers;  // one per endpoint
};

namespace {

bool IsRefusal(const Status& s) { return s.code() == Code::kUnavailable || s.code() == Code::kBusy; }

bool IsReadOnly(Op op) {
  switch (op) {
    case Op::kGet: case Op::kSetMembers: case Op::kSetContains: case Op::kMvGet:
    case Op::kPolicyList: case Op::kStatus:
      return true;
    default:
      return false;
  }
}

}  // namespace

Client::Client(ClientOptions options) : options_(std::move(options)), sockets_(std::make_unique<Sockets>()) {}

Client::~Client() = default;

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
  try {
    for (size_t i = 0; i < options.endpoints.size(); ++i) {
      zmq::socket_t s(c->sockets_->context, zmq::socket_type::dealer);
      s.set(zmq::sockopt::linger, 0);
      s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMessageBytesMax));
      s.set(zmq::sockopt::sndhwm, 1000);
      s.set(zmq::sockopt::rcvhwm, 1000);
      s.set(zmq::sockopt::reconnect_ivl, 100);
      s.set(zmq::sockopt::reconnect_ivl_max, 2000);
      if (curve) {
        const auto& server = options.server_public_keys_z85.size() == 1 ? options.server_public_keys_z85[0]
                                                                         : options.server_public_keys_z85[i];
        s.set(zmq::sockopt::curve_serverkey, server);
        s.set(zmq::sockopt::curve_publickey, options.public_key_z85);
        s.set(zmq::sockopt::curve_secretkey, options.secret_key_z85);
      }
      s.connect(options.endpoints[i]);
      c->sockets_->dealers.push_back(std::move(s));
    }
  } catch (const zmq::error_t& e) {
    return InvalidArgument(std::string("cannot connect: ") + e.what());
  }
  return c;
}

Response Client::Call(Request request) {
  std::lock_guard lock(mu_);
  const int64_t timeout_ms = request.timeout_ms != 0 ? request.timeout_ms : options_.timeout_ms;
  const size_t n = sockets_->dealers.size();
  Response last;
  last.status = Status(Code::kUnavailable, "no node answered");
  for (size_t attempt = 0; attempt < n; ++attempt) {
    const size_t which = (preferred_ + attempt) % n;
    zmq::socket_t& s = sockets_->dealers[which];
    request.id = next_id_++;
    // The node gets the remaining budget minus a margin, so its answer beats our deadline.
    request.timeout_ms = static_cast<uint32_t>(std::max<int64_t>(1, timeout_ms * 9 / 10));
    const std::string bytes = EncodeRequest(request);
    try {
      if (!s.send(zmq::buffer(bytes), zmq::send_flags::dontwait)) {
        last.status = Status(Code::kUnavailable, "node " + options_.endpoints[which] + " is not accepting requests");
        continue;
      }
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
      bool answered = false;
      while (!answered) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, left);
        if (!(item.revents & ZMQ_POLLIN)) continue;
        zmq::message_t msg;
        if (!s.recv(msg, zmq::recv_flags::dontwait)) continue;
        auto resp = DecodeResponse(msg.to_string_view());
        if (!resp.ok() || resp->id != request.id) continue;  // garbage, or a late answer to an earlier request
        answered = true;
        last = std::move(resp).value();
      }
      if (!answered) {
        last.status = Status(Code::kTimeout, "node " + options_.endpoints[which] + " did not answer within " +
                                                 std::to_string(timeout_ms) + " ms");
        if (!IsReadOnly(request.op)) return last;  // a write's outcome is unknown: never retried
        continue;
      }
    } catch (const zmq::error_t& e) {
      last.status = Status(Code::kUnavailable, std::string("network error: ") + e.what());
      continue;
    }
    if (IsRefusal(last.status) && attempt + 1 < n) continue;  // refused before taking effect: next node
    preferred_ = which;
    return last;
  }
  return last;
}

}  // namespace geokv
