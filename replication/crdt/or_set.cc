#include "replication/crdt/or_set.h"

#include <cstdint>
#include <string>

#include "replication/crdt/limits.h"

namespace geokv::crdt {

StatusOr<OrSet> OrSet::Add(ReplicaId replica, std::string_view element, const CrdtLimits& limits) {
  if (element.size() > limits.value_bytes_max) {
    return Status(Code::kValueTooLarge, "set element of " + std::to_string(element.size()) +
                                            " bytes exceeds " + std::to_string(limits.value_bytes_max));
  }
  // Gate every add by what it leaves (limits.h): a re-add retires the element's dots and
  // mints one, so it never grows the set, but it is refused while the set (joined from
  // several regions) is above this region's cap.
  auto entry = kernel_.entries().find(element);
  const bool present = entry != kernel_.entries().end();
  const size_t retired_dots = present ? entry->second.size() : 0;
  const size_t size_after = kernel_.size() + (present ? 0 : 1);
  const size_t footprint_after = kernel_.footprint_bytes() + kDotBytes +
                                 (present ? 0 : element.size() + kValueOverheadBytes) - kDotBytes * retired_dots;
  if (size_after > limits.set_elements_max) {
    return InvalidArgument("set holds " + std::to_string(kernel_.size()) + " elements (limit per region " +
                           std::to_string(limits.set_elements_max) + "); remove some first");
  }
  if (footprint_after > limits.state_bytes_max) {
    return Status(Code::kValueTooLarge, "set would hold " + std::to_string(footprint_after) +
                                            " bytes (limit per region " +
                                            std::to_string(limits.state_bytes_max) + "); remove some first");
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

StatusOr<OrSet> OrSet::Decode(std::string_view bytes, const CrdtLimits& limits) {
  Decoder dec(bytes);
  GEOKV_RETURN_IF_ERROR(dec.GetHeader(static_cast<uint8_t>(CrdtType::kSet)));
  OrSet s;
  const size_t values_max = limits.unsafe_decode_per_region_caps ? limits.set_elements_max : SIZE_MAX;
  GEOKV_RETURN_IF_ERROR(s.kernel_.DecodeFrom(&dec, values_max, limits.value_bytes_max));
  GEOKV_RETURN_IF_ERROR(dec.Finish());
  return s;
}

}  // namespace geokv::crdt
