// Status and StatusOr<T>: how every layer below the C ABI reports an operational error.
//
// An OK Status is a null pointer, so returning success costs nothing (leveldb's pattern).
// A non-OK Status carries a Code (which maps one-to-one onto the C ABI's GEOKV_E* codes)
// and a message for humans. Broken invariants are assertions, not Statuses (STYLE 9).
//
// Thread-safety: a Status is a value; distinct objects may be used from distinct threads.
#ifndef GEOKV_BASE_STATUS_H_
#define GEOKV_BASE_STATUS_H_

#include <cassert>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace geokv {

// Stable order is not required here (the C ABI maps these explicitly), but keep it tidy.
enum class Code : int {
  kOk = 0,
  kNotFound,          // expected absence; not a failure
  kInvalidArgument,   // bad key, value, option or parameter
  kKeyTooLarge,       // key longer than the configured maximum
  kValueTooLarge,     // value longer than the configured maximum
  kWrongMode,         // operation does not fit the key's replication mode
  kIOError,           // the storage engine or filesystem failed
  kCorruption,        // data or a message failed verification
  kBusy,              // resource held by someone else (e.g. data dir locked)
  kClosed,            // handle used after close
  kPanic,             // storage engine panicked; the store refuses further work
  kUnavailable,       // no quorum / peer unreachable
  kTimeout,           // deadline passed
  kConfig,            // configuration file or option invalid
  kVersion,           // unknown options struct or encoding version
  kConflict,          // compare-and-set lost
  kInternal,          // a bug: an exception or impossible state caught at a boundary
  // Appended (the value travels in client responses): the caller's identity may not do
  // this (an admin operation from a data client).
  kPermissionDenied,
};
inline constexpr Code kCodeMax = Code::kPermissionDenied;

// Short, stable name of a code ("NOT_FOUND", ...), for logs and messages.
std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message);
  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status Ok() { return Status(); }

  bool ok() const { return rep_ == nullptr; }
  Code code() const { return rep_ ? rep_->code : Code::kOk; }
  // The message without the code name; empty when OK.
  const std::string& message() const;
  // "CODE: message", or "OK".
  std::string ToString() const;

  bool IsNotFound() const { return code() == Code::kNotFound; }

 private:
  struct Rep {
    Code code;
    std::string message;
  };
  std::unique_ptr<Rep> rep_;
};

inline Status NotFound(std::string m) { return Status(Code::kNotFound, std::move(m)); }
inline Status InvalidArgument(std::string m) { return Status(Code::kInvalidArgument, std::move(m)); }
inline Status IOError(std::string m) { return Status(Code::kIOError, std::move(m)); }
inline Status Corruption(std::string m) { return Status(Code::kCorruption, std::move(m)); }
inline Status Internal(std::string m) { return Status(Code::kInternal, std::move(m)); }

// Either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    assert(!status_.ok() && "StatusOr built from an OK Status has no value");
    if (status_.ok()) status_ = Internal("StatusOr constructed from OK status");
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace geokv

// Returns from the enclosing function when `expr` yields a non-OK Status.
#define GEOKV_RETURN_IF_ERROR(expr)            \
  do {                                         \
    ::geokv::Status geokv_status_ = (expr);    \
    if (!geokv_status_.ok()) return geokv_status_; \
  } while (0)

#endif  // GEOKV_BASE_STATUS_H_
