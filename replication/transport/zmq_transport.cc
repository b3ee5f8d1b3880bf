#include "replication/transport/zmq_transport.h"

#include <sodium.h>
#include <spdlog/spdlog.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <limits>
#include <utility>
#include <zmq.hpp>

#include "replication/transport/curve_keys.h"
#include "replication/transport/frame.h"
#include "replication/transport/zap_authorizer.h"

namespace geokv::transport {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr const char* kWakeEndpoint = "inproc://geokv-transport-wake";
constexpr const char* kZapDomain = "geokv";
// Upper bounds on options, so a typo cannot ask for absurd memory or waits.
constexpr size_t kQueueMessagesCap = 1u << 20;
constexpr size_t kQueueBytesCap = size_t{1} << 32;
constexpr int kIntervalMsCap = 600'000;
// The I/O thread re-checks its state at least this often, whatever else happens.
constexpr int kPollSliceMsMax = 100;
// A ZAP request has 7 frames; anything far bigger is not one.
constexpr size_t kZapFramesMax = 16;
constexpr size_t kZapFrameBytesMax = 1024;

Status ConfigError(const std::string& field, const std::string& what) {
  return Status(Code::kConfig, field + ": " + what);
}

Status CheckRange(const std::string& field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) {
    return ConfigError(field, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                  "], got " + std::to_string(v));
  }
  return Status::Ok();
}

Status CheckEndpoint(const std::string& field, const std::string& endpoint) {
  if (endpoint.rfind("tcp://", 0) != 0 && endpoint.rfind("ipc://", 0) != 0) {
    return ConfigError(field, "expected tcp://host:port or ipc://path, got '" + endpoint + "'");
  }
  return Status::Ok();
}

Status CheckPeer(NodeId self, NodeId id, const Peer& peer, bool curve) {
  const std::string field = "peers." + std::to_string(id);
  if (id == self) return ConfigError(field, "a node is not its own peer");
  GEOKV_RETURN_IF_ERROR(CheckEndpoint(field + ".endpoint", peer.endpoint));
  if (peer.region.empty()) return ConfigError(field + ".region", "must not be empty");
  if (curve) {
    if (peer.curve_public_key_z85.empty()) {
      return ConfigError(field + ".curve_public_key", "required when CURVE is on");
    }
    if (Status s = CheckZ85Key(peer.curve_public_key_z85); !s.ok()) {
      return ConfigError(field + ".curve_public_key", s.message());
    }
  }
  return Status::Ok();
}

