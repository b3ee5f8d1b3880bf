#include "replication/transport/zap_authorizer.h"

#include <zmq.h>

namespace geokv::transport {

std::vector<std::string> ZapAuthorizer::Handle(const std::vector<std::string>& request) const {
  // RFC 27 request: version, request id, domain, address, identity, mechanism, credentials.
  std::string request_id = request.size() > 1 ? request[1] : std::string();
  auto reply = [&request_id](const char* code, const char* text, std::string user_id) {
    return std::vector<std::string>{"1.0", request_id, code, text, std::move(user_id), ""};
  };
  if (request.size() < 6 || request[0] != "1.0") return reply("500", "malformed ZAP request", "");
  if (request[5] != "CURVE") return reply("400", "only CURVE is accepted", "");
  // CURVE sends exactly one credential: the client's 32-byte long-term public key.
  if (request.size() != 7 || request[6].size() != 32) {
    return reply("500", "malformed CURVE credentials", "");
  }
  char z85[41];
  if (zmq_z85_encode(z85, reinterpret_cast<const uint8_t*>(request[6].data()), 32) == nullptr) {
    return reply("500", "cannot encode client key", "");
  }
  if (allowed_.count(z85) == 0) return reply("400", "client key not on the allowlist", "");
  return reply("200", "OK", z85);
}

}  // namespace geokv::transport
