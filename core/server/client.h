// Client: talks to geokv nodes over ZeroMQ with the client protocol (node.fbs Request /
// Response), for the C ABI's geokv_connect, the CLI and tests.
//
// A client sends each request to one node (any node serves any key: a follower forwards
// strong operations to the shard leader). Outcomes, as geokv.h documents them:
//  - kUnavailable (or kBusy): the node refused before anything took effect; the request
//    moves on to the next endpoint at once.
//  - kTimeout: no answer within timeout_ms (or the node's own deadline passed); a write
//    may or may not have been applied. The next attempt, and every later request, starts
//    at the next endpoint (a paused or dead node costs one timeout, not one per request).
//    Reads are re-sent there. A write is re-sent there only when that is safe whatever
//    the key's mode (Resendable below) and always under its session; otherwise the call
//    fails with kTimeout and the caller decides.
// Every write carries a session: a random client id and a sequence number (per write, the
// same on every re-send), which the cluster uses as the Paxos session so that a re-sent
// strong write is applied once. EINTR is retried, never reported.
//
// Concurrency: one Client carries many requests at once. Each concurrent call runs on a
// lane: its own sockets (one per endpoint, sharing the Client's one ZeroMQ context and I/O
// thread) and its own session, so that each session has at most one write in flight and
// exactly-once holds (a session keeps only its highest applied sequence number). Lanes are
// made on demand, up to kLanesMax; beyond that a call waits for a free lane. A single
// thread always reuses the same lane (and session).
//
// Thread-safety: Call may be called from any number of threads at once. Ownership:
// Connect returns the only owner; destroy it only once no call is running.
#ifndef GEOKV_CORE_SERVER_CLIENT_H_
#define GEOKV_CORE_SERVER_CLIENT_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "core/engine/request.h"

namespace geokv {

struct ClientOptions {
  std::vector<std::string> endpoints;  // "tcp://host:port", tried in order
  int64_t timeout_ms = 5000;           // per request, unless the request sets its own
  // CURVE: the servers' public key(s) (Z85, one per endpoint or one for all) and this
  // client's key pair. Empty: plain TCP.
  std::vector<std::string> server_public_keys_z85;
  std::string public_key_z85;
  std::string secret_key_z85;
};

class Client {
 public:
  // Validates options (kInvalidArgument naming the problem) and creates the sockets; does
  // not wait for a connection (ZeroMQ connects in the background).
  static StatusOr<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `request` and waits for its response (request.id, and for a write client_id and
  // seq, are assigned here). A non-OK transport outcome is returned as the Response's
  // status (kTimeout, kUnavailable).
  Response Call(Request request);

  // Whether a write of this op may be re-sent to another node after an unknown outcome:
  // applied once under its session when the key is strong, and idempotent in every
  // eventual mode too. add (a CRDT counter is not idempotent), mv_put (a second sibling)
  // and policy_remove (a second one reports "no rule") are not.
  static bool Resendable(Op op);

  // The session of the lane a single-threaded caller uses.
  uint64_t client_id() const;

  // Concurrent calls beyond this many wait for a free lane.
  static constexpr size_t kLanesMax = 256;

 private:
  struct Lane;
  struct Context;
  explicit Client(ClientOptions options);
  StatusOr<std::unique_ptr<Lane>> NewLane();
  // Takes an idle lane (the most recently used first) or makes one.
  StatusOr<std::unique_ptr<Lane>> Acquire();
  void Release(std::unique_ptr<Lane> lane);
  Response CallOn(Lane& lane, Request request);

  const ClientOptions options_;
  std::unique_ptr<Context> context_;  // the one ZeroMQ context; outlives every lane
  std::mutex mu_;
  std::condition_variable lane_freed_;
  std::vector<std::unique_ptr<Lane>> idle_;  // guarded by mu_
  size_t lanes_ = 0;                         // made so far; guarded by mu_
  uint64_t first_client_id_ = 0;             // set at Connect
  std::atomic<size_t> preferred_{0};         // endpoint that answered last
};

}  // namespace geokv

#endif  // GEOKV_CORE_SERVER_CLIENT_H_