Status Validate(const ZmqTransportOptions& o) {
  GEOKV_RETURN_IF_ERROR(CheckEndpoint("bind_endpoint", o.bind_endpoint));
  if (o.region.empty()) return ConfigError("region", "must not be empty");
  GEOKV_RETURN_IF_ERROR(CheckRange("message_bytes_max", static_cast<int64_t>(o.message_bytes_max),
                                   1, static_cast<int64_t>(kFramePayloadBytesMax)));
  GEOKV_RETURN_IF_ERROR(CheckRange("peer_queue_messages_max",
                                   static_cast<int64_t>(o.peer_queue_messages_max), 1,
                                   static_cast<int64_t>(kQueueMessagesCap)));
  GEOKV_RETURN_IF_ERROR(CheckRange("peer_queue_bytes_max",
                                   static_cast<int64_t>(o.peer_queue_bytes_max),
                                   static_cast<int64_t>(o.message_bytes_max + kFrameHeaderBytes),
                                   static_cast<int64_t>(kQueueBytesCap)));
  GEOKV_RETURN_IF_ERROR(CheckRange("queue_ttl_ms", o.queue_ttl_ms, 1, kIntervalMsCap));
  GEOKV_RETURN_IF_ERROR(CheckRange("inbound_queue_bytes_max",
                                   static_cast<int64_t>(o.inbound_queue_bytes_max),
                                   static_cast<int64_t>(o.message_bytes_max),
                                   static_cast<int64_t>(kQueueBytesCap)));
  GEOKV_RETURN_IF_ERROR(CheckRange("inbound_per_peer_bytes_max",
                                   static_cast<int64_t>(o.inbound_per_peer_bytes_max),
                                   static_cast<int64_t>(o.message_bytes_max),
                                   static_cast<int64_t>(o.inbound_queue_bytes_max)));
  GEOKV_RETURN_IF_ERROR(CheckRange("inbound_queue_messages_max",
                                   static_cast<int64_t>(o.inbound_queue_messages_max), 1,
                                   static_cast<int64_t>(kQueueMessagesCap)));
  GEOKV_RETURN_IF_ERROR(CheckRange("send_hwm_messages", o.send_hwm_messages, 1, 1 << 20));
  GEOKV_RETURN_IF_ERROR(CheckRange("receive_hwm_messages", o.receive_hwm_messages, 1, 1 << 20));
  GEOKV_RETURN_IF_ERROR(CheckRange("reconnect_ivl_ms", o.reconnect_ivl_ms, 1, kIntervalMsCap));
  GEOKV_RETURN_IF_ERROR(CheckRange("reconnect_ivl_max_ms", o.reconnect_ivl_max_ms,
                                   o.reconnect_ivl_ms, kIntervalMsCap));
  GEOKV_RETURN_IF_ERROR(CheckRange("heartbeat_ivl_ms", o.heartbeat_ivl_ms, 0, kIntervalMsCap));
  GEOKV_RETURN_IF_ERROR(CheckRange("heartbeat_timeout_ms", o.heartbeat_timeout_ms,
                                   o.heartbeat_ivl_ms, kIntervalMsCap));
  GEOKV_RETURN_IF_ERROR(CheckRange("tcp_keepalive_idle_s", o.tcp_keepalive_idle_s, 1, 86'400));
  GEOKV_RETURN_IF_ERROR(CheckRange("tcp_keepalive_interval_s", o.tcp_keepalive_interval_s, 1, 86'400));
  GEOKV_RETURN_IF_ERROR(CheckRange("tcp_keepalive_count", o.tcp_keepalive_count, 1, 1'000));
  GEOKV_RETURN_IF_ERROR(CheckRange("retry_ms", o.retry_ms, 1, kIntervalMsCap));
  GEOKV_RETURN_IF_ERROR(CheckRange("linger_ms", o.linger_ms, 0, kIntervalMsCap));
  GEOKV_RETURN_IF_ERROR(CheckRange("receive_batch_max", static_cast<int64_t>(o.receive_batch_max),
                                   1, 1 << 20));
  GEOKV_RETURN_IF_ERROR(WanEmulator::Validate(o.wan));
  for (const auto& [id, peer] : o.peers) {
    GEOKV_RETURN_IF_ERROR(CheckPeer(o.self, id, peer, o.curve.enabled));
  }
  if (o.curve.enabled) {
    if (o.curve.secret_key_file.empty()) {
      return ConfigError("curve.secret_key_file", "required when CURVE is on");
    }
    if (o.curve.public_key_file.empty()) {
      return ConfigError("curve.public_key_file", "required when CURVE is on");
    }
  }
  return Status::Ok();
}

constexpr size_t kRoutingNonceHexDigits = 16;

// "n<decimal>" or "n<decimal>/<16 hex digits>" (what out_ announces) -> id; false for
// anything else.
bool ParseRoutingId(std::string_view rid, NodeId* id) {
  if (const size_t slash = rid.find('/'); slash != std::string_view::npos) {
    const std::string_view nonce = rid.substr(slash + 1);
    if (nonce.size() != kRoutingNonceHexDigits ||
        nonce.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
      return false;
    }
    rid = rid.substr(0, slash);
  }
  if (rid.size() < 2 || rid.size() > 11 || rid[0] != 'n') return false;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(rid.data() + 1, rid.data() + rid.size(), v);
  if (ec != std::errc() || end != rid.data() + rid.size()) return false;
  if (v > std::numeric_limits<NodeId>::max()) return false;
  *id = static_cast<NodeId>(v);
  // One spelling per id ("n05" is not n5), so the identity check cannot be dodged.
  return rid == ZmqTransport::RoutingId(*id);
}


// How a dead peer connection is noticed: TCP keepalive always; ZMTP heartbeats only when
// asked for (see ZmqTransportOptions::heartbeat_ivl_ms for why they are off by default).
void SetLiveness(zmq::socket_t& socket, const ZmqTransportOptions& o) {
  socket.set(zmq::sockopt::tcp_keepalive, 1);
  socket.set(zmq::sockopt::tcp_keepalive_idle, o.tcp_keepalive_idle_s);
  socket.set(zmq::sockopt::tcp_keepalive_intvl, o.tcp_keepalive_interval_s);
  socket.set(zmq::sockopt::tcp_keepalive_cnt, o.tcp_keepalive_count);
  if (o.heartbeat_ivl_ms > 0) {
    socket.set(zmq::sockopt::heartbeat_ivl, o.heartbeat_ivl_ms);
    socket.set(zmq::sockopt::heartbeat_timeout, o.heartbeat_timeout_ms);
  }
}

}  // namespace

struct ZmqTransport::Sockets {
  zmq::context_t context{1};
  zmq::socket_t in;
  zmq::socket_t out;
  zmq::socket_t zap;      // open only with CURVE
  zmq::socket_t wake_rx;  // I/O thread
  zmq::socket_t wake_tx;  // callers, under wake_mu_
};

std::string ZmqTransport::RoutingId(NodeId id) { return "n" + std::to_string(id); }

int64_t ZmqTransport::NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {
WanOptions WithLocalRegion(WanOptions wan, const std::string& region) {
  wan.local_region = region;
  return wan;
}
}  // namespace

ZmqTransport::ZmqTransport(ZmqTransportOptions options)
    : options_(std::move(options)), wan_(WithLocalRegion(options_.wan, options_.region)) {}

StatusOr<std::unique_ptr<ZmqTransport>> ZmqTransport::Start(ZmqTransportOptions options) {
  options.wan.local_region = options.region;
  GEOKV_RETURN_IF_ERROR(Validate(options));
  std::unique_ptr<ZmqTransport> t(new ZmqTransport(std::move(options)));
  GEOKV_RETURN_IF_ERROR(t->Open());
  // Starting the thread publishes every socket created by Open to it (thread start is a
  // synchronisation point); from here on only the I/O thread touches them.
  t->io_thread_ = std::thread([raw = t.get()] { raw->Run(); });
  return t;
}

Status ZmqTransport::Open() {
  const ZmqTransportOptions& o = options_;
  if (o.curve.enabled) {
    if (!zmq_has("curve")) return Status(Code::kConfig, "curve: libzmq was built without CURVE");
    StatusOr<std::string> secret = ReadCurveKeyFile(o.curve.secret_key_file);
    if (!secret.ok()) return secret.status();
    StatusOr<std::string> pub = ReadCurveKeyFile(o.curve.public_key_file);
    if (!pub.ok()) return pub.status();
    StatusOr<std::string> derived = CurvePublicFromSecret(*secret);
    if (!derived.ok()) return derived.status();
    if (*derived != *pub) {
      return ConfigError("curve.public_key_file", o.curve.public_key_file +
                                                      " does not belong to the secret key in " +
                                                      o.curve.secret_key_file);
    }
    curve_secret_z85_ = *secret;
    curve_public_z85_ = *pub;
    for (const std::string& key : o.curve.allowed_public_keys_z85) {
      if (Status s = CheckZ85Key(key); !s.ok()) {
        return ConfigError("curve.allowed_public_keys", s.message());
      }
      allowed_keys_.insert(key);
    }
    if (!o.curve.allowed_public_keys_file.empty()) {
      StatusOr<std::vector<std::string>> keys = ReadCurveKeyListFile(o.curve.allowed_public_keys_file);
      if (!keys.ok()) return keys.status();
      allowed_keys_.insert(keys->begin(), keys->end());
    }
    if (allowed_keys_.empty()) {
      // Without a ZAP handler libzmq lets any client key in; an empty allowlist would mean
      // exactly that, so it is refused rather than silently running open.
      return ConfigError("curve.allowed_public_keys",
                         "CURVE is on but the allowlist is empty; refusing to start an "
                         "endpoint that would accept any client key");
    }
  }

  {
    // A fresh, unguessable name for this instance's connections (see the header).
    unsigned char nonce[kRoutingNonceHexDigits / 2];
    randombytes_buf(nonce, sizeof nonce);
    static constexpr char kHex[] = "0123456789abcdef";
    announced_id_ = RoutingId(o.self) + "/";
    for (unsigned char b : nonce) {
      announced_id_ += kHex[b >> 4];
      announced_id_ += kHex[b & 15];
    }
  }
  auto s = std::make_unique<Sockets>();
  const int64_t frame_bytes_max = static_cast<int64_t>(o.message_bytes_max + kFrameHeaderBytes);
  try {
    if (o.curve.enabled) {
      // Bound before the ROUTER accepts anything, so no handshake can run without it.
      s->zap = zmq::socket_t(s->context, zmq::socket_type::rep);
      s->zap.set(zmq::sockopt::linger, 0);
      s->zap.bind(kZapEndpoint);
      std::lock_guard<std::mutex> lock(auth_mu_);
      authorizer_ = std::make_shared<const ZapAuthorizer>(allowed_keys_);
    }
    s->wake_rx = zmq::socket_t(s->context, zmq::socket_type::pair);
    s->wake_rx.set(zmq::sockopt::linger, 0);
    s->wake_rx.bind(kWakeEndpoint);
    s->wake_tx = zmq::socket_t(s->context, zmq::socket_type::pair);
    s->wake_tx.set(zmq::sockopt::linger, 0);
    s->wake_tx.connect(kWakeEndpoint);

    s->in = zmq::socket_t(s->context, zmq::socket_type::router);
    // Announced to peers in the handshake. Their out_ sockets use ZMQ_IMMEDIATE, under
    // which libzmq 4.3 names the pipe by this announced id (not by ZMQ_CONNECT_ROUTING_ID),
    // so without it a peer would never be addressable.
    s->in.set(zmq::sockopt::routing_id, RoutingId(o.self));
    s->in.set(zmq::sockopt::rcvhwm, o.receive_hwm_messages);
    s->in.set(zmq::sockopt::maxmsgsize, frame_bytes_max);
    s->in.set(zmq::sockopt::linger, o.linger_ms);
    // No handover: a new connection announcing a live peer's name is parked by libzmq
    // until that peer's connection is gone, never given its traffic.
    s->in.set(zmq::sockopt::router_handover, 0);
    SetLiveness(s->in, o);
    if (o.curve.enabled) {
      s->in.set(zmq::sockopt::curve_server, 1);
      s->in.set(zmq::sockopt::curve_secretkey, curve_secret_z85_);
      s->in.set(zmq::sockopt::zap_domain, kZapDomain);
    }

    s->out = zmq::socket_t(s->context, zmq::socket_type::router);
    s->out.set(zmq::sockopt::routing_id, announced_id_);
    s->out.set(zmq::sockopt::router_mandatory, 1);
    // A restarted peer may reconnect before libzmq has noticed that the old connection is
    // dead; handover lets the new pipe take the peer's name instead of being ignored.
    s->out.set(zmq::sockopt::router_handover, 1);
    s->out.set(zmq::sockopt::immediate, 1);
    s->out.set(zmq::sockopt::sndhwm, o.send_hwm_messages);
    s->out.set(zmq::sockopt::maxmsgsize, frame_bytes_max);
    s->out.set(zmq::sockopt::reconnect_ivl, o.reconnect_ivl_ms);
    s->out.set(zmq::sockopt::reconnect_ivl_max, o.reconnect_ivl_max_ms);
    s->out.set(zmq::sockopt::linger, o.linger_ms);
    SetLiveness(s->out, o);
    if (o.curve.enabled) {
      s->out.set(zmq::sockopt::curve_publickey, curve_public_z85_);
      s->out.set(zmq::sockopt::curve_secretkey, curve_secret_z85_);
    }
  } catch (const zmq::error_t& e) {
    return IOError(std::string("creating sockets: ") + e.what());
  }
  try {
    s->in.bind(o.bind_endpoint);
    bound_endpoint_ = s->in.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return IOError("bind_endpoint " + o.bind_endpoint + ": " + e.what());
  }
  sockets_ = std::move(s);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, peer] : o.peers) {
      peers_.emplace(id, PeerState{peer,
                                   PeerQueue(o.peer_queue_messages_max, o.peer_queue_bytes_max),
                                   0});
      peer_ops_.push_back(PeerOp{true, id, peer});
    }
  }
  spdlog::debug("transport n{} bound {} with {} peers{}", o.self, bound_endpoint_,
                o.peers.size(), o.curve.enabled ? ", CURVE on" : "");
  return Status::Ok();
}

ZmqTransport::~ZmqTransport() { Stop(options_.linger_ms); }

void ZmqTransport::Stop(int deadline_ms) {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopped_) {
      stopped_ = true;
      stop_linger_ms_ = std::clamp(deadline_ms, 0, options_.linger_ms);
    }
  }
  if (io_thread_.joinable()) {
    Wake();
    io_thread_.join();
  }
  in_cv_.notify_all();
}

