// Policy: which replication mode each key uses.
//
// A table of rules prefix -> mode; the longest matching prefix wins (an exact key is just
// the longest prefix) and a default mode covers every other key. The table is part of the
// strongly consistent cluster metadata, so every node resolves every key the same way.
//
// Value type; thread-compatible (the engine's event loop owns the live copy).
#ifndef GEOKV_CORE_ENGINE_POLICY_H_
#define GEOKV_CORE_ENGINE_POLICY_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace geokv {

// Replication mode of a key. Values are stored and sent; never renumber them.
enum class Mode : uint8_t {
  kStrong = 0,   // Multi-Paxos: put, get, delete, cas, add
  kLww = 1,      // last-writer-wins register: put, get, delete
  kMvReg = 2,    // multi-value register: put (with context), get -> siblings, delete
  kCounter = 3,  // PN-counter: add, get
  kSet = 4,      // add-wins observed-remove set: add, remove, contains, members
};

// "strong" | "lww" | "mvreg" | "counter" | "set".
StatusOr<Mode> ParseMode(std::string_view name);
std::string_view ModeName(Mode mode);
inline bool IsEventual(Mode mode) { return mode != Mode::kStrong; }

class Policy {
 public:
  static constexpr size_t kRulesMax = 10000;

  explicit Policy(Mode default_mode = Mode::kStrong) : default_mode_(default_mode) {}

  // Adds or replaces the rule for `prefix` (an empty prefix sets the default).
  // kInvalidArgument when the table is full or the prefix is too long.
  Status Set(std::string_view prefix, Mode mode, size_t prefix_bytes_max = 4096);
  // Removes the rule for `prefix`; kNotFound when there is none.
  Status Remove(std::string_view prefix);

  // The mode of `key`: its longest matching rule, else the default.
  Mode Lookup(std::string_view key) const;
  // The rule that decides `key` ("" for the default).
  std::string MatchingPrefix(std::string_view key) const;

  // The rules that decide keys under `prefix`: as default, the mode `prefix` itself gets
  // here; as rules, those strictly longer than `prefix` that start with it. For every key
  // under `prefix`, Under(prefix).Lookup(key) == Lookup(key).
  Policy Under(std::string_view prefix) const;

  Mode default_mode() const { return default_mode_; }
  const std::map<std::string, Mode, std::less<>>& rules() const { return rules_; }

  // A compact, versioned encoding (stored in the metadata group's snapshots).
  std::string Encode() const;
  static StatusOr<Policy> Decode(std::string_view bytes);

  bool operator==(const Policy&) const = default;

 private:
  Mode default_mode_;
  std::map<std::string, Mode, std::less<>> rules_;
  std::multiset<size_t> lengths_;  // prefix lengths present, longest tried first
};

}  // namespace geokv

#endif  // GEOKV_CORE_ENGINE_POLICY_H_
