#include "replication/crdt/or_set.h"

#include <string>

#include "replication/crdt/limits.h"

namespace geokv::crdt {

StatusOr<OrSet> OrSet::Add(ReplicaId replica, std::string_view element) {
  if (element.size() > kValueBytesMax) {
    return Status(Code::kValueTooLarge, "set element of " + std::to_string(element.size()) +
                                            " bytes exceeds " + std::to_string(kValueBytesMax));
  }
  if (!kernel_.Contains(element) && kernel_.size() >= kSetElementsMax) {
    return InvalidArgument("set already holds " + std::to_string(kSetElementsMax) + " elements");
  }
  if (!kernel_.Contains(element) && kernel_.value_bytes() + element.size() > kStateBytesMax) {
    return Status(Code::kValueTooLarge, "set would exceed " + std::to_string(kStateBytesMax) +
                                            " bytes of elements");
  }
  OrSet delta;
  delta.kernel_ = kernel_.AddWithContext(replica, element, kernel_.DotsOf(element));
  return delta;
}

OrSet OrSet::Remove(std::string_view element) {
  OrSet delta;
  delta.kernel_ = kernel_.RemoveContext(kernel_.DotsOf(element));
  return delta;
}

std::vector<std::string> OrSet::Members() const {
  std::vector<std::string> out;
  out.reserve(kernel_.size());
  for (const auto& [value, dots] : kernel_.entries()) out.push_back(value);
  return out;
}

std::string OrSet::Encode() const {
  Encoder enc;
  enc.PutByte(kEncodingVersion);
  enc.PutByte(static_cast<uint8_t>(CrdtType::kSet));
  kernel_.EncodeTo(&enc);
  return enc.Release();
}

StatusOr<OrSet> OrSet::Decode(std::string_view bytes) {
  Decoder dec(bytes);
  GEOKV_RETURN_IF_ERROR(dec.GetHeader(static_cast<uint8_t>(CrdtType::kSet)));
  OrSet s;
  GEOKV_RETURN_IF_ERROR(s.kernel_.DecodeFrom(&dec, kSetElementsMax));
  GEOKV_RETURN_IF_ERROR(dec.Finish());
  return s;
}

}  // namespace geokv::crdt
