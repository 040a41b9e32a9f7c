// One output of a LoRA expand, for kernels that fold the decode rows' expand into the op after the projection
// (add_norm_lora in norm.cu, silu_mul_lora in activation.cu): scale·(h·B[o]) added to the projection's value and
// rounded to the storage type, as lora.cu's BGMV expand would have written it back — its summation order too
// (8-element chunks when the rank is a multiple of 8 and B is 16-byte aligned, else element by element).
#pragma once
#include "common.cuh"
#include "kernels.h"
#include "sgmv_tiles.h"  // sgmv::live: an entry with weights

namespace weft::cuda::detail {

// y + scale·Σ_k B[o, k]·h[k], rounded to T. B: the entry's [out, rank] matrix; h: the row's [rank] (fp32).
template <class T>
__device__ __forceinline__ float lora_expand_one(float y, const T* B, int rank, float scale, const float* h, int64_t o) {
  const T* brow = B + o * rank;
  float acc = 0.0f;
  if (rank % 8 == 0 && (reinterpret_cast<uintptr_t>(B) & 15u) == 0) {
    for (int k = 0; k < rank; k += 8) {
      float bv[8];
      load8(brow + k, bv);
      acc += bv[0] * h[k] + bv[1] * h[k + 1] + bv[2] * h[k + 2] + bv[3] * h[k + 3] + bv[4] * h[k + 4] +
             bv[5] * h[k + 5] + bv[6] * h[k + 6] + bv[7] * h[k + 7];
    }
  } else {
    for (int k = 0; k < rank; ++k) acc += to_f(brow[k]) * h[k];
  }
  return to_f(from_f<T>(y + scale * acc));
}

}  // namespace weft::cuda::detail
