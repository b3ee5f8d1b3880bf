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
// Every write carries this client's session: a random client id (per Client) and a
// sequence number (per write, the same on every re-send), which the cluster uses as the
// Paxos session so that a re-sent strong write is applied once. EINTR is retried, never
// reported.
//
// Thread-safety: Call may be called from several threads; calls are serialized (one
// socket per endpoint). Ownership: Connect returns the only owner.
#ifndef GEOKV_CORE_SERVER_CLIENT_H_
#define GEOKV_CORE_SERVER_CLIENT_H_

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

  uint64_t client_id() const { return client_id_; }

 private:
  struct Sockets;
  explicit Client(ClientOptions options);

  const ClientOptions options_;
  const uint64_t client_id_;  // random, never 0: this client's Paxos session
  std::mutex mu_;
  std::unique_ptr<Sockets> sockets_;  // guarded by mu_
  uint64_t next_id_ = 1;              // guarded by mu_
  uint64_t next_seq_ = 1;             // session sequence of the next write; guarded by mu_
  size_t preferred_ = 0;              // endpoint that answered last; guarded by mu_
};

}  // namespace geokv

#endif  // GEOKV_CORE_SERVER_CLIENT_H_
