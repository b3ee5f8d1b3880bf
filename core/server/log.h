// Logging: geokv logs through spdlog, never to the host program's stdout.
//
// By default records at warning level and above go to stderr. A host (the C ABI's
// geokv_log_set_level / geokv_log_set_callback, the daemon's config) sets the level and may
// install a callback that receives every record instead of stderr.
//
// Thread-safety: every function may be called from any thread. A callback may be called
// from any thread (WiredTiger's own threads included), one record at a time.
#ifndef GEOKV_CORE_SERVER_LOG_H_
#define GEOKV_CORE_SERVER_LOG_H_

#include <string_view>

#include "base/status.h"

namespace geokv {

// Sets the process-wide log level: trace|debug|info|warn|error|critical|off.
// Errors: kInvalidArgument for an unknown level name (the level is then unchanged).
Status SetLogLevel(std::string_view level);

// Levels as numbers: 0 trace, 1 debug, 2 info, 3 warn, 4 error, 5 critical, 6 off.
Status SetLogLevelNumber(int level);
int LogLevelNumber();

// Receives one record: its level (as above), the text (NUL-terminated, no trailing
// newline) and the payload given with it.
using LogCallback = void (*)(int level, const char* message, void* payload);

// Installs fn (nullptr: back to stderr). Returns once no record is being delivered to the
// previous callback, so its payload may be freed afterwards.
void SetLogCallback(LogCallback fn, void* payload);

// Makes sure the default logger writes to stderr (or the callback), at warning level unless
// a level was set. Called by every entry point that may log; cheap after the first call.
void EnsureLogging();

}  // namespace geokv

#endif  // GEOKV_CORE_SERVER_LOG_H_