void ZmqTransport::Wake() {
  if (wake_pending_.exchange(true)) return;  // the I/O thread has a wakeup coming already
  std::lock_guard<std::mutex> lock(wake_mu_);
  // A full pipe means wakeups are pending anyway; the I/O thread also wakes every
  // kPollSliceMsMax, so a lost wakeup costs latency, never correctness.
  zmq_send(sockets_->wake_tx.handle(), "", 0, ZMQ_DONTWAIT);
}

Status ZmqTransport::Send(NodeId to, std::string_view bytes) {
  if (bytes.size() > options_.message_bytes_max) {
    return InvalidArgument("message of " + std::to_string(bytes.size()) +
                           " bytes exceeds message_bytes_max " +
                           std::to_string(options_.message_bytes_max));
  }
  if (to == options_.self) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return Status(Code::kUnavailable, "transport stopped");
    }
    std::unique_lock<std::mutex> lock(in_mu_);
    if (inbound_.size() >= options_.inbound_queue_messages_max ||
        inbound_bytes_ + bytes.size() > options_.inbound_queue_bytes_max) {
      lock.unlock();
      Count(dropped_queue_full_);
      return Status(Code::kBusy, "inbound queue full (message to self)");
    }
    PushInboundLocked(Event{to, std::string(bytes)});
    lock.unlock();
    in_cv_.notify_one();
    Count(sent_);
    Count(sent_bytes_, bytes.size());
    Count(received_);
    Count(received_bytes_, bytes.size());
    return Status::Ok();
  }
  StatusOr<std::string> frame = EncodeFrame(options_.self, bytes, options_.message_bytes_max);
  if (!frame.ok()) return frame.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return Status(Code::kUnavailable, "transport stopped");
    auto it = peers_.find(to);
    if (it == peers_.end()) {
      return InvalidArgument("node " + std::to_string(to) + " is not in the peer table");
    }
    PeerState& peer = it->second;
    WanEmulator::Decision d = wan_.OnSend(peer.info.region);
    if (d.verdict == WanEmulator::Verdict::kDropPartition) {
      Count(dropped_partition_);
      return Status::Ok();  // as a real partition: the sender cannot tell
    }
    if (d.verdict == WanEmulator::Verdict::kDropLoss) {
      Count(dropped_wan_loss_);
      return Status::Ok();
    }
    const int64_t release_us = NowUs() + d.delay_us;
    const int64_t expire_us = release_us + options_.queue_ttl_ms * 1000;
    if (!peer.queue.TryPush(release_us, expire_us, std::move(*frame))) {
      Count(dropped_queue_full_);
      return Status(Code::kBusy, "queue to node " + std::to_string(to) + " is full (" +
                                     std::to_string(peer.queue.size()) + " messages, " +
                                     std::to_string(peer.queue.bytes()) + " bytes)");
    }
  }
  Wake();
  return Status::Ok();
}

