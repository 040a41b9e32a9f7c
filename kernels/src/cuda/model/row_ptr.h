// Row addressing of the step's row-major device buffers (cuda_forward.cc, cuda_lora.cc).
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace weft::cuda {

// Byte offset of row `row` of a [*, cols] matrix of `elem`-byte elements.
template <class P> P* row_ptr(P* base, int64_t row, int64_t cols, size_t elem) {
  using Byte = std::conditional_t<std::is_const_v<P>, const char, char>;
  return reinterpret_cast<P*>(reinterpret_cast<Byte*>(base) + static_cast<size_t>(row * cols) * elem);
}

}  // namespace weft::cuda
