#include "base/status.h"

namespace geokv {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kNotFound: return "NOT_FOUND";
    case Code::kInvalidArgument: return "INVALID_ARGUMENT";
    case Code::kKeyTooLarge: return "KEY_TOO_LARGE";
    case Code::kValueTooLarge: return "VALUE_TOO_LARGE";
    case Code::kWrongMode: return "WRONG_MODE";
    case Code::kIOError: return "IO_ERROR";
    case Code::kCorruption: return "CORRUPTION";
    case Code::kBusy: return "BUSY";
    case Code::kClosed: return "CLOSED";
    case Code::kPanic: return "PANIC";
    case Code::kUnavailable: return "UNAVAILABLE";
    case Code::kTimeout: return "TIMEOUT";
    case Code::kConfig: return "CONFIG";
    case Code::kVersion: return "VERSION";
    case Code::kConflict: return "CONFLICT";
    case Code::kInternal: return "INTERNAL";
    case Code::kPermissionDenied: return "PERMISSION_DENIED";
  }
  return "UNKNOWN";
}

Status::Status(Code code, std::string message) {
  if (code != Code::kOk) rep_ = std::make_unique<Rep>(Rep{code, std::move(message)});
}

Status::Status(const Status& other)
    : rep_(other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) rep_ = other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr;
  return *this;
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return rep_ ? rep_->message : kEmpty;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s(CodeName(rep_->code));
  if (!rep_->message.empty()) s += ": " + rep_->message;
  return s;
}

}  // namespace geokv