bool ZmqTransport::Poll(Event* out, int timeout_ms) {
  timeout_ms = std::max(timeout_ms, 0);
  std::unique_lock<std::mutex> lock(in_mu_);
  if (inbound_.empty() && timeout_ms > 0) {
    in_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] {
      if (!inbound_.empty()) return true;
      std::lock_guard<std::mutex> l(mu_);
      return stopped_;
    });
  }
  if (inbound_.empty()) return false;
  *out = std::move(inbound_.front());
  inbound_.pop_front();
  inbound_bytes_ -= out->bytes.size();
  if (auto it = inbound_bytes_by_peer_.find(out->from); it != inbound_bytes_by_peer_.end()) {
    it->second -= out->bytes.size();
    if (it->second == 0) inbound_bytes_by_peer_.erase(it);
  }
  // Resume reading once half the queue is free (hysteresis: one wakeup per half queue,
  // not one per message).
  bool resume = reader_paused_ && inbound_.size() <= options_.inbound_queue_messages_max / 2 &&
                inbound_bytes_ <= options_.inbound_queue_bytes_max / 2;
  if (resume) reader_paused_ = false;
  lock.unlock();
  if (resume) Wake();
  return true;
}

void ZmqTransport::PushInboundLocked(Event ev) {
  inbound_bytes_ += ev.bytes.size();
  inbound_bytes_by_peer_[ev.from] += ev.bytes.size();
  if (inbound_bytes_ > inbound_bytes_peak_.load(std::memory_order_relaxed)) {
    inbound_bytes_peak_.store(inbound_bytes_, std::memory_order_relaxed);
  }
  inbound_.push_back(std::move(ev));
}

