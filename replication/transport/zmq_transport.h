// ZmqTransport: the production Transport, over ZeroMQ.
//
// Sockets (all owned by one I/O thread of ours after Start):
//   in_   ROUTER bound on the node's peer endpoint. Receive only. Peers announce a routing
//         id "n<node id>/<16 random hex digits>", new for every transport instance, whose
//         node id must match the sender field of every frame. No ZMQ_ROUTER_HANDOVER: a
//         connection can never take over the name of a live one (a stranger announcing
//         "n2" once took node 2's link over); a restarted peer has a new name anyway, and
//         its dead connection goes when TCP says so. The name is not a credential: CURVE
//         (the key bound to the node id) is; without CURVE the peer port is loopback only
//         unless the operator says insecure (docs/security.md).
//         It announces "n<self>" itself: that is the name its peers' out_ pipes get.
//   out_  ROUTER connected to every peer (ROUTER-to-ROUTER), with ZMQ_CONNECT_ROUTING_ID =
//         the peer's id, so one socket addresses every peer by node id. Send only.
//         ZMQ_ROUTER_MANDATORY + ZMQ_IMMEDIATE turn "peer not connected" and "peer's pipe
//         full" into errors (EHOSTUNREACH / EAGAIN) instead of silent drops or unbounded
//         buffering inside libzmq: the message then stays in our bounded PeerQueue and is
//         retried every retry_ms, until it expires after queue_ttl_ms.
//   zap_  REP on inproc://zeromq.zap.01 when CURVE is on (ZapAuthorizer decides).
//   wake  inproc PAIR: Send/Poll/admin calls wake the I/O thread through it.
// One socket per direction (rather than one ROUTER that binds and connects) avoids two
// pipes with the same routing id when two nodes connect to each other.
//
// Send path: Send() frames the payload (frame.h), asks the WanEmulator for a verdict
// (partition / loss / delay) and pushes the frame into the peer's PeerQueue with its release
// time; the I/O thread sends what is due. Receive path: the I/O thread reads, checks size,
// frame checksum, sender identity (and the CURVE key), the partition table and then the
// caller's verifier, and pushes an Event into the bounded inbound queue. While that queue is
// full the I/O thread stops reading, so ZeroMQ's high-water marks and TCP push back to the
// senders (whose Send then returns kBusy) instead of anything being dropped silently.
//
// Ownership: Start returns the only owner; the destructor stops the I/O thread (Stop).
// The verifier is called on the I/O thread and must not touch protocol state.
// Thread-safety: all public methods are thread-safe.
#ifndef GEOKV_REPLICATION_TRANSPORT_ZMQ_TRANSPORT_H_
#define GEOKV_REPLICATION_TRANSPORT_ZMQ_TRANSPORT_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/status.h"
#include "replication/transport/peer_queue.h"
#include "replication/transport/transport.h"
#include "replication/transport/wan_emulator.h"
#include "replication/transport/zap_authorizer.h"

namespace geokv::transport {

struct CurveOptions {
  bool enabled = false;
  std::string secret_key_file;  // this node's secret key (Z85 text file)
  std::string public_key_file;  // this node's public key; must match the secret key
  // Public keys (Z85) allowed to connect to this node: peers and, later, clients. Keys may
  // be given inline, from a file (one per line), or both. Empty with CURVE on: Start fails.
  std::vector<std::string> allowed_public_keys_z85;
  std::string allowed_public_keys_file;
};

struct ZmqTransportOptions {
  NodeId self = 0;
  std::string region;              // this node's region
  std::string bind_endpoint;       // e.g. "tcp://0.0.0.0:7001"; "tcp://127.0.0.1:*" in tests
  PeerTable peers;                 // must not contain self

  // Inbound check after size and checksum: the protocol's FlatBuffers Verifier. Called on
  // the I/O thread; must be thread-safe with respect to the caller. Null accepts all.
  std::function<bool(std::string_view)> verifier;

