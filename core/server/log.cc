#include "core/server/log.h"

#include <string>

#include <spdlog/spdlog.h>

namespace geokv {

Status SetLogLevel(std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  // from_str maps unknown names to "off"; tell a typo from a deliberate "off".
  if (parsed == spdlog::level::off && level != "off") {
    return InvalidArgument("unknown log level \"" + std::string(level) + "\"");
  }
  spdlog::set_level(parsed);
  return Status::Ok();
}

}  // namespace geokv
