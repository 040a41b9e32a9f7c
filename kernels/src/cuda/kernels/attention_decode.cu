// Decode attention over the paged KV cache: the CUDA side of decode_attention_body.h (the algorithm and why it
// is split this way are described there) — device Ops, the kernels, the launcher and its loads-in-flight depth.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

#include "common.cuh"
#include "decode_attention_body.h"
#include "pdl.cuh"

namespace weft::cuda {
namespace {
namespace da = decode_attention;

template <class T> struct DecodeOps {  // the body's Ops on the device, for storage type T
  using Elem = T;
  using Pack = detail::Pack8<T>;
  static __device__ __forceinline__ Pack load(const T* p) { return detail::load_pack(p); }
  static __device__ __forceinline__ void unpack(const Pack& p, float (&v)[8]) { detail::unpack(p, v); }
  static __device__ __forceinline__ T from_f(float v) { return detail::from_f<T>(v); }
  static __device__ __forceinline__ float shfl_xor(float v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
  static __device__ __forceinline__ void sync() { __syncthreads(); }
  static __device__ __forceinline__ float exp(float x) { return expf(x); }
};

template <class T, int HPB, int L, int D>
__global__ void __launch_bounds__(da::kThreads) decode_kernel(PagedAttention a, float* ws_ml, float* ws_acc,
                                                              int max_splits) {
  __shared__ da::Shared<HPB> sm;
  detail::wait_then_release();  // pdl.cuh: launched chained
  const prefill_mma::BlockIndex ix{static_cast<int>(threadIdx.x), static_cast<int>(blockIdx.x),
                                   static_cast<int>(blockIdx.y), static_cast<int>(blockIdx.z)};
  da::block<DecodeOps<T>, HPB, L, D>(a, ws_ml, ws_acc, max_splits, ix, sm);
}

template <class T>
__global__ void decode_merge_kernel(PagedAttention a, const float* ws_ml, const float* ws_acc, int max_splits) {
  detail::wait_then_release();  // pdl.cuh: launched chained
  da::merge<DecodeOps<T>>(a, ws_ml, ws_acc, max_splits, static_cast<int>(blockIdx.x), static_cast<int>(blockIdx.y),
                          static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x));
}

// WEFT_DECODE_ATTENTION_DEPTH: loads in flight per lane. 1 (default: the kernel measured on an H100), 4 or 8;
// `auto` takes 8 when the grid has fewer than two blocks per SM (batch 1-2 at short contexts), 4 below eight,
// else 1. Opt-in until measured on a GPU. Every depth computes the same bits, so choosing by grid size does not
// make a row's result depend on its batch.
int configured_depth() {
  static const int depth = [] {
    const char* v = std::getenv("WEFT_DECODE_ATTENTION_DEPTH");
    if (!v || !*v) return 1;
    if (std::strcmp(v, "auto") == 0) return 0;
    const int d = std::atoi(v);
    return d == 4 || d == 8 ? d : 1;
  }();
  return depth;
}

int depth_for(int64_t blocks, int requested) {
  if (requested != 0) return requested;
  const int64_t sms = detail::sm_count() > 0 ? detail::sm_count() : 132;
  return blocks < 2 * sms ? 8 : blocks < 8 * sms ? 4 : 1;
}

template <class T, int HPB, int L>
cudaError_t launch_decode(const PagedAttention& a, float* ml, float* acc, int splits, int depth, cudaStream_t stream) {
  const dim3 grid(a.heads / HPB, a.num_tokens, splits);
  auto kernel = decode_kernel<T, HPB, L, 1>;
  // Deeper rings only for 16-bit K/V and head sizes 33..128 (the models a GPU serves): fewer instantiations.
  if constexpr (sizeof(T) == 2 && (L == 8 || L == 16)) {
    const int d = depth_for(static_cast<int64_t>(grid.x) * grid.y * grid.z, depth);
    if (d == 8) kernel = decode_kernel<T, HPB, L, 8>;
    else if (d == 4) kernel = decode_kernel<T, HPB, L, 4>;
  }
  const cudaError_t err = detail::launch_chained(kernel, grid, dim3(da::kThreads), 0, stream, a, ml, acc, splits);
  if (err != cudaSuccess || splits == 1) return err;
  return detail::launch_chained(decode_merge_kernel<T>, dim3(a.heads, a.num_tokens), dim3(128), 0, stream, a,
                                static_cast<const float*>(ml), static_cast<const float*>(acc), splits);
}

template <class T, int HPB>
cudaError_t launch_decode(const PagedAttention& a, float* ml, float* acc, int splits, int depth, cudaStream_t stream) {
  if (a.head_dim <= 32) return launch_decode<T, HPB, 4>(a, ml, acc, splits, depth, stream);
  if (a.head_dim <= 64) return launch_decode<T, HPB, 8>(a, ml, acc, splits, depth, stream);
  if (a.head_dim <= 128) return launch_decode<T, HPB, 16>(a, ml, acc, splits, depth, stream);
  return launch_decode<T, HPB, 32>(a, ml, acc, splits, depth, stream);
}

}  // namespace

size_t paged_attention_decode_workspace_bytes(const PagedAttention& a) {
  const int64_t splits = da::splits(a);
  if (splits <= 1 || a.num_tokens <= 0) return 0;
  return sizeof(float) * static_cast<size_t>(a.num_tokens) * a.heads * splits * (a.head_dim + 2);
}

cudaError_t paged_attention_decode_depth(const PagedAttention& a, void* workspace, size_t workspace_bytes, int depth,
                                         cudaStream_t stream) {
  if (!paged_attention_valid(a) || a.num_tokens > 65535) return cudaErrorInvalidValue;
  if (depth != 0 && depth != 1 && depth != 4 && depth != 8) return cudaErrorInvalidValue;
  if (a.num_tokens == 0) return cudaSuccess;
  const int64_t splits = da::splits(a);
  if (splits > 65535) return cudaErrorInvalidValue;
  float* ml = static_cast<float*>(workspace);
  float* acc = ml ? ml + static_cast<int64_t>(a.num_tokens) * a.heads * splits * 2 : nullptr;
  if (splits > 1 && (!workspace || workspace_bytes < paged_attention_decode_workspace_bytes(a)))
    return cudaErrorInvalidValue;
  const int group = a.heads / a.kv_heads;
  const int s = static_cast<int>(splits);
  return detail::dispatch(a.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    // At most 4 heads per block: 8 needs ~240 registers a thread (2 blocks per SM, too few loads in flight);
    // the two blocks of an 8-head group run side by side, so the second K/V read mostly hits L2.
    if (group % 4 == 0) return launch_decode<T, 4>(a, ml, acc, s, depth, stream);
    if (group % 2 == 0) return launch_decode<T, 2>(a, ml, acc, s, depth, stream);
    return launch_decode<T, 1>(a, ml, acc, s, depth, stream);
  });
}

cudaError_t paged_attention_decode(const PagedAttention& a, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream) {
  return paged_attention_decode_depth(a, workspace, workspace_bytes, configured_depth(), stream);
}

}  // namespace weft::cuda