  // Limits.
  size_t message_bytes_max = 4u << 20;        // payload bound, both directions (ZMQ_MAXMSGSIZE)
  size_t peer_queue_messages_max = 4096;      // per peer, delayed + waiting
  size_t peer_queue_bytes_max = 64u << 20;    // per peer
  int64_t queue_ttl_ms = 30'000;              // a queued message older than this is dropped
  size_t inbound_queue_messages_max = 8192;   // events waiting for Poll
  size_t inbound_queue_bytes_max = 256u << 20;  // their payload bytes, all peers together
  // Payload bytes one peer may have waiting for Poll; beyond it that peer's messages are
  // dropped (dropped_flood) rather than crowding the other peers out.
  size_t inbound_per_peer_bytes_max = 64u << 20;
  int send_hwm_messages = 1000;               // ZMQ_SNDHWM per peer pipe
  int receive_hwm_messages = 1000;            // ZMQ_RCVHWM per peer pipe
  int reconnect_ivl_ms = 100;                 // ZMQ_RECONNECT_IVL
  int reconnect_ivl_max_ms = 2000;            // ZMQ_RECONNECT_IVL_MAX (exponential backoff)
  // ZMTP heartbeats (0: off, the default). libzmq 4.3.4 can abort the whole process
  // (assertion "!_io_error", stream_engine_base.cpp) when a heartbeat timeout resets a
  // connection with output pending, which a peer paused for longer than the timeout
  // triggers. Dead TCP peers are noticed by TCP keepalive instead; the protocols have
  // heartbeats of their own, and a restarted peer takes its name over (router_handover).
  int heartbeat_ivl_ms = 0;
  int heartbeat_timeout_ms = 3000;
  int tcp_keepalive_idle_s = 10;              // TCP keepalive: probe an idle connection after
  int tcp_keepalive_interval_s = 2;           // this, every interval, and drop it after
  int tcp_keepalive_count = 3;                // count unanswered probes
  int retry_ms = 10;                          // retry interval for an unreachable peer
  int linger_ms = 500;                        // ZMQ_LINGER: bounded flush on close
  size_t receive_batch_max = 256;             // messages read per wakeup before re-checking

  WanOptions wan;      // wan.local_region is taken from `region`
  CurveOptions curve;
};

class ZmqTransport final : public Transport {
 public:
  // Validates options (kConfig naming the field, or kInvalidArgument), loads CURVE keys
  // (kIOError / kConfig), binds (kIOError with the endpoint), connects to the peers and
  // starts the I/O thread.
  static StatusOr<std::unique_ptr<ZmqTransport>> Start(ZmqTransportOptions options);

  // Stops with the default deadline (linger_ms).
  ~ZmqTransport() override;
  ZmqTransport(const ZmqTransport&) = delete;
  ZmqTransport& operator=(const ZmqTransport&) = delete;

  // Stops the I/O thread: messages already due get one last send attempt, then sockets
  // close with ZMQ_LINGER = min(linger_ms, deadline_ms); what is still queued is counted in
  // dropped_stopped. Returns within about deadline_ms. Idempotent; later Sends get
  // kUnavailable, Poll still drains what had arrived. Must not be called from the
  // verifier (it runs on the I/O thread that Stop joins).
  void Stop(int deadline_ms);

  // The endpoint actually bound (ZMQ_LAST_ENDPOINT): the port when bound on "*".
  const std::string& bound_endpoint() const { return bound_endpoint_; }

  // Transport.
  NodeId self() const override { return options_.self; }
  Status Send(NodeId to, std::string_view bytes) override;
  bool Poll(Event* out, int timeout_ms) override;
  Status AddPeer(NodeId id, const Peer& peer) override;
  Status RemovePeer(NodeId id) override;
  PeerTable Peers() const override;
  void Partition(std::string_view region, bool cut) override;
  void Heal() override;
  TransportStats Stats() const override;

  // Changes the emulated link to `region` at run time (kConfig when invalid).
  Status SetWanLink(std::string_view region, const LinkProfile& link);

