#include "replication/transport/frame.h"

#include <sodium.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <mutex>

namespace geokv::transport {
namespace {

constexpr size_t kChecksumOffset = 16;

void EnsureSodium() {
  // sodium_init is itself thread-safe and idempotent; the once_flag only avoids the call.
  static std::once_flag once;
  std::call_once(once, [] {
    int rc = sodium_init();
    // -1 is the only failure (no entropy source); hashing does not need entropy, but a
    // half-initialised libsodium is a broken invariant, not an operational error.
    assert(rc >= 0);
    (void)rc;
  });
}

void PutU32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

uint32_t GetU32(const char* p) {
  auto b = [p](int i) { return static_cast<uint32_t>(static_cast<uint8_t>(p[i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

// BLAKE2b-128 over header[0, 16) || payload.
void Checksum(std::string_view fields, std::string_view payload,
              unsigned char out[kFrameChecksumBytes]) {
  EnsureSodium();
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, kFrameChecksumBytes);
  crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(fields.data()),
                            fields.size());
  crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(payload.data()),
                            payload.size());
  crypto_generichash_final(&state, out, kFrameChecksumBytes);
}

}  // namespace

StatusOr<std::string> EncodeFrame(NodeId sender, std::string_view payload,
                                  size_t payload_bytes_max) {
  if (payload.size() > payload_bytes_max || payload.size() > kFramePayloadBytesMax) {
    return InvalidArgument("message of " + std::to_string(payload.size()) +
                           " bytes exceeds the bound of " +
                           std::to_string(std::min(payload_bytes_max, kFramePayloadBytesMax)));
  }
  std::string frame(kFrameHeaderBytes + payload.size(), '\0');
  char* p = frame.data();
  std::memcpy(p, kFrameMagic, 4);
  p[4] = static_cast<char>(kFrameVersion);
  PutU32(p + 8, static_cast<uint32_t>(payload.size()));
  PutU32(p + 12, sender);
  std::memcpy(p + kFrameHeaderBytes, payload.data(), payload.size());
  unsigned char sum[kFrameChecksumBytes];
  Checksum(std::string_view(p, kChecksumOffset), payload, sum);
  std::memcpy(p + kChecksumOffset, sum, kFrameChecksumBytes);
  return frame;
}

bool FrameChecksumMatches(std::string_view frame) {
  if (frame.size() < kFrameHeaderBytes) return false;
  unsigned char sum[kFrameChecksumBytes];
  Checksum(frame.substr(0, kChecksumOffset), frame.substr(kFrameHeaderBytes), sum);
  // Constant time is not needed for integrity, but sodium_memcmp is right here anyway.
  return sodium_memcmp(sum, frame.data() + kChecksumOffset, kFrameChecksumBytes) == 0;
}

StatusOr<FrameView> DecodeFrame(std::string_view frame, size_t payload_bytes_max) {
  if (frame.size() < kFrameHeaderBytes) {
    return Corruption("truncated frame: " + std::to_string(frame.size()) + " bytes");
  }
  const size_t bound = std::min(payload_bytes_max, kFramePayloadBytesMax);
  if (frame.size() - kFrameHeaderBytes > bound) {
    return Corruption("oversize frame: " + std::to_string(frame.size()) + " bytes");
  }
  const char* p = frame.data();
  if (std::memcmp(p, kFrameMagic, 4) != 0) return Corruption("bad frame magic");
  if (static_cast<uint8_t>(p[4]) != kFrameVersion) {
    return Status(Code::kVersion,
                  "unknown frame version " + std::to_string(static_cast<uint8_t>(p[4])));
  }
  if (p[5] != 0 || p[6] != 0 || p[7] != 0) return Corruption("reserved frame bits set");
  const uint32_t length = GetU32(p + 8);
  if (length != frame.size() - kFrameHeaderBytes) {
    return Corruption("frame length field " + std::to_string(length) + " does not match " +
                      std::to_string(frame.size() - kFrameHeaderBytes) + " payload bytes");
  }
  if (!FrameChecksumMatches(frame)) return Corruption("frame checksum mismatch");
  return FrameView{GetU32(p + 12), frame.substr(kFrameHeaderBytes)};
}

}  // namespace geokv::transport
