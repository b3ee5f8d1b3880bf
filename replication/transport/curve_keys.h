// CURVE key files: generation, loading and validation of the Z85 text keys that ZeroMQ's
// CURVE mechanism uses (40 characters for a 32-byte key).
//
// File format: the Z85 key on the first line; surrounding whitespace is ignored. A secret
// key file is written with mode 0600. Allowlist files hold one public key per line; empty
// lines and lines starting with '#' are skipped.
//
// All functions are thread-safe (no shared state).
#ifndef GEOKV_REPLICATION_TRANSPORT_CURVE_KEYS_H_
#define GEOKV_REPLICATION_TRANSPORT_CURVE_KEYS_H_

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace geokv::transport {

inline constexpr size_t kCurveKeyZ85Chars = 40;

struct CurveKeyPair {
  std::string public_z85;
  std::string secret_z85;
};

// kInvalidArgument unless `key` is 40 valid Z85 characters.
Status CheckZ85Key(std::string_view key);

// A fresh key pair (zmq_curve_keypair). kInternal when libzmq has no CURVE support.
StatusOr<CurveKeyPair> GenerateCurveKeyPair();

// The public key that belongs to `secret_z85` (zmq_curve_public).
StatusOr<std::string> CurvePublicFromSecret(std::string_view secret_z85);

// Writes a key pair to two files (the secret one with mode 0600); refuses to overwrite an
// existing file (kInvalidArgument) so a key is never replaced by accident. kIOError.
Status WriteCurveKeyPairFiles(const CurveKeyPair& pair, const std::string& secret_path,
                              const std::string& public_path);

// Reads one key from a file. kIOError (cannot read), kConfig (not a valid key, with the
// path in the message). Files larger than 4 KiB are refused.
StatusOr<std::string> ReadCurveKeyFile(const std::string& path);

// Reads an allowlist file (one key per line). kIOError, kConfig naming path and line.
// Files larger than 1 MiB are refused.
StatusOr<std::vector<std::string>> ReadCurveKeyListFile(const std::string& path);

}  // namespace geokv::transport

#endif  // GEOKV_REPLICATION_TRANSPORT_CURVE_KEYS_H_
