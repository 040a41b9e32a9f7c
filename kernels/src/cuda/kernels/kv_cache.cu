// Paged KV cache write: the K and V rows of this step's tokens go to their cache slots (cpu::kv_cache_write).
// Dtype-agnostic byte copy with the widest word that every pointer, stride and row size allows.
#include "common.cuh"

namespace weft::cuda {
namespace {

template <class W>
__global__ void kv_write_kernel(const char* k, const char* v, int64_t src_stride_bytes, int64_t tokens,
                                int64_t row_words, const int32_t* slots, char* k_cache, char* v_cache,
                                int64_t cache_row_bytes) {
  const int64_t n = tokens * row_words;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = e / row_words, w = e - t * row_words;
    const int64_t slot = slots[t];
    if (slot < 0) continue;  // padding token
    reinterpret_cast<W*>(k_cache + slot * cache_row_bytes)[w] =
        reinterpret_cast<const W*>(k + t * src_stride_bytes)[w];
    reinterpret_cast<W*>(v_cache + slot * cache_row_bytes)[w] =
        reinterpret_cast<const W*>(v + t * src_stride_bytes)[w];
  }
}

template <class W>
cudaError_t launch(const void* k, const void* v, int64_t src_stride_bytes, int64_t tokens, int64_t row_bytes,
                   const int32_t* slots, void* kc, void* vc, cudaStream_t stream) {
  const int64_t row_words = row_bytes / static_cast<int64_t>(sizeof(W));
  constexpr int kThreads = 256;
  kv_write_kernel<W><<<detail::grid_for(tokens * row_words, kThreads), kThreads, 0, stream>>>(
      static_cast<const char*>(k), static_cast<const char*>(v), src_stride_bytes, tokens, row_words, slots,
      static_cast<char*>(kc), static_cast<char*>(vc), row_bytes);
  return cudaGetLastError();
}

}  // namespace

cudaError_t kv_cache_write(const void* k, const void* v, int64_t src_stride, int64_t tokens, int64_t kv_dim,
                           const int32_t* slot_mapping, void* k_cache, void* v_cache, DType dtype,
                           cudaStream_t stream) {
  if (tokens < 0 || kv_dim < 0 || src_stride < kv_dim) return cudaErrorInvalidValue;
  if (tokens == 0 || kv_dim == 0) return cudaSuccess;
  if (!k || !v || !slot_mapping || !k_cache || !v_cache) return cudaErrorInvalidValue;
  const int64_t es = static_cast<int64_t>(detail::dtype_size(dtype));
  const int64_t row_bytes = kv_dim * es, stride_bytes = src_stride * es;
  // The largest power of two (≤ 16) dividing every address and stride involved.
  const uint64_t bits = reinterpret_cast<uintptr_t>(k) | reinterpret_cast<uintptr_t>(v) |
                        reinterpret_cast<uintptr_t>(k_cache) | reinterpret_cast<uintptr_t>(v_cache) |
                        static_cast<uint64_t>(row_bytes) | static_cast<uint64_t>(stride_bytes) | 16u;
  switch (bits & (~bits + 1)) {
    case 16: return launch<uint4>(k, v, stride_bytes, tokens, row_bytes, slot_mapping, k_cache, v_cache, stream);
    case 8: return launch<uint2>(k, v, stride_bytes, tokens, row_bytes, slot_mapping, k_cache, v_cache, stream);
    case 4: return launch<uint32_t>(k, v, stride_bytes, tokens, row_bytes, slot_mapping, k_cache, v_cache, stream);
    default: return launch<uint16_t>(k, v, stride_bytes, tokens, row_bytes, slot_mapping, k_cache, v_cache, stream);
  }
}

}  // namespace weft::cuda
