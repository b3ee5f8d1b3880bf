// ZapAuthorizer: the decision half of the in-process ZAP handler (ZeroMQ RFC 27, version
// "1.0"): a request (list of frames) in, a reply (list of frames) out. Pure logic, so it is
// tested without sockets; ZmqTransport's I/O thread owns the REP socket bound on
// inproc://zeromq.zap.01 and feeds it.
//
// Policy: only mechanism CURVE, and only client public keys on the allowlist, get "200".
// Everything else gets "400" (denied) or "500" (malformed request). The reply's user id is
// the client's public key in Z85, which libzmq then attaches to every message of that
// connection as the "User-Id" property: the transport uses it to check that a peer
// speaks with the key the peer table has for it.
//
// Why this exists at all: with CURVE and no ZAP handler, libzmq accepts any client key.
//
// Ownership: a value; owns a copy of the allowlist. Thread-safety: const methods only, safe
// to share.
#ifndef GEOKV_REPLICATION_TRANSPORT_ZAP_AUTHORIZER_H_
#define GEOKV_REPLICATION_TRANSPORT_ZAP_AUTHORIZER_H_

#include <set>
#include <string>
#include <utility>
#include <vector>

namespace geokv::transport {

class ZapAuthorizer {
 public:
  // `allowed_public_keys_z85`: the allowlist (40-character Z85 keys).
  explicit ZapAuthorizer(std::set<std::string> allowed_public_keys_z85)
      : allowed_(std::move(allowed_public_keys_z85)) {}

  // The 6-frame reply to `request`: version, request id, status code, status text, user
  // id, metadata. A request that is not a well-formed RFC 27 CURVE request is denied.
  std::vector<std::string> Handle(const std::vector<std::string>& request) const;

  // Status code of a reply (frame 2), for counting.
  static bool Accepted(const std::vector<std::string>& reply) {
    return reply.size() > 2 && reply[2] == "200";
  }

 private:
  // Constant after construction.
  const std::set<std::string> allowed_;
};

}  // namespace geokv::transport

#endif  // GEOKV_REPLICATION_TRANSPORT_ZAP_AUTHORIZER_H_
