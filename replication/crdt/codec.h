// Byte codec for CRDT states and deltas: unsigned LEB128 varints, zigzag for signed values,
// length-prefixed byte strings. States are small and numerous, so a varint format keeps
// them compact; the FlatBuffers schema wraps these bytes on the wire.
//
// Encoder owns its output string. Decoder reads a caller-owned buffer that must outlive
// it; every read is bounds-checked and reports a Corruption Status instead of crashing.
// Thread-safety: plain values; no sharing.
#ifndef GEOKV_REPLICATION_CRDT_CODEC_H_
#define GEOKV_REPLICATION_CRDT_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace geokv::crdt {

// Current encoding version of every CRDT state and delta. Decoders reject others with
// Code::kVersion so a newer peer's bytes are never misread.
inline constexpr uint8_t kEncodingVersion = 1;

class Encoder {
 public:
  void PutByte(uint8_t b) { out_.push_back(static_cast<char>(b)); }
  void PutVarint(uint64_t v);
  void PutSigned(int64_t v);
  void PutBytes(std::string_view bytes);  // length-prefixed
  const std::string& bytes() const { return out_; }
  std::string Release() { return std::move(out_); }

 private:
  std::string out_;
};

class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}
  Status GetByte(uint8_t* b);
  Status GetVarint(uint64_t* v);
  Status GetSigned(int64_t* v);
  // A varint that must not exceed `max` (guards counts before allocating).
  Status GetBounded(uint64_t max, uint64_t* v, const char* what);
  // A count of entries that each take at least `min_entry_bytes` of the remaining input:
  // bounds allocations by the input length instead of by a semantic cap.
  Status GetCount(size_t min_entry_bytes, uint64_t* n, const char* what);
  // Length-prefixed bytes, at most `max_bytes`; the view points into the input.
  Status GetBytes(size_t max_bytes, std::string_view* bytes, const char* what);
  // A register value or set element: kValueTooLarge (not kCorruption) when it is intact
  // but longer than `max_bytes`, so an over-limit state is told apart from a broken one.
  Status GetValueBytes(size_t max_bytes, std::string_view* bytes, const char* what);
  // Reads the version byte and the expected type tag.
  Status GetHeader(uint8_t type_tag);
  bool done() const { return pos_ == in_.size(); }
  size_t remaining() const { return in_.size() - pos_; }
  // Fails unless all input was consumed (trailing garbage is corruption).
  Status Finish() const;

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

// 64-bit FNV-1a, for range digests in state transfer (deterministic across builds).
uint64_t Fnv1a64(std::string_view bytes, uint64_t seed = 14695981039346656037ull);

}  // namespace geokv::crdt

#endif  // GEOKV_REPLICATION_CRDT_CODEC_H_
