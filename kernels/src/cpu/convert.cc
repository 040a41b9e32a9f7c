// Half-precision checkpoint bytes to float32 on the CPU pool's threads: the bulk of loading an fp16/bf16 model
// (6.7 B elements for Llama-2-7B), which a JS loop did at ~5 ns an element. Exact: fp16 through a table of all
// 65,536 values (subnormals, infinities and NaN included), bf16 by a 16-bit shift. And back, rounded to nearest
// even: LoRA parts planned in a 16-bit GPU shard's storage type (its host-RAM tier then holds half the bytes).
#include <array>
#include <cmath>
#include <cstring>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace weft::cpu {
namespace {

float f16_value(uint16_t h) {
  const float sign = (h & 0x8000) ? -1.0f : 1.0f;
  const int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -24);
  if (exp == 0x1f) return mant == 0 ? sign * INFINITY : NAN;
  return sign * std::ldexp(1.0f + static_cast<float>(mant) / 1024.0f, exp - 15);
}

const std::array<float, 65536>& f16_table() {
  static const std::array<float, 65536> table = [] {
    std::array<float, 65536> t{};
    for (uint32_t h = 0; h < 65536; ++h) t[h] = f16_value(static_cast<uint16_t>(h));
    return t;
  }();
  return table;
}

}  // namespace

void half_to_float(const uint16_t* src, int64_t n, bool bf16, float* out) {
  const float* table = bf16 ? nullptr : f16_table().data();
  parallel_for(n, int64_t{1} << 16, [&](int64_t b, int64_t e) {
    if (bf16) {
      for (int64_t i = b; i < e; ++i) {
        const uint32_t bits = static_cast<uint32_t>(src[i]) << 16;
        std::memcpy(out + i, &bits, sizeof bits);
      }
    } else {
      for (int64_t i = b; i < e; ++i) out[i] = table[src[i]];
    }
  });
}

void float_to_half(const float* src, int64_t n, bool bf16, uint16_t* out) {
  parallel_for(n, int64_t{1} << 16, [&](int64_t b, int64_t e) {
    if (bf16) {
      for (int64_t i = b; i < e; ++i) {
        uint32_t u;
        std::memcpy(&u, src + i, sizeof u);
        // Ties to even on the 16 dropped bits; a NaN stays a (quiet) NaN instead of rounding into infinity.
        out[i] = std::isnan(src[i]) ? static_cast<uint16_t>((u >> 16) | 0x0040u)
                                    : static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
      }
    } else {
      for (int64_t i = b; i < e; ++i) {
        const _Float16 h = static_cast<_Float16>(src[i]);  // IEEE conversion: round to nearest even, subnormals kept
        std::memcpy(out + i, &h, sizeof h);
      }
    }
  });
}

}  // namespace weft::cpu
