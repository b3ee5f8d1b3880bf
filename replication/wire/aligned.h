// FlatBuffers reads scalars in place, so a buffer must start at an address aligned for its
// widest scalar (8 bytes). Bytes straight off a socket, or a payload nested in another
// buffer, may not be; AlignedBytes copies those (and only those) into aligned storage.
//
// Value type; the view is valid while the AlignedBytes and the original bytes live.
#ifndef GEOKV_REPLICATION_WIRE_ALIGNED_H_
#define GEOKV_REPLICATION_WIRE_ALIGNED_H_

#include <cstdint>
#include <algorithm>
#include <string_view>
#include <vector>

namespace geokv::wire {

class AlignedBytes {
 public:
  explicit AlignedBytes(std::string_view bytes) {
    if (reinterpret_cast<uintptr_t>(bytes.data()) % alignof(uint64_t) == 0) {
      view_ = bytes;
      return;
    }
    words_.resize(bytes.size() / sizeof(uint64_t) + 1);
    std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(words_.data()));
    view_ = std::string_view(reinterpret_cast<const char*>(words_.data()), bytes.size());
  }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;

  std::string_view view() const { return view_; }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(view_.data()); }
  size_t size() const { return view_.size(); }

 private:
  std::vector<uint64_t> words_;  // the copy, when one was needed
  std::string_view view_;
};

}  // namespace geokv::wire

#endif  // GEOKV_REPLICATION_WIRE_ALIGNED_H_
