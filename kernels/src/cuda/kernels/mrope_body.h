// Multimodal RoPE (Qwen2-VL / Qwen2.5-VL) on the CUDA backend: which position rotates frequency i of token t. Its
// rotary frequencies are split into (temporal, height, width) sections (ModelConfig::mrope_section), each rotated by
// that coordinate of the token's 3-D position (Batch::mrope_positions, all T temporal rows first, then the heights,
// then the widths) — cpu::rope_mrope's rule, in a header the host tests include (test/emulated/mrope_host.cc), so
// the index math the kernels run is checked against the CPU on machines without a GPU. Text tokens have three equal
// positions, and with no pos3 every frequency takes `positions` (plain RoPE). Decode rows carry their position index
// plus the sequence's rope delta in pos3 (mrope.ts): the kernels read pos3 from the step's packed buffer, which every
// step uploads — a replayed decode graph reads the new step's values (step_plan.h).
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define WEFT_MROPE_HD __host__ __device__ __forceinline__
#else
#define WEFT_MROPE_HD inline
#endif

namespace weft::cuda {

struct MRope {
  const int32_t* pos3 = nullptr;  // [3, stride]: temporal positions of the step's rows, then heights, then widths
  int64_t stride = 0;             // rows per coordinate (the step's rows)
  int32_t end0 = 0, end1 = 0;     // frequencies [0, end0) take the temporal position, [end0, end1) the height, the
                                  // rest the width (end0 = section[0], end1 = section[0] + section[1])
};

// Section of frequency i: 0 temporal, 1 height, 2 width (a section of 0 frequencies is skipped, as on the CPU).
WEFT_MROPE_HD int mrope_axis(const MRope& m, int64_t i) { return (i >= m.end0 ? 1 : 0) + (i >= m.end1 ? 1 : 0); }

// The position frequency i of row t rotates by.
WEFT_MROPE_HD float rope_position(const int32_t* positions, const MRope& m, int64_t t, int64_t i) {
  return static_cast<float>(m.pos3 ? m.pos3[mrope_axis(m, i) * m.stride + t] : positions[t]);
}

}  // namespace weft::cuda