  // Re-reads the CURVE allowlist (the inline keys and curve.allowed_public_keys_file) for
  // handshakes from now on; a connection already admitted stays (its key is still bound
  // to its node id by the peer table). On error (unreadable, bad or empty list) the old
  // list stays. kConfig / kIOError; kInvalidArgument when CURVE is off.
  Status ReloadCurveAllowlist();

  // Routing id of a node's in_ on the wire: "n<id>" (never starts with a zero byte, which
  // libzmq reserves for generated ids).
  static std::string RoutingId(NodeId id);
  // The routing id this transport's out_ announces to its peers ("n<id>/<random>").
  const std::string& announced_routing_id() const { return announced_id_; }

 private:
  struct Sockets;  // the zmq sockets; defined in the .cc so zmq.hpp stays out of headers

  struct PeerState {
    Peer info;
    PeerQueue queue;
    int64_t retry_at_us = 0;  // no send attempt before this (peer unreachable or full)
    int64_t unreachable_since_us = 0;  // first EHOSTUNREACH of the current outage; 0: none
  };
  struct PeerOp {
    bool connect = true;  // false: disconnect
    NodeId id = 0;
    Peer info;
  };

  explicit ZmqTransport(ZmqTransportOptions options);
  Status Open();
  void Run();
  // Sends what is due; returns the time of the next due entry or retry.
  int64_t PumpOutbound(int64_t now_us);
  void ApplyPeerOps();
  void ReadInbound();
  void ServeZap();
  // Appends to inbound_ and counts its bytes; in_mu_ held.
  void PushInboundLocked(Event ev);
  void Wake();
  void Count(std::atomic<uint64_t>& counter, uint64_t n = 1) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }
  static int64_t NowUs();

  // Constant after construction.
  const ZmqTransportOptions options_;
  std::string bound_endpoint_;  // set by Open before the thread starts
  std::set<std::string> allowed_keys_;
  std::string curve_public_z85_;
  std::string curve_secret_z85_;
  std::string announced_id_;  // out_'s routing id

  std::unique_ptr<Sockets> sockets_;  // used by the I/O thread only (wake_tx: wake_mu_)
  std::thread io_thread_;

  // Protected by mu_.
  mutable std::mutex mu_;
  std::map<NodeId, PeerState> peers_;
  std::vector<PeerOp> peer_ops_;  // for the I/O thread: connects and disconnects to do
  WanEmulator wan_;
  bool stopped_ = false;
  int stop_linger_ms_ = 0;

  // Wakeups: the PAIR socket is shared by callers, hence its own mutex.
  std::mutex wake_mu_;
  std::atomic<bool> wake_pending_{false};

  // Inbound queue, protected by in_mu_.
  mutable std::mutex in_mu_;
  std::condition_variable in_cv_;
  std::deque<Event> inbound_;
  bool reader_paused_ = false;  // the I/O thread stopped reading because inbound_ was full
  size_t inbound_bytes_ = 0;    // payload bytes in inbound_
  std::map<NodeId, size_t> inbound_bytes_by_peer_;

  // The ZAP decisions; replaced by ReloadCurveAllowlist, read by the I/O thread.
  std::mutex auth_mu_;
  std::shared_ptr<const ZapAuthorizer> authorizer_;  // guarded by auth_mu_

  std::mutex stop_mu_;  // serialises Stop callers

  // Counters (TransportStats).
  std::atomic<uint64_t> sent_{0}, sent_bytes_{0}, received_{0}, received_bytes_{0},
      dropped_bad_{0}, dropped_queue_full_{0}, dropped_wan_loss_{0}, dropped_partition_{0},
      dropped_expired_{0}, dropped_stopped_{0}, send_retries_{0}, refused_auth_{0},
      dropped_flood_{0}, inbound_bytes_peak_{0};
};

}  // namespace geokv::transport

#endif  // GEOKV_REPLICATION_TRANSPORT_ZMQ_TRANSPORT_H_
