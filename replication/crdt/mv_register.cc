#include "replication/crdt/mv_register.h"

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
                                       const CausalContext& read) {
  if (value.size() > kValueBytesMax) {
    return Status(Code::kValueTooLarge, "mvreg value of " + std::to_string(value.size()) +
                                            " bytes exceeds " + std::to_string(kValueBytesMax));
  }
  size_t survivors = 0;
  bool same_value_survives = false;
  for (const auto& [v, dots] : kernel_.entries()) {
    for (const Dot& d : dots) {
      if (!read.Contains(d)) {
        ++survivors;
        if (v == value) same_value_survives = true;
        break;
      }
    }
  }
  if (survivors + (same_value_survives ? 0 : 1) > kSiblingsMax) {
    return Status(Code::kConflict, "mvreg write would leave " + std::to_string(survivors + 1) +
                                       " siblings (limit " + std::to_string(kSiblingsMax) +
                                       "); read again and write with the fresh context");
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

StatusOr<MvRegister> MvRegister::Decode(std::string_view bytes) {
  Decoder dec(bytes);
  GEOKV_RETURN_IF_ERROR(dec.GetHeader(static_cast<uint8_t>(CrdtType::kMvReg)));
  MvRegister r;
  GEOKV_RETURN_IF_ERROR(r.kernel_.DecodeFrom(&dec, kSiblingsMax * kReplicasMax));
  GEOKV_RETURN_IF_ERROR(dec.Finish());
  return r;
}

}  // namespace geokv::crdt
