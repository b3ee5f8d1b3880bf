// Client: talks to geokv nodes over ZeroMQ with the client protocol (node.fbs Request /
// Response), for the C ABI's geokv_connect, the CLI and tests.
//
// A client sends each request to one node (any node serves any key: a follower forwards
// strong operations to the shard leader). When a node does not answer within the
// deadline, or refuses with kUnavailable, the client tries the next endpoint for reads
// and for refusals; a write that timed out is never retried (its outcome is unknown) and
// fails with kTimeout.
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

  // Sends `request` and waits for its response (request.id is assigned here). A non-OK
  // transport outcome is returned as the Response's status (kTimeout, kUnavailable).
  Response Call(Request request);

 private:
  struct Sockets;
  explicit Client(ClientOptions options);

  const ClientOptions options_;
  std::mutex mu_;
  std::unique_ptr<Sockets> sockets_;  // guarded by mu_
  uint64_t next_id_ = 1;              // guarded by mu_
  size_t preferred_ = 0;              // endpoint that answered last; guarded by mu_
};

}  // namespace geokv

#endif  // GEOKV_CORE_SERVER_CLIENT_H_
