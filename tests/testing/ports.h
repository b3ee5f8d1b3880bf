// Loopback ports for tests that start servers.
#ifndef GEOKV_TESTS_TESTING_PORTS_H_
#define GEOKV_TESTS_TESTING_PORTS_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

namespace geokv::testing {

// Whether a TCP port on loopback can be bound now (another process may take it right after:
// callers pick again when their own bind fails).
inline bool PortFree(int port) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(s);
  return ok;
}

}  // namespace geokv::testing

#endif  // GEOKV_TESTS_TESTING_PORTS_H_
