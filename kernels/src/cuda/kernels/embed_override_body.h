// Embedding-row overrides (Batch::embed_rows: a vision-language model's image features in place of its placeholder
// tokens' embeddings) on the CUDA backend: the packed layout a step uploads and the per-element body that
// embed_override.cu's kernel runs. Plain C++ with no CUDA header, so the host check (test/emulated/
// embed_override_host.cc, test/unit/cuda-embed-override-host.test.ts) builds it with g++ alone and runs the same
// index math on the CPU.
//
// One host-to-device copy per step carries every override, packed by pack() into pinned memory:
//   [n int32 destination rows, padded to 16 bytes | n · hidden fp32 feature rows, in embed_rows' order]
// A destination is the step plan's row of the batch row (StepPlan::row_of, step_plan.h): the kernels run the rows
// reordered (multi-row sequences first, then single-row ones, each grouped by adapter), not in the batch's order.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define WEFT_EO_HD __host__ __device__ __forceinline__
#else
#define WEFT_EO_HD inline
#endif

namespace weft::cuda::embed_rows {

// Bytes of the destination rows: n int32s rounded up to 16, so the feature rows start 16-byte aligned.
WEFT_EO_HD int64_t rows_bytes(int64_t n) { return (n * 4 + 15) / 16 * 16; }
WEFT_EO_HD int64_t packed_bytes(int64_t n, int64_t hidden) { return rows_bytes(n) + n * hidden * 4; }

// Host: packs a validated batch's n overrides (embed_rows [n], values [n, hidden]) into `out` (packed_bytes(n,
// hidden) bytes); row_of: the plan's row of each batch row.
inline void pack(const int32_t* embed_rows, const float* values, int64_t n, int64_t hidden, const int32_t* row_of,
                 void* out) {
  int32_t* dest = static_cast<int32_t*>(out);
  for (int64_t i = 0; i < n; ++i) dest[i] = row_of[embed_rows[i]];
  for (int64_t i = n; i < rows_bytes(n) / 4; ++i) dest[i] = -1;  // padding: never read
  std::memcpy(static_cast<char*>(out) + rows_bytes(n), values, static_cast<size_t>(n * hidden) * sizeof(float));
}

// Element e of the n · hidden override elements: h[dest row, column] = round(feature). h: the fp32 residual stream
// [rows, hidden]; round: the feature rounded to the model's dtype and back (identity in fp32), so an image row
// enters bf16 / fp16 models as a value the dtype holds, like the token rows gathered from the dtype's table.
template <class Round>
WEFT_EO_HD void element(int64_t e, const void* packed, int64_t n, int64_t hidden, float* h, Round round) {
  const int32_t* dest = static_cast<const int32_t*>(packed);
  const float* values = reinterpret_cast<const float*>(static_cast<const char*>(packed) + rows_bytes(n));
  const int64_t i = e / hidden, c = e - i * hidden;
  h[static_cast<int64_t>(dest[i]) * hidden + c] = round(values[e]);
}

}  // namespace weft::cuda::embed_rows
