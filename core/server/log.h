// Logging: geokv logs through spdlog. This sets it up once per process.
//
// Thread-safety: SetLogLevel may be called from any thread (spdlog's level is atomic).
#ifndef GEOKV_CORE_SERVER_LOG_H_
#define GEOKV_CORE_SERVER_LOG_H_

#include <string_view>

#include "base/status.h"

namespace geokv {

// Sets the process-wide log level: trace|debug|info|warn|error|critical|off.
// Errors: kInvalidArgument for an unknown level name (the level is then unchanged).
Status SetLogLevel(std::string_view level);

}  // namespace geokv

#endif  // GEOKV_CORE_SERVER_LOG_H_
