// Limits: the sizes every entry point enforces (key and value bytes), chosen by the
// configuration and checked by the engine, the embedded node and the C ABI alike.
#ifndef GEOKV_CORE_ENGINE_LIMITS_H_
#define GEOKV_CORE_ENGINE_LIMITS_H_

#include <cstddef>

namespace geokv {

struct Limits {
  // Hard ceilings for what a configuration may ask for.
  static constexpr size_t kKeyBytesCeiling = 64 * 1024;
  static constexpr size_t kValueBytesCeiling = 64 * 1024 * 1024;

  size_t key_bytes_max = 4096;
  size_t value_bytes_max = 1024 * 1024;
};

}  // namespace geokv

#endif  // GEOKV_CORE_ENGINE_LIMITS_H_
