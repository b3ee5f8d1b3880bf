#include "core/server/log.h"

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

namespace geokv {

namespace {

// The one sink of the default logger: stderr, or the host's callback.
class HostSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // Under the sink's mutex, so a record is never delivered to a callback being replaced.
  void Set(LogCallback fn, void* payload) {
    std::lock_guard lock(mutex_);
    fn_ = fn;
    payload_ = payload;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (fn_ != nullptr) {
      const std::string text(msg.payload.data(), msg.payload.size());
      fn_(static_cast<int>(msg.level), text.c_str(), payload_);
      return;
    }
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    std::fwrite(formatted.data(), 1, formatted.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  LogCallback fn_ = nullptr;  // guarded by mutex_
  void* payload_ = nullptr;   // guarded by mutex_
};

std::shared_ptr<HostSink>& Sink() {
  static auto* sink = new std::shared_ptr<HostSink>();  // never destroyed: logging may run at exit
  return *sink;
}

std::once_flag g_once;

}  // namespace

void EnsureLogging() {
  std::call_once(g_once, [] {
    Sink() = std::make_shared<HostSink>();
    auto logger = std::make_shared<spdlog::logger>("geokv", Sink());
    logger->set_level(spdlog::level::warn);
    logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [geokv] [%l] %v");
    spdlog::set_default_logger(logger);
  });
}

Status SetLogLevel(std::string_view level) {
  EnsureLogging();
  auto parsed = spdlog::level::from_str(std::string(level));
  // from_str maps unknown names to "off"; tell a typo from a deliberate "off".
  if (parsed == spdlog::level::off && level != "off") {
    return InvalidArgument("unknown log level \"" + std::string(level) + "\"");
  }
  spdlog::set_level(parsed);
  return Status::Ok();
}

Status SetLogLevelNumber(int level) {
  EnsureLogging();
  if (level < 0 || level > 6) {
    return InvalidArgument("log level " + std::to_string(level) + " is out of range (0 trace .. 6 off)");
  }
  spdlog::set_level(static_cast<spdlog::level::level_enum>(level));
  return Status::Ok();
}

int LogLevelNumber() {
  EnsureLogging();
  return static_cast<int>(spdlog::get_level());
}

void SetLogCallback(LogCallback fn, void* payload) {
  EnsureLogging();
  Sink()->Set(fn, payload);
}

}  // namespace geokv
