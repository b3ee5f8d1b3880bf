#include "replication/crdt/codec.h"

#include <string>

namespace geokv::crdt {

void Encoder::PutVarint(uint64_t v) {
  while (v >= 0x80) {
    out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out_.push_back(static_cast<char>(v));
}

void Encoder::PutSigned(int64_t v) {
  // Zigzag so small negative numbers stay short.
  PutVarint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}

void Encoder::PutBytes(std::string_view bytes) {
  PutVarint(bytes.size());
  out_.append(bytes.data(), bytes.size());
}

Status Decoder::GetByte(uint8_t* b) {
  if (pos_ >= in_.size()) return Corruption("crdt encoding truncated");
  *b = static_cast<uint8_t>(in_[pos_++]);
  return Status::Ok();
}

Status Decoder::GetVarint(uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift <= 63; shift += 7) {
    if (pos_ >= in_.size()) return Corruption("crdt varint truncated");
    uint8_t byte = static_cast<uint8_t>(in_[pos_++]);
    if (shift == 63 && (byte & 0x7e) != 0) return Corruption("crdt varint overflows 64 bits");
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return Status::Ok();
    }
  }
  return Corruption("crdt varint longer than 10 bytes");
}

Status Decoder::GetSigned(int64_t* v) {
  uint64_t u = 0;
  GEOKV_RETURN_IF_ERROR(GetVarint(&u));
  *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  return Status::Ok();
}

Status Decoder::GetBounded(uint64_t max, uint64_t* v, const char* what) {
  GEOKV_RETURN_IF_ERROR(GetVarint(v));
  if (*v > max) {
    return Corruption(std::string("crdt encoding: ") + what + " " + std::to_string(*v) +
                      " exceeds limit " + std::to_string(max));
  }
  return Status::Ok();
}

Status Decoder::GetCount(size_t min_entry_bytes, uint64_t* n, const char* what) {
  return GetBounded(remaining() / (min_entry_bytes == 0 ? 1 : min_entry_bytes), n, what);
}

Status Decoder::GetBytes(size_t max_bytes, std::string_view* bytes, const char* what) {
  uint64_t n = 0;
  GEOKV_RETURN_IF_ERROR(GetBounded(max_bytes, &n, what));
  if (n > in_.size() - pos_) return Corruption(std::string("crdt encoding: ") + what + " truncated");
  *bytes = in_.substr(pos_, n);
  pos_ += n;
  return Status::Ok();
}

Status Decoder::GetValueBytes(size_t max_bytes, std::string_view* bytes, const char* what) {
  uint64_t n = 0;
  GEOKV_RETURN_IF_ERROR(GetVarint(&n));
  if (n > in_.size() - pos_) return Corruption(std::string("crdt encoding: ") + what + " truncated");
  if (n > max_bytes) {
    return Status(Code::kValueTooLarge, std::string("crdt encoding: ") + what + " of " + std::to_string(n) +
                                            " bytes exceeds the limit of " + std::to_string(max_bytes));
  }
  *bytes = in_.substr(pos_, n);
  pos_ += n;
  return Status::Ok();
}

Status Decoder::GetHeader(uint8_t type_tag) {
  uint8_t version = 0, tag = 0;
  GEOKV_RETURN_IF_ERROR(GetByte(&version));
  if (version != kEncodingVersion) {
    return Status(Code::kVersion, "crdt encoding version " + std::to_string(version) +
                                      " not supported (expected " +
                                      std::to_string(kEncodingVersion) + ")");
  }
  GEOKV_RETURN_IF_ERROR(GetByte(&tag));
  if (tag != type_tag) {
    return Corruption("crdt encoding has type tag " + std::to_string(tag) + ", expected " +
                      std::to_string(type_tag));
  }
  return Status::Ok();
}

Status Decoder::Finish() const {
  if (pos_ != in_.size()) return Corruption("crdt encoding has trailing bytes");
  return Status::Ok();
}

uint64_t Fnv1a64(std::string_view bytes, uint64_t seed) {
  uint64_t h = seed;
  for (char c : bytes) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace geokv::crdt
