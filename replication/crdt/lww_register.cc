#include "replication/crdt/lww_register.h"

#include <string>

#include "replication/crdt/limits.h"

namespace geokv::crdt {

StatusOr<LwwRegister> LwwRegister::Put(std::string_view value, const HlcTimestamp& ts,
                                       const CrdtLimits& limits) {
  if (value.size() > limits.value_bytes_max) {
    return Status(Code::kValueTooLarge, "lww value of " + std::to_string(value.size()) +
                                            " bytes exceeds " + std::to_string(limits.value_bytes_max));
  }
  LwwRegister delta;
  delta.written_ = true;
  delta.ts_ = ts;
  delta.value_ = std::string(value);
  Join(delta);
  return delta;
}

LwwRegister LwwRegister::Delete(const HlcTimestamp& ts) {
  LwwRegister delta;
  delta.written_ = true;
  delta.deleted_ = true;
  delta.ts_ = ts;
  Join(delta);
  return delta;
}

void LwwRegister::Join(const LwwRegister& other) {
  if (!other.written_) return;
  if (!written_ || ts_ < other.ts_) {
    *this = other;
  } else if (ts_ == other.ts_ && *this != other) {
    // Equal stamps name the same event, so contents agree unless a node reused a stamp
    // (a bug elsewhere). Pick deterministically so joins stay commutative anyway.
    if (std::make_pair(other.deleted_, other.value_) > std::make_pair(deleted_, value_)) {
      *this = other;
    }
  }
}

std::optional<std::string> LwwRegister::Get() const {
  if (!written_ || deleted_) return std::nullopt;
  return value_;
}

std::string LwwRegister::Encode() const {
  Encoder enc;
  enc.PutByte(kEncodingVersion);
  enc.PutByte(static_cast<uint8_t>(CrdtType::kLww));
  uint8_t flags = (written_ ? 1 : 0) | (deleted_ ? 2 : 0);
  enc.PutByte(flags);
  if (written_) {
    ts_.EncodeTo(&enc);
    if (!deleted_) enc.PutBytes(value_);
  }
  return enc.Release();
}

StatusOr<LwwRegister> LwwRegister::Decode(std::string_view bytes, const CrdtLimits& limits) {
  Decoder dec(bytes);
  GEOKV_RETURN_IF_ERROR(dec.GetHeader(static_cast<uint8_t>(CrdtType::kLww)));
  uint8_t flags = 0;
  GEOKV_RETURN_IF_ERROR(dec.GetByte(&flags));
  if (flags > 3 || flags == 2) return Corruption("lww register has bad flags");
  LwwRegister r;
  r.written_ = flags & 1;
  r.deleted_ = flags & 2;
  if (r.written_) {
    GEOKV_RETURN_IF_ERROR(r.ts_.DecodeFrom(&dec));
    if (!r.deleted_) {
      std::string_view v;
      GEOKV_RETURN_IF_ERROR(dec.GetValueBytes(limits.value_bytes_max, &v, "lww value"));
      r.value_ = std::string(v);
    }
  }
  GEOKV_RETURN_IF_ERROR(dec.Finish());
  return r;
}

}  // namespace geokv::crdt
