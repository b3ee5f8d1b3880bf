#include "replication/crdt/mv_register.h"

#include <cstdint>
#include <string>

#include "replication/crdt/limits.h"

namespace geokv::crdt {

std::vector<std::string> MvRegister::Values() const {
  std::vector<std::string> out;
  out.reserve(kernel_.size());
  for (const auto& [value, dots] : kernel_.entries()) out.push_back(value);
  return out;
}

StatusOr<MvRegister> MvRegister::Write(ReplicaId replica, std::string_view value,
                                       const CausalContext& read, const CrdtLimits& limits) {
  if (value.size() > limits.value_bytes_max) {
    return Status(Code::kValueTooLarge, "mvreg value of " + std::to_string(value.size()) +
                                            " bytes exceeds " + std::to_string(limits.value_bytes_max));
  }
  if (value.size() + kEntryOverheadBytes > limits.state_bytes_max) {
    return Status(Code::kValueTooLarge, "mvreg value of " + std::to_string(value.size()) +
                                            " bytes exceeds the per-region state limit of " +
                                            std::to_string(limits.state_bytes_max));
  }
  // What the write leaves (limits.h footprint): the siblings with dots the reader did not
  // see, plus the new value with its one new dot.
  size_t survivors = 0;
  size_t survivor_bytes = 0;
  bool same_value_survives = false;
  for (const auto& [v, dots] : kernel_.entries()) {
    size_t kept = 0;
    for (const Dot& d : dots) {
      if (!read.Contains(d)) ++kept;
    }
    if (kept == 0) continue;
    ++survivors;
    survivor_bytes += v.size() + kValueOverheadBytes + kDotBytes * kept;
    if (v == value) same_value_survives = true;
  }
  const size_t after = survivors + (same_value_survives ? 0 : 1);
  const size_t after_bytes =
      survivor_bytes + kDotBytes + (same_value_survives ? 0 : value.size() + kValueOverheadBytes);
  if (after > limits.siblings_max || after_bytes > limits.state_bytes_max) {
    return Status(Code::kConflict, "mvreg write would leave " + std::to_string(after) + " siblings of " +
                                       std::to_string(after_bytes) + " bytes (limits per region " +
                                       std::to_string(limits.siblings_max) + ", " +
                                       std::to_string(limits.state_bytes_max) +
                                       " bytes); read again and write with the fresh context");
  }
  MvRegister delta;
  delta.kernel_ = kernel_.AddWithContext(replica, value, read);
  return delta;
}

MvRegister MvRegister::Delete(const CausalContext& read) {
  MvRegister delta;
  delta.kernel_ = kernel_.RemoveContext(read);
  return delta;
}

std::string MvRegister::Encode() const {
  Encoder enc;
  enc.PutByte(kEncodingVersion);
  enc.PutByte(static_cast<uint8_t>(CrdtType::kMvReg));
  kernel_.EncodeTo(&enc);
  return enc.Release();
}

StatusOr<MvRegister> MvRegister::Decode(std::string_view bytes, const CrdtLimits& limits) {
  Decoder dec(bytes);
  GEOKV_RETURN_IF_ERROR(dec.GetHeader(static_cast<uint8_t>(CrdtType::kMvReg)));
  MvRegister r;
  const size_t values_max = limits.unsafe_decode_per_region_caps ? limits.siblings_max : SIZE_MAX;
  GEOKV_RETURN_IF_ERROR(r.kernel_.DecodeFrom(&dec, values_max, limits.value_bytes_max));
  GEOKV_RETURN_IF_ERROR(dec.Finish());
  return r;
}

}  // namespace geokv::crdt
