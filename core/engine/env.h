// Env: everything the engine needs from the world, so that one engine runs both in
// production (ZeroMQ, WiredTiger, real time) and in the deterministic simulator (virtual
// time, a simulated network, MemoryStorage).
//
// The engine calls an Env only from its own event-loop thread. Implementations say their
// own thread-safety; the engine needs none beyond that.
#ifndef GEOKV_CORE_ENGINE_ENV_H_
#define GEOKV_CORE_ENGINE_ENV_H_

#include <cstdint>
#include <string>

#include "core/engine/storage.h"

namespace geokv {

class Env {
 public:
  virtual ~Env() = default;
  // The monotonic clock, microseconds since an arbitrary start: timeouts, leases and
  // deadlines (steady_clock in production; virtual, with drift, in the simulator). Read it
  // at every decision that depends on time: the process may have been paused since the
  // last reading.
  virtual int64_t NowUs() = 0;
  // The wall clock, microseconds since the Unix epoch: the physical part of hybrid logical
  // clocks (LWW stamps). It may jump and may disagree with other nodes' by seconds; nothing
  // that safety depends on reads it.
  virtual int64_t WallUs() = 0;
  // Queues `bytes` for node `to`; never blocks. Delivery is best effort: the protocols
  // resend what matters.
  virtual void Send(uint32_t to, std::string bytes) = 0;
  // Makes node `node` (of region `region`, reachable at `peer_address`) a peer that Send
  // reaches. The engine calls it for every node of its cluster map when it opens and
  // whenever the map gains a node: a node added to a running cluster. Idempotent: a node
  // the host already reaches keeps its connection. Failures (a peer the host may not
  // admit, e.g. without its CURVE key) are the host's to report; Sends to it are lost.
  virtual void ConnectPeer(uint32_t node, const std::string& region, const std::string& peer_address) = 0;
  // The node's durable store.
  virtual storage::Storage& Store() = 0;
  // A random number (seeded in the simulator, from the OS in production).
  virtual uint64_t Random() = 0;
};

}  // namespace geokv

#endif  // GEOKV_CORE_ENGINE_ENV_H_
