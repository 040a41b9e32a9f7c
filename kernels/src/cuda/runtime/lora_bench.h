// time_lora_kernel: the GPU side of `weft bench --scenario lora-kernels --device cuda`. Times one LoRA launcher of
// cuda/kernels/lora.cu (SGMV or BGMV, shrink or expand) on synthetic operands of one module shape: one slice,
// `adapters` adapters of one rank, the tokens split evenly into `adapters` contiguous runs (SGMV segments, and the
// same rows → adapter map as BGMV's per-token table).
#pragma once
#include <cstdint>

#include "cuda/kernels/kernels.h"

namespace weft::cuda {

struct LoraKernelSpec {
  enum class Op { kShrink, kExpand };    // h = x·Aᵀ, or y += scale·h·Bᵀ
  enum class Kind { kSgmv, kBgmv };      // lora_sgmv_* (segments), lora_bgmv_* (one row per block, token table)
  Op op = Op::kShrink;
  Kind kind = Kind::kSgmv;
  DType dtype = DType::kBF16;            // x, y, A, B (h is fp32)
  int64_t tokens = 1;                    // rows of x and y
  int64_t adapters = 1;                  // distinct adapters = SGMV segments = BGMV entries
  int64_t rank = 16;                     // of every adapter (≤ 1024, the kernels' limit)
  int64_t in = 4096, out = 4096;         // A [rank, in], B [out, rank]
  int iterations = 200;                  // timed calls
  int warmup = 10;                       // untimed calls before them
  int device = 0;
  // Rotate over enough copies of every operand (x, y, h, A, B, the tables) that ≥ 4× the L2 cache lies between two
  // uses of one copy, as when each layer's adapters are read once per step; false: the same operands every call
  // (small cases then run from L2).
  bool cold_l2 = true;
};

// Microseconds per call: CUDA events around `iterations` back-to-back launches on one stream, after `warmup`
// launches. Allocates on `device` (one allocation, filled with 0x3c bytes: small finite values in every dtype) and
// frees everything before it returns. Throws std::invalid_argument for a bad spec and std::runtime_error when CUDA
// fails (no device, out of memory, a refused launch).
double time_lora_kernel(const LoraKernelSpec& spec);

}  // namespace weft::cuda
