#include "core/config.h"

#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

namespace geokv {

namespace {

Status ConfigError(std::string_view source, std::string_view field, std::string_view what) {
  return Status(Code::kConfig, std::string(source) + ": " + std::string(field) + ": " + std::string(what));
}

// Rejects keys of `table` not in `known`, so a typo never silently means "default".
Status CheckKnown(const toml::table& table, std::string_view prefix,
                  const std::set<std::string_view>& known, std::string_view source) {
  for (const auto& [key, node] : table) {
    if (known.count(key.str()) == 0) {
      return ConfigError(source, std::string(prefix) + std::string(key.str()), "unknown field");
    }
  }
  return Status::Ok();
}

template <typename T>
Status ReadInt(const toml::table& table, std::string_view name, std::string_view path,
               std::string_view source, int64_t min, int64_t max, T* out) {
  const toml::node* node = table.get(name);
  if (node == nullptr) return Status::Ok();
  auto value = node->value<int64_t>();
  if (!node->is_integer() || !value) return ConfigError(source, path, "must be an integer");
  if (*value < min || *value > max) {
    return ConfigError(source, path, "must be in [" + std::to_string(min) + ", " + std::to_string(max) +
                                          "], not " + std::to_string(*value));
  }
  *out = static_cast<T>(*value);
  return Status::Ok();
}

Status ReadString(const toml::table& table, std::string_view name, std::string_view path,
                  std::string_view source, std::string* out) {
  const toml::node* node = table.get(name);
  if (node == nullptr) return Status::Ok();
  if (!node->is_string()) return ConfigError(source, path, "must be a string");
  *out = *node->value<std::string>();
  return Status::Ok();
}

const toml::table* SubTable(const toml::table& root, std::string_view name, Status* error,
                            std::string_view source) {
  const toml::node* node = root.get(name);
  if (node == nullptr) return nullptr;
  if (!node->is_table()) {
    *error = ConfigError(source, name, "must be a table ([" + std::string(name) + "])");
    return nullptr;
  }
  return node->as_table();
}

}  // namespace

StatusOr<Config> Config::FromToml(std::string_view text, std::string_view source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return Status(Code::kConfig, std::string(source) + ":" + std::to_string(where.line) + ":" +
                                     std::to_string(where.column) + ": " + std::string(e.description()));
  }

  Config c;
  GEOKV_RETURN_IF_ERROR(CheckKnown(root, "", {"data_dir", "limits", "storage", "log"}, source));
  GEOKV_RETURN_IF_ERROR(ReadString(root, "data_dir", "data_dir", source, &c.data_dir));

  Status sub_error;
  if (const toml::table* t = SubTable(root, "limits", &sub_error, source)) {
    GEOKV_RETURN_IF_ERROR(CheckKnown(*t, "limits.", {"key_bytes_max", "value_bytes_max"}, source));
    GEOKV_RETURN_IF_ERROR(ReadInt(*t, "key_bytes_max", "limits.key_bytes_max", source, 1,
                                  Limits::kKeyBytesCeiling, &c.limits.key_bytes_max));
    GEOKV_RETURN_IF_ERROR(ReadInt(*t, "value_bytes_max", "limits.value_bytes_max", source, 0,
                                  Limits::kValueBytesCeiling, &c.limits.value_bytes_max));
  }
  GEOKV_RETURN_IF_ERROR(sub_error);
  if (const toml::table* t = SubTable(root, "storage", &sub_error, source)) {
    GEOKV_RETURN_IF_ERROR(CheckKnown(
        *t, "storage.", {"durability", "group_commit_batches_max", "commit_timeout_ms", "cache_mb"}, source));
    std::string durability;
    GEOKV_RETURN_IF_ERROR(ReadString(*t, "durability", "storage.durability", source, &durability));
    if (!durability.empty()) {
      auto d = storage::ParseDurability(durability);
      if (!d.ok()) return ConfigError(source, "storage.durability", d.status().message());
      c.durability = *d;
    }
    GEOKV_RETURN_IF_ERROR(ReadInt(*t, "group_commit_batches_max", "storage.group_commit_batches_max",
                                  source, 1, 65536, &c.group_commit_batches_max));
    GEOKV_RETURN_IF_ERROR(ReadInt(*t, "commit_timeout_ms", "storage.commit_timeout_ms", source, 1,
                                  3600 * 1000, &c.commit_timeout_ms));
    GEOKV_RETURN_IF_ERROR(ReadInt(*t, "cache_mb", "storage.cache_mb", source, 1, 1 << 20, &c.cache_mb));
  }
  GEOKV_RETURN_IF_ERROR(sub_error);
  if (const toml::table* t = SubTable(root, "log", &sub_error, source)) {
    GEOKV_RETURN_IF_ERROR(CheckKnown(*t, "log.", {"level"}, source));
    GEOKV_RETURN_IF_ERROR(ReadString(*t, "level", "log.level", source, &c.log_level));
  }
  GEOKV_RETURN_IF_ERROR(sub_error);

  Status valid = c.Validate();
  if (!valid.ok()) return Status(Code::kConfig, std::string(source) + ": " + valid.message());
  return c;
}

StatusOr<Config> Config::LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(Code::kConfig, path + ": cannot read config file");
  std::ostringstream text;
  text << in.rdbuf();
  return FromToml(text.str(), path);
}

Status Config::Validate() const {
  auto bad = [](std::string field, std::string what) {
    return Status(Code::kConfig, field + ": " + what);
  };
  if (limits.key_bytes_max < 1 || limits.key_bytes_max > Limits::kKeyBytesCeiling) {
    return bad("limits.key_bytes_max", "must be in [1, " + std::to_string(Limits::kKeyBytesCeiling) + "]");
  }
  if (limits.value_bytes_max > Limits::kValueBytesCeiling) {
    return bad("limits.value_bytes_max", "must be at most " + std::to_string(Limits::kValueBytesCeiling));
  }
  if (group_commit_batches_max < 1) return bad("storage.group_commit_batches_max", "must be at least 1");
  if (commit_timeout_ms < 1) return bad("storage.commit_timeout_ms", "must be at least 1");
  if (cache_mb < 1) return bad("storage.cache_mb", "must be at least 1");
  static const std::set<std::string_view> kLevels = {"trace", "debug", "info", "warn",
                                                     "error", "critical", "off"};
  if (kLevels.count(log_level) == 0) {
    return bad("log.level", "must be one of trace, debug, info, warn, error, critical, off");
  }
  return Status::Ok();
}

}  // namespace geokv