Status ZmqTransport::ReloadCurveAllowlist() {
  if (!options_.curve.enabled) return InvalidArgument("CURVE is off: there is no allowlist to reload");
  std::set<std::string> keys;
  for (const std::string& key : options_.curve.allowed_public_keys_z85) keys.insert(key);
  if (!options_.curve.allowed_public_keys_file.empty()) {
    StatusOr<std::vector<std::string>> file = ReadCurveKeyListFile(options_.curve.allowed_public_keys_file);
    if (!file.ok()) return file.status();
    keys.insert(file->begin(), file->end());
  }
  if (keys.empty()) {
    return ConfigError("curve.allowed_public_keys",
                       "the reloaded allowlist is empty; keeping the previous one");
  }
  const size_t n = keys.size();
  {
    std::lock_guard<std::mutex> lock(auth_mu_);
    authorizer_ = std::make_shared<const ZapAuthorizer>(std::move(keys));
  }
  spdlog::info("transport n{}: CURVE allowlist reloaded ({} keys)", options_.self, n);
  return Status::Ok();
}

Status ZmqTransport::AddPeer(NodeId id, const Peer& peer) {
  GEOKV_RETURN_IF_ERROR(CheckPeer(options_.self, id, peer, options_.curve.enabled));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return Status(Code::kUnavailable, "transport stopped");
    auto it = peers_.find(id);
    if (it == peers_.end()) {
      peers_.emplace(id, PeerState{peer,
                                   PeerQueue(options_.peer_queue_messages_max,
                                             options_.peer_queue_bytes_max),
                                   0});
      peer_ops_.push_back(PeerOp{true, id, peer});
    } else {
      const Peer old = it->second.info;
      it->second.info = peer;
      // Region changes need no reconnection; endpoint or key changes do.
      if (old.endpoint != peer.endpoint || old.curve_public_key_z85 != peer.curve_public_key_z85) {
        peer_ops_.push_back(PeerOp{false, id, old});
        peer_ops_.push_back(PeerOp{true, id, peer});
      }
    }
  }
  Wake();
  return Status::Ok();
}

