// How the LoRA shrink emulator tests (lora_shrink_mma_emu.cc, lora_shrink_split_emu.cc) judge one entry of h:
// its error against x·a in double precision, relative to Σ|x_i·a_i| (what fp32 summation in any order can be off
// by scales with that sum, not with the result, which may cancel to near zero).
#pragma once
#include <cmath>
#include <cstdint>

#include "warp_emu.h"

namespace weft::emu {

inline double shrink_rel_err(DType d, const uint16_t* x, const uint16_t* a, int64_t in, float got) {
  double ref = 0, mag = 0;
  for (int64_t i = 0; i < in; ++i) {
    const double p = static_cast<double>(from_bits(d, x[i])) * from_bits(d, a[i]);
    ref += p;
    mag += std::fabs(p);
  }
  return std::fabs(got - ref) / (mag + 1e-30);
}

}  // namespace weft::emu
