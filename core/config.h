// Config: everything a node is configured with, from TOML (toml++) or from code.
//
// File layout (every field optional; unknown fields are an error naming the field):
//   data_dir = "/var/lib/geokv"
//   [limits]   key_bytes_max = 4096      value_bytes_max = 1048576
//   [storage]  durability = "sync"       # "sync" | "write" | "none"
//              group_commit_batches_max = 128   commit_timeout_ms = 30000   cache_mb = 64
//   [log]      level = "info"            # trace|debug|info|warn|error|critical|off
//
// Thread-safety: a value type. Errors: kConfig, with the file name and the field.
#ifndef GEOKV_CORE_CONFIG_H_
#define GEOKV_CORE_CONFIG_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "core/storage/storage.h"

namespace geokv {

struct Limits {
  // Hard ceilings for what a configuration may ask for.
  static constexpr size_t kKeyBytesCeiling = 64 * 1024;
  static constexpr size_t kValueBytesCeiling = 64 * 1024 * 1024;

  size_t key_bytes_max = 4096;
  size_t value_bytes_max = 1024 * 1024;
};

struct Config {
  std::string data_dir;
  Limits limits;
  storage::Durability durability = storage::Durability::kSync;
  size_t group_commit_batches_max = 128;
  int64_t commit_timeout_ms = 30000;
  size_t cache_mb = 64;
  std::string log_level = "info";

  // Parses TOML text; `source` names it in error messages (a path, or "<string>").
  static StatusOr<Config> FromToml(std::string_view text, std::string_view source = "<string>");
  // Reads and parses a TOML file.
  static StatusOr<Config> LoadFile(const std::string& path);

  // Checks every field's range; the message names the field.
  Status Validate() const;
};

}  // namespace geokv

#endif  // GEOKV_CORE_CONFIG_H_