Status ZmqTransport::RemovePeer(NodeId id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = peers_.find(id);
    if (it == peers_.end()) return NotFound("node " + std::to_string(id) + " is not a peer");
    Count(dropped_stopped_, it->second.queue.Clear());
    peer_ops_.push_back(PeerOp{false, id, it->second.info});
    peers_.erase(it);
  }
  Wake();
  return Status::Ok();
}

PeerTable ZmqTransport::Peers() const {
  std::lock_guard<std::mutex> lock(mu_);
  PeerTable table;
  for (const auto& [id, state] : peers_) table.emplace(id, state.info);
  return table;
}

void ZmqTransport::Partition(std::string_view region, bool cut) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    wan_.Partition(region, cut);
  }
  spdlog::debug("transport n{}: region {} {}", options_.self, region, cut ? "cut" : "reconnected");
  Wake();  // delayed messages across the cut are dropped when due, not early
}

void ZmqTransport::Heal() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    wan_.Heal();
  }
  spdlog::debug("transport n{}: partitions healed", options_.self);
  Wake();
}

Status ZmqTransport::SetWanLink(std::string_view region, const LinkProfile& link) {
  std::lock_guard<std::mutex> lock(mu_);
  return wan_.SetLink(region, link);
}

TransportStats ZmqTransport::Stats() const {
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  TransportStats s;
  s.sent = get(sent_);
  s.sent_bytes = get(sent_bytes_);
  s.received = get(received_);
  s.received_bytes = get(received_bytes_);
  s.dropped_bad = get(dropped_bad_);
  s.dropped_queue_full = get(dropped_queue_full_);
  s.dropped_wan_loss = get(dropped_wan_loss_);
  s.dropped_partition = get(dropped_partition_);
  s.dropped_expired = get(dropped_expired_);
  s.dropped_stopped = get(dropped_stopped_);
  s.send_retries = get(send_retries_);
  s.refused_auth = get(refused_auth_);
  s.dropped_flood = get(dropped_flood_);
  s.inbound_bytes_peak = get(inbound_bytes_peak_);
  {
    std::lock_guard<std::mutex> lock(in_mu_);
    s.inbound_bytes = inbound_bytes_;
  }
  return s;
}

// ---- I/O thread ----

void ZmqTransport::ApplyPeerOps() {
  std::vector<PeerOp> ops;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ops.swap(peer_ops_);
  }
  zmq::socket_t& out = sockets_->out;
  for (const PeerOp& op : ops) {
    try {
      if (op.connect) {
        // Both options apply to the next connect only.
        out.set(zmq::sockopt::connect_routing_id, RoutingId(op.id));
        if (options_.curve.enabled) {
          out.set(zmq::sockopt::curve_serverkey, op.info.curve_public_key_z85);
        }
        out.connect(op.info.endpoint);
      } else {
        out.disconnect(op.info.endpoint);
      }
    } catch (const zmq::error_t& e) {
      // A redial's disconnect finds nothing when libzmq already gave the connection up.
      if (!op.connect && e.num() == ENOENT) continue;
      // Endpoints were validated; what is left (e.g. an unresolvable host) is logged and
      // the peer stays unreachable, its messages expiring as for a dead peer.
      spdlog::warn("transport n{}: {} n{} at {}: {}", options_.self,
                   op.connect ? "connect to" : "disconnect from", op.id, op.info.endpoint,
                   e.what());
    }
  }
}

