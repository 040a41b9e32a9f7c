// The CUDA backend's environment switches (WEFT_*: kernel choices for A/B measurements), read by host code in
// .cu and .cc files alike.
#pragma once
#include <cstdlib>
#include <cstring>

namespace weft::cuda::detail {

// Whether environment variable `name` is set to exactly `value`.
inline bool env_equals(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, value) == 0;
}

}  // namespace weft::cuda::detail
