// Ministral 3's per-position query scale (ModelConfig::q_scale_beta; transformers' get_llama_4_attn_scale), shared by
// the CPU executor (forward.cc) and the CUDA kernel (cuda/kernels/rope.cu): 1 + beta·ln(1 + ⌊position / period⌋) in
// float32.
#pragma once
#include <cmath>
#include <cstdint>

namespace weft {

#ifdef __CUDACC__
__host__ __device__
#endif
inline float llama4_query_scale(int32_t position, float beta, int64_t period) {
  return 1.0f + beta * logf(1.0f + floorf(static_cast<float>(position) / static_cast<float>(period)));
}

}  // namespace weft
