// geokv-keygen: generates a CURVE key pair for a geokv node or client.
//
//   geokv-keygen <prefix>     writes <prefix>.key (secret, mode 0600) and <prefix>.pub
//
// Existing files are never overwritten. The public key is also printed, ready to be pasted
// into the other nodes' allowlists and peer tables.
#include <cstdio>
#include <string>

#include "replication/transport/curve_keys.h"

int main(int argc, char** argv) {
  if (argc != 2 || argv[1][0] == '\0' || argv[1][0] == '-') {
    std::fprintf(stderr, "usage: geokv-keygen <prefix>   (writes <prefix>.key and <prefix>.pub)\n");
    return 2;
  }
  const std::string prefix = argv[1];
  geokv::StatusOr<geokv::transport::CurveKeyPair> pair = geokv::transport::GenerateCurveKeyPair();
  if (!pair.ok()) {
    std::fprintf(stderr, "geokv-keygen: %s\n", pair.status().ToString().c_str());
    return 1;
  }
  geokv::Status s =
      geokv::transport::WriteCurveKeyPairFiles(*pair, prefix + ".key", prefix + ".pub");
  if (!s.ok()) {
    std::fprintf(stderr, "geokv-keygen: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%s\n", pair->public_z85.c_str());
  return 0;
}
