#include "core/engine/policy.h"

#include <cstring>

namespace geokv {

namespace {
constexpr uint8_t kEncodingVersion = 1;
constexpr Mode kModes[] = {Mode::kStrong, Mode::kLww, Mode::kMvReg, Mode::kCounter, Mode::kSet};

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
bool GetU32(std::string_view& in, uint32_t* v) {
  if (in.size() < 4) return false;
  *v = 0;
  for (int i = 0; i < 4; ++i) *v |= static_cast<uint32_t>(static_cast<uint8_t>(in[i])) << (8 * i);
  in.remove_prefix(4);
  return true;
}
bool ValidMode(uint8_t m) { return m <= static_cast<uint8_t>(Mode::kSet); }
}  // namespace

StatusOr<Mode> ParseMode(std::string_view name) {
  for (Mode m : kModes) {
    if (ModeName(m) == name) return m;
  }
  return InvalidArgument("unknown mode \"" + std::string(name) +
                         "\" (one of strong, lww, mvreg, counter, set)");
}

std::string_view ModeName(Mode mode) {
  switch (mode) {
    case Mode::kStrong: return "strong";
    case Mode::kLww: return "lww";
    case Mode::kMvReg: return "mvreg";
    case Mode::kCounter: return "counter";
    case Mode::kSet: return "set";
  }
  return "?";
}

Status Policy::Set(std::string_view prefix, Mode mode, size_t prefix_bytes_max) {
  if (prefix.empty()) {
    default_mode_ = mode;
    return Status::Ok();
  }
  if (prefix.size() > prefix_bytes_max) return Status(Code::kKeyTooLarge, "policy prefix is too long");
  auto it = rules_.find(prefix);
  if (it != rules_.end()) {
    it->second = mode;
    return Status::Ok();
  }
  if (rules_.size() >= kRulesMax) {
    return InvalidArgument("policy table is full (" + std::to_string(kRulesMax) + " rules)");
  }
  rules_.emplace(std::string(prefix), mode);
  lengths_.insert(prefix.size());
  return Status::Ok();
}

Status Policy::Remove(std::string_view prefix) {
  auto it = rules_.find(prefix);
  if (it == rules_.end()) return NotFound("no policy rule for that prefix");
  lengths_.erase(lengths_.find(it->first.size()));
  rules_.erase(it);
  return Status::Ok();
}

std::string Policy::MatchingPrefix(std::string_view key) const {
  // Try only the prefix lengths that exist, longest first: O(distinct lengths * log rules).
  size_t last = SIZE_MAX;
  for (auto it = lengths_.rbegin(); it != lengths_.rend(); ++it) {
    if (*it == last || *it > key.size()) continue;
    last = *it;
    if (rules_.count(key.substr(0, *it)) != 0) return std::string(key.substr(0, *it));
  }
  return "";
}

Mode Policy::Lookup(std::string_view key) const {
  if (rules_.empty()) return default_mode_;
  std::string prefix = MatchingPrefix(key);
  if (prefix.empty()) return default_mode_;
  return rules_.find(prefix)->second;
}

Policy Policy::Under(std::string_view prefix) const {
  Policy out(Lookup(prefix));
  for (auto it = rules_.upper_bound(prefix); it != rules_.end() && it->first.starts_with(prefix); ++it) {
    out.rules_.emplace(it->first, it->second);
    out.lengths_.insert(it->first.size());
  }
  return out;
}

std::string Policy::Encode() const {
  std::string out;
  out.push_back(static_cast<char>(kEncodingVersion));
  out.push_back(static_cast<char>(default_mode_));
  PutU32(out, static_cast<uint32_t>(rules_.size()));
  for (const auto& [prefix, mode] : rules_) {
    PutU32(out, static_cast<uint32_t>(prefix.size()));
    out += prefix;
    out.push_back(static_cast<char>(mode));
  }
  return out;
}

StatusOr<Policy> Policy::Decode(std::string_view in) {
  if (in.size() < 6) return Corruption("policy encoding is truncated");
  if (static_cast<uint8_t>(in[0]) != kEncodingVersion) {
    return Status(Code::kVersion, "unknown policy encoding version " + std::to_string(in[0]));
  }
  if (!ValidMode(static_cast<uint8_t>(in[1]))) return Corruption("bad default mode in policy");
  Policy p(static_cast<Mode>(in[1]));
  in.remove_prefix(2);
  uint32_t n = 0;
  if (!GetU32(in, &n) || n > kRulesMax) return Corruption("bad rule count in policy");
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t len = 0;
    if (!GetU32(in, &len) || len == 0 || in.size() < size_t{len} + 1) return Corruption("policy rule is truncated");
    std::string_view prefix = in.substr(0, len);
    uint8_t mode = static_cast<uint8_t>(in[len]);
    if (!ValidMode(mode)) return Corruption("bad mode in policy rule");
    GEOKV_RETURN_IF_ERROR(p.Set(prefix, static_cast<Mode>(mode), SIZE_MAX));
    in.remove_prefix(size_t{len} + 1);
  }
  if (!in.empty()) return Corruption("trailing bytes after policy");
  return p;
}

}  // namespace geokv