int64_t ZmqTransport::PumpOutbound(int64_t now_us) {
  int64_t next_us = std::numeric_limits<int64_t>::max();
  void* out = sockets_->out.handle();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, peer] : peers_) {
    const std::string rid = RoutingId(id);
    while (!peer.queue.empty()) {
      const PeerQueue::Entry& e = peer.queue.Front();
      if (e.release_us > now_us) {
        next_us = std::min(next_us, e.release_us);
        break;
      }
      if (e.expire_us <= now_us) {
        peer.queue.PopFront();
        Count(dropped_expired_);
        continue;
      }
      if (wan_.IsCut(peer.info.region)) {  // cut while the message was in flight
        peer.queue.PopFront();
        Count(dropped_partition_);
        continue;
      }
      if (peer.retry_at_us > now_us) {
        next_us = std::min(next_us, peer.retry_at_us);
        break;
      }
      // With ROUTER_MANDATORY the routing-id part fails with EHOSTUNREACH (no connection)
      // or EAGAIN (the peer's pipe is at its high-water mark); nothing is queued then.
      if (zmq_send(out, rid.data(), rid.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        const int err = zmq_errno();
        if (err == EHOSTUNREACH || err == EAGAIN) {
          if (err == EHOSTUNREACH) {
            // libzmq gives a connection up for good when its handshake fails (a CURVE
            // key that was refused, or a peer serving under a key it has since rotated):
            // after an outage this long, dial again with what the peer table says now.
            const int64_t redial_us = std::max<int64_t>(2'000'000, int64_t{options_.reconnect_ivl_max_ms} * 2000);
            if (peer.unreachable_since_us == 0) {
              peer.unreachable_since_us = now_us;
            } else if (now_us - peer.unreachable_since_us >= redial_us) {
              peer_ops_.push_back(PeerOp{false, id, peer.info});
              peer_ops_.push_back(PeerOp{true, id, peer.info});
              peer.unreachable_since_us = now_us;
            }
          }
          peer.retry_at_us = now_us + int64_t{options_.retry_ms} * 1000;
          next_us = std::min(next_us, peer.retry_at_us);
          Count(send_retries_);
          break;
        }
        spdlog::warn("transport n{}: send to n{}: {}", options_.self, id, zmq_strerror(err));
        peer.retry_at_us = now_us + int64_t{options_.retry_ms} * 1000;
        next_us = std::min(next_us, peer.retry_at_us);
        break;
      }
      peer.unreachable_since_us = 0;
      // Once the routing id is accepted the pipe has room for the rest of the message.
      if (zmq_send(out, e.frame.data(), e.frame.size(), ZMQ_DONTWAIT) < 0) {
        spdlog::warn("transport n{}: send body to n{}: {}", options_.self, id,
                     zmq_strerror(zmq_errno()));
      } else {
        Count(sent_);
        Count(sent_bytes_, e.frame.size() - kFrameHeaderBytes);
      }
      peer.queue.PopFront();
    }
  }
  return next_us;
}

void ZmqTransport::ReadInbound() {
  zmq::socket_t& in = sockets_->in;
  for (size_t n = 0; n < options_.receive_batch_max; ++n) {
    {
      std::lock_guard<std::mutex> lock(in_mu_);
      // Room for one more message of the largest size, in count and in bytes.
      if (inbound_.size() >= options_.inbound_queue_messages_max ||
          inbound_bytes_ + options_.message_bytes_max > options_.inbound_queue_bytes_max) {
        reader_paused_ = true;  // Poll wakes us when there is room again
        return;
      }
    }
    zmq::message_t identity;
    zmq::message_t data;
    try {
      if (!in.recv(identity, zmq::recv_flags::dontwait)) return;
      if (!identity.more()) {
        Count(dropped_bad_);
        continue;
      }
      // The parts of one message arrive together: no wait here.
      if (!in.recv(data, zmq::recv_flags::dontwait)) {
        Count(dropped_bad_);
        continue;
      }
      if (data.more()) {  // a peer of ours sends exactly one part
        zmq::message_t rest;
        while (in.get(zmq::sockopt::rcvmore) && in.recv(rest, zmq::recv_flags::dontwait)) {
        }
        Count(dropped_bad_);
        continue;
      }
    } catch (const zmq::error_t& e) {
      spdlog::warn("transport n{}: receive: {}", options_.self, e.what());
      return;
    }

    NodeId from = 0;
    StatusOr<FrameView> frame = DecodeFrame(data.to_string_view(), options_.message_bytes_max);
    if (!ParseRoutingId(identity.to_string_view(), &from) || !frame.ok() ||
        frame->sender != from) {
      Count(dropped_bad_);
      spdlog::debug("transport n{}: dropped bad message: {}", options_.self,
                    frame.ok() ? "sender does not match routing id" : frame.status().ToString());
      continue;
    }
    bool known = false;
    bool cut = false;
    bool key_ok = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = peers_.find(from);
      if (it != peers_.end()) {
        known = true;
        cut = wan_.IsCut(it->second.info.region);
        if (options_.curve.enabled) {
          // The ZAP handler set User-Id to the client's key: a peer must use its own.
          const char* user_id = zmq_msg_gets(data.handle(), "User-Id");
          key_ok = user_id != nullptr && it->second.info.curve_public_key_z85 == user_id;
        }
      }
    }
    if (!known || !key_ok) {
      Count(dropped_bad_);
      continue;
    }
    if (cut) {
      Count(dropped_partition_);
      continue;
    }
    bool verified = true;
    if (options_.verifier) {
      try {
        verified = options_.verifier(frame->payload);
      } catch (...) {
        verified = false;  // a throwing verifier is a rejecting one; the thread survives
      }
    }
    if (!verified) {
      Count(dropped_bad_);
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(in_mu_);
      auto it = inbound_bytes_by_peer_.find(from);
      const size_t queued = it == inbound_bytes_by_peer_.end() ? 0 : it->second;
      if (queued + frame->payload.size() > options_.inbound_per_peer_bytes_max) {
        // A peer flooding faster than the node consumes: its own messages go (the
        // protocols resend), the other peers keep their share.
        Count(dropped_flood_);
        continue;
      }
      PushInboundLocked(Event{from, std::string(frame->payload)});
    }
    Count(received_);
    Count(received_bytes_, frame->payload.size());
    in_cv_.notify_one();
  }
}

