// Transport: how a node's single event loop talks to its peers, as opaque byte messages.
//
// The node (core) owns exactly one Transport and is its only caller for Send/Poll. Two
// implementations: ZmqTransport (ZeroMQ, real threads, optional WAN emulation and CURVE)
// and, later, an adapter over the deterministic simulator (core/sim/network.h). The
// interface stays small and byte-oriented so that both fit: no protocol types, no
// FlatBuffers, no threads in the contract beyond "Send never blocks, Poll has a deadline".
//
// Delivery contract (what the protocols may assume, and no more): a message is delivered
// at most once, intact (framing + checksum + the caller's verifier), from the node id that
// the transport authenticated as far as its configuration allows. Messages may be lost
// (peer down, partition, emulated loss, expiry), delayed and, with emulated jitter,
// reordered. Paxos and the CRDT disseminator tolerate all of that by design; what they are
// never given is a corrupted or forged-looking message.
//
// Ownership: the caller owns the Transport; Send copies the bytes; Poll hands an Event whose
// bytes the caller then owns.
// Thread-safety: every method of an implementation may be called from any thread (the
// ZeroMQ one has its own I/O thread); the intended use is one event-loop thread calling
// Send/Poll and an admin path calling Partition/Heal/AddPeer.
#ifndef GEOKV_REPLICATION_TRANSPORT_TRANSPORT_H_
#define GEOKV_REPLICATION_TRANSPORT_TRANSPORT_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "base/status.h"

namespace geokv::transport {

// Same width as paxos::Ballot::node: a node id is unique in the cluster.
using NodeId = uint32_t;

// One entry of the peer table.
struct Peer {
  std::string endpoint;  // ZeroMQ endpoint of the peer's transport, "tcp://host:port"
  std::string region;    // where the peer is; WAN emulation and partitions are per region
  // The peer's CURVE public key (40 Z85 characters). Required when CURVE is on: it is the
  // server key we connect with, so a man in the middle cannot pose as the peer.
  std::string curve_public_key_z85;
};

using PeerTable = std::map<NodeId, Peer>;

// One inbound message, already checked (size bound, checksum, verifier).
struct Event {
  NodeId from = 0;
  std::string bytes;  // the payload, as the sender passed it to Send
};

// Counters since start. Monotone; read as a snapshot (fields are not mutually atomic).
struct TransportStats {
  uint64_t sent = 0;                // messages handed to the wire
  uint64_t sent_bytes = 0;          // payload bytes of `sent`
  uint64_t received = 0;            // messages delivered to the inbound queue
  uint64_t received_bytes = 0;      // payload bytes of `received`
  uint64_t dropped_bad = 0;         // inbound: malformed, bad checksum, verifier said no,
                                    // unknown sender or sender/identity mismatch
  uint64_t dropped_queue_full = 0;  // Send refused with kBusy: the peer's queue was full
  uint64_t dropped_wan_loss = 0;    // emulated loss
  uint64_t dropped_partition = 0;   // emulated partition (outbound or inbound)
  uint64_t dropped_expired = 0;     // waited longer than the queue TTL for an unreachable peer
  uint64_t dropped_stopped = 0;     // still queued when the transport stopped
  uint64_t send_retries = 0;        // a peer was unreachable or its socket buffer full
  uint64_t refused_auth = 0;        // CURVE handshakes refused (key not on the allowlist)
  uint64_t dropped_flood = 0;       // inbound: the sending peer already had its share of
                                    // the inbound queue's bytes
  uint64_t inbound_bytes = 0;       // payload bytes waiting for Poll now (a gauge)
  uint64_t inbound_bytes_peak = 0;  // the most inbound_bytes has ever been
};

class Transport {
 public:
  virtual ~Transport() = default;

  // This node's id (the sender of everything it sends).
  virtual NodeId self() const = 0;

  // Queues `bytes` for `to`; never blocks. Policy when things go wrong:
  //   kInvalidArgument  `to` is not in the peer table, or bytes exceed the message bound;
  //   kBusy             the peer's bounded queue is full (counted dropped_queue_full); the
  //                     message is NOT queued: the caller decides (a protocol message is
  //                     simply lost, which the protocols tolerate; a client reply can be
  //                     retried on a later tick);
  //   kUnavailable      the transport is stopped.
  // OK means queued, not delivered: emulated loss, partitions, expiry and peer crashes can
  // still lose it, and they are counted. A message to self() skips the wire and the WAN
  // emulation and goes straight to the inbound queue (kBusy when that queue is full).
  virtual Status Send(NodeId to, std::string_view bytes) = 0;

  // Waits up to timeout_ms (0 or negative: do not wait) for an inbound event; true when
  // *out was filled. After Stop, still returns what had arrived, then false at once.
  // The inbound queue is bounded; while it is full the transport stops reading from the
  // network, so back-pressure reaches the senders' queues instead of silently dropping.
  virtual bool Poll(Event* out, int timeout_ms) = 0;

  // Adds or replaces a peer (membership changes). kInvalidArgument for self() or a bad
  // entry; kConfig when CURVE is on and the peer has no public key.
  virtual Status AddPeer(NodeId id, const Peer& peer) = 0;
  // Removes a peer; its queued messages are dropped (dropped_stopped). kNotFound if absent.
  virtual Status RemovePeer(NodeId id) = 0;
  virtual PeerTable Peers() const = 0;

  // Emulated partitions (the admin command of `geokv local`): while `region` is cut, no
  // message crosses between it and any other region, in either direction, including those
  // already delayed in flight. Links inside one region are never cut.
  virtual void Partition(std::string_view region, bool cut) = 0;
  // Removes every emulated partition.
  virtual void Heal() = 0;

  virtual TransportStats Stats() const = 0;
};

}  // namespace geokv::transport

#endif  // GEOKV_REPLICATION_TRANSPORT_TRANSPORT_H_
