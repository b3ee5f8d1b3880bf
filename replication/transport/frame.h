// Frame: the envelope of every message between two transports.
//
//   offset size  field
//   0      4     magic "GKVT"
//   4      1     version (kFrameVersion)
//   5      1     flags (reserved, must be 0)
//   6      2     reserved (must be 0)
//   8      4     payload length, big-endian
//   12     4     sender node id, big-endian
//   16     16    checksum: BLAKE2b-128 (libsodium crypto_generichash) of bytes [0, 16)
//                followed by the payload
//   32     n     payload
//
// Why a checksum when TCP and CURVE exist: TCP's 16-bit sum misses real corruption, CURVE
// is optional, and the FlatBuffers Verifier alone accepts most single-byte flips (it checks
// structure, not values). The checksum covers the header fields too, so a flipped length or
// sender is caught as surely as a flipped payload byte.
//
// All functions are pure and thread-safe (libsodium is initialised once, thread-safely).
#ifndef GEOKV_REPLICATION_TRANSPORT_FRAME_H_
#define GEOKV_REPLICATION_TRANSPORT_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "replication/transport/transport.h"

namespace geokv::transport {

inline constexpr char kFrameMagic[4] = {'G', 'K', 'V', 'T'};
inline constexpr uint8_t kFrameVersion = 1;
inline constexpr size_t kFrameChecksumBytes = 16;
inline constexpr size_t kFrameHeaderBytes = 16 + kFrameChecksumBytes;
// Hard ceiling whatever the configuration says; a frame length field can never ask more.
inline constexpr size_t kFramePayloadBytesMax = 64u << 20;

// A decoded frame. `payload` points into the buffer given to DecodeFrame.
struct FrameView {
  NodeId sender = 0;
  std::string_view payload;
};

// Builds a frame. kInvalidArgument when payload exceeds payload_bytes_max (or the ceiling).
StatusOr<std::string> EncodeFrame(NodeId sender, std::string_view payload,
                                  size_t payload_bytes_max = kFramePayloadBytesMax);

// Checks, in this order: size bounds, magic, version, reserved bits, length field against
// the actual size, checksum. Errors: kCorruption (truncated, oversize, bad magic, bad
// reserved bits, length mismatch, checksum mismatch), kVersion (unknown version). Never
// reads outside `frame`.
StatusOr<FrameView> DecodeFrame(std::string_view frame,
                                size_t payload_bytes_max = kFramePayloadBytesMax);

// True when the 16 checksum bytes match the rest of the frame as it is (no other check).
// False for anything shorter than a header. Exposed so tests can show that the checksum
// alone catches every single-byte change, whatever the other checks would say.
bool FrameChecksumMatches(std::string_view frame);

}  // namespace geokv::transport

#endif  // GEOKV_REPLICATION_TRANSPORT_FRAME_H_
