// libFuzzer target for the first stage of the inbound path: DecodeFrame on arbitrary bytes.
// Properties: never crashes or reads out of bounds (ASan), and whatever it accepts
// re-encodes to exactly the same bytes (so acceptance means "a frame we could have sent").
// Built only with clang (see CMakeLists.txt); ctest runs it for a bounded time.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "replication/transport/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  geokv::StatusOr<geokv::transport::FrameView> frame =
      geokv::transport::DecodeFrame(bytes, 1 << 16);
  if (!frame.ok()) return 0;
  if (!geokv::transport::FrameChecksumMatches(bytes)) std::abort();
  geokv::StatusOr<std::string> again =
      geokv::transport::EncodeFrame(frame->sender, frame->payload, 1 << 16);
  if (!again.ok() || *again != bytes) std::abort();
  return 0;
}