void ZmqTransport::ServeZap() {
  zmq::socket_t& zap = sockets_->zap;
  for (;;) {
    std::vector<std::string> request;
    bool oversize = false;
    try {
      zmq::message_t part;
      if (!zap.recv(part, zmq::recv_flags::dontwait)) return;
      for (;;) {
        if (request.size() < kZapFramesMax && part.size() <= kZapFrameBytesMax) {
          request.push_back(part.to_string());
        } else {
          oversize = true;
        }
        if (!part.more()) break;
        if (!zap.recv(part, zmq::recv_flags::dontwait)) break;
      }
      // A REP socket must answer every request, even a malformed one.
      // An oversized part means this is no ZAP request: keep only version and request id
      // (so the reply still pairs with it) and let the authorizer deny it as malformed.
      if (oversize) request.resize(std::min<size_t>(request.size(), 2));
      std::shared_ptr<const ZapAuthorizer> authorizer;
      {
        std::lock_guard<std::mutex> lock(auth_mu_);
        authorizer = authorizer_;
      }
      std::vector<std::string> reply = authorizer->Handle(request);
      if (!ZapAuthorizer::Accepted(reply)) {
        // Debug only: a refused client retries at its reconnect interval; the counter is
        // what metrics and tests read.
        Count(refused_auth_);
        spdlog::debug("transport n{}: refused a CURVE client: {}", options_.self, reply[3]);
      }
      for (size_t i = 0; i < reply.size(); ++i) {
        zap.send(zmq::buffer(reply[i]),
                 i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
      }
    } catch (const zmq::error_t& e) {
      spdlog::warn("transport n{}: ZAP: {}", options_.self, e.what());
      return;
    }
  }
}

void ZmqTransport::Run() {
  Sockets& s = *sockets_;
  for (;;) {
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping = stopped_;
    }
    ApplyPeerOps();
    const int64_t now_us = NowUs();
    const int64_t next_us = PumpOutbound(now_us);
    if (stopping) break;

    bool paused;
    {
      std::lock_guard<std::mutex> lock(in_mu_);
      paused = reader_paused_;
    }
    zmq_pollitem_t items[3] = {
        {s.wake_rx.handle(), 0, ZMQ_POLLIN, 0},
        {s.in.handle(), 0, static_cast<short>(paused ? 0 : ZMQ_POLLIN), 0},
        {s.zap.handle(), 0, ZMQ_POLLIN, 0},
    };
    const int count = s.zap.handle() != nullptr ? 3 : 2;
    int64_t wait_ms = kPollSliceMsMax;
    if (next_us != std::numeric_limits<int64_t>::max()) {
      wait_ms = std::clamp<int64_t>((next_us - now_us + 999) / 1000, 0, kPollSliceMsMax);
    }
    if (zmq_poll(items, count, static_cast<long>(wait_ms)) < 0) {
      if (zmq_errno() == EINTR) continue;
      spdlog::error("transport n{}: poll: {}", options_.self, zmq_strerror(zmq_errno()));
      break;
    }
    if (items[0].revents & ZMQ_POLLIN) {
      char buf[1];
      while (zmq_recv(s.wake_rx.handle(), buf, sizeof buf, ZMQ_DONTWAIT) >= 0) {
      }
      // Cleared after draining and before the next pump: a Send that finds it false
      // sends a new wakeup, one that finds it true is seen by that pump.
      wake_pending_.store(false);
    }
    if (items[1].revents & ZMQ_POLLIN) ReadInbound();
    if (count == 3 && (items[2].revents & ZMQ_POLLIN)) ServeZap();
  }

  // Shutdown: one last pump ran above; whatever is still queued is dropped and counted.
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, peer] : peers_) Count(dropped_stopped_, peer.queue.Clear());
  }
  // Linger bounds how long close waits for frames already handed to libzmq.
  try {
    s.out.set(zmq::sockopt::linger, stop_linger_ms_);
    s.in.set(zmq::sockopt::linger, 0);
  } catch (const zmq::error_t&) {
  }
  s.out.close();
  s.in.close();
  s.zap.close();
  s.wake_rx.close();
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    s.wake_tx.close();
  }
  s.context.close();  // returns once the linger above has run out
}

}  // namespace geokv::transport
