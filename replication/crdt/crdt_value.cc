#include "replication/crdt/crdt_value.h"

#include <string>

namespace geokv::crdt {

CrdtValue::CrdtValue(CrdtType type) {
  switch (type) {
    case CrdtType::kLww: value_ = LwwRegister(); break;
    case CrdtType::kMvReg: value_ = MvRegister(); break;
    case CrdtType::kCounter: value_ = PnCounter(); break;
    case CrdtType::kSet: value_ = OrSet(); break;
  }
}

CrdtType CrdtValue::type() const {
  static constexpr CrdtType kTypes[] = {CrdtType::kLww, CrdtType::kMvReg, CrdtType::kCounter,
                                        CrdtType::kSet};
  return kTypes[value_.index()];
}

std::string_view CrdtTypeName(CrdtType type) {
  switch (type) {
    case CrdtType::kLww: return "lww";
    case CrdtType::kMvReg: return "mvreg";
    case CrdtType::kCounter: return "counter";
    case CrdtType::kSet: return "set";
  }
  return "unknown";
}

Status CrdtValue::Join(const CrdtValue& other) {
  if (other.value_.index() != value_.index()) {
    return Status(Code::kWrongMode, "cannot join a " + std::string(CrdtTypeName(other.type())) +
                                        " into a " + std::string(CrdtTypeName(type())));
  }
  std::visit(
      [&](auto& mine) {
        using T = std::decay_t<decltype(mine)>;
        mine.Join(std::get<T>(other.value_));
      },
      value_);
  return Status::Ok();
}

std::string CrdtValue::Encode() const {
  return std::visit([](const auto& v) { return v.Encode(); }, value_);
}

StatusOr<CrdtValue> CrdtValue::Decode(std::string_view bytes, const CrdtLimits& limits) {
  if (bytes.size() < 2) return Corruption("crdt value shorter than its header");
  switch (static_cast<CrdtType>(static_cast<uint8_t>(bytes[1]))) {
    case CrdtType::kLww: {
      auto v = LwwRegister::Decode(bytes, limits);
      if (!v.ok()) return v.status();
      return CrdtValue(std::move(*v));
    }
    case CrdtType::kMvReg: {
      auto v = MvRegister::Decode(bytes, limits);
      if (!v.ok()) return v.status();
      return CrdtValue(std::move(*v));
    }
    case CrdtType::kCounter: {
      auto v = PnCounter::Decode(bytes);
      if (!v.ok()) return v.status();
      return CrdtValue(std::move(*v));
    }
    case CrdtType::kSet: {
      auto v = OrSet::Decode(bytes, limits);
      if (!v.ok()) return v.status();
      return CrdtValue(std::move(*v));
    }
  }
  if (static_cast<uint8_t>(bytes[0]) != kEncodingVersion) {
    return Status(Code::kVersion, "crdt encoding version not supported");
  }
  return Corruption("crdt value has unknown type tag " + std::to_string(static_cast<uint8_t>(bytes[1])));
}

namespace {
size_t KernelEntries(const DotKernel& k) {
  size_t n = k.context().vector_size() + k.context().cloud_size();
  for (const auto& [v, dots] : k.entries()) n += dots.size();
  return n;
}
}  // namespace

size_t CrdtValue::MetadataEntries() const {
  if (auto* m = As<MvRegister>()) return KernelEntries(m->kernel());
  if (auto* s = As<OrSet>()) return KernelEntries(s->kernel());
  return 1;
}

bool CrdtValue::IsEmpty() const {
  if (auto* l = As<LwwRegister>()) return !l->Get().has_value();
  if (auto* m = As<MvRegister>()) return m->kernel().size() == 0;
  if (auto* s = As<OrSet>()) return s->size() == 0;
  if (auto* c = As<PnCounter>()) return c->Value() == 0;
  return true;
}

}  // namespace geokv::crdt
