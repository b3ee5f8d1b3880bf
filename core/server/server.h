// Server: a geokv node in production. It hosts the Engine on one event-loop thread and
// gives it its Env: the steady clock, a ZmqTransport to the other regions (with WAN
// emulation and CURVE when configured), WiredTiger, and OS randomness. Clients reach it on
// a ZeroMQ ROUTER socket speaking the client protocol (node.fbs Request/Response); a
// Prometheus text endpoint (cpp-httplib) serves its metrics.
//
// Threads: the event loop owns the Engine and the client socket (STYLE 25: the transport's
// I/O thread and the HTTP thread only hand data over through queues and a snapshot).
//
// Ownership: Start returns the only owner; Stop (or the destructor) stops the loop, the
// transport and the HTTP server, then closes the storage. Thread-safety: Stop and the
// accessors may be called from any thread.
#ifndef GEOKV_CORE_SERVER_SERVER_H_
#define GEOKV_CORE_SERVER_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/status.h"
#include "core/server/config.h"

namespace geokv {

class Server {
 public:
  // Opens the storage, starts the transport, binds the client endpoint and starts the
  // event loop. kConfig when config.cluster is missing or inconsistent (the message names
  // the field); kIOError / kBusy from the storage; kIOError when an endpoint cannot bind.
  // When the node stops because its storage failed (fail-stop: see Engine), the cause is
  // logged at critical level, the metric geokv_node_failed becomes 1, every later request
  // is answered with that failure, and `on_fatal` (if set) is called once on the event-loop
  // thread: a daemon exits non-zero there so that its supervisor restarts it.
  static StatusOr<std::unique_ptr<Server>> Start(const Config& config,
                                                 std::function<void(const Status&)> on_fatal = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Graceful stop: answers nothing new, stops the threads within about a second, closes
  // the store. Idempotent.
  void Stop();

  // The endpoint the client socket is bound to (with the real port when "*" was asked).
  std::string client_endpoint() const;
  // The latest metrics, in the Prometheus text format (refreshed every 500 ms).
  std::string MetricsText() const;

  // Key rotation (docs/security.md): re-reads the CURVE allowlists (clients, admins, and
  // the transport's) and the peers' public keys from `config`, which must describe the same
  // node and cluster with CURVE in the same state; everything else in it is ignored (it
  // needs a restart). Handshakes from now on use the new lists; a client whose key left
  // the lists is refused from its next request on. On error nothing changes. kConfig,
  // kIOError. Thread-safe (SIGHUP in geokvd, and the admin op reload-keys).
  Status ReloadKeys(const Config& config);

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace geokv

#endif  // GEOKV_CORE_SERVER_SERVER_H_
