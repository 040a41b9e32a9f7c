// Shared device helpers of the weft kernels: dtype conversion, 8-element vector access, warp/block
// reductions, and the host-side dtype dispatch. Internal to kernels/src/cuda/kernels.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cuda/runtime/env.h"
#include "kernels.h"

namespace weft::cuda::detail {

template <class T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Eight consecutive elements as raw 16-byte words (one word for 16-bit types, two for fp32), so a load can be
// issued early and converted later. p must be 16-byte aligned.
template <class T> struct Pack8 {
  static constexpr int kWords = sizeof(T) * 8 / 16;
  uint4 w[kWords];
};
template <class T> __device__ __forceinline__ Pack8<T> load_pack(const T* p) {
  Pack8<T> r;
  const uint4* src = reinterpret_cast<const uint4*>(p);
#pragma unroll
  for (int i = 0; i < Pack8<T>::kWords; ++i) r.w[i] = src[i];
  return r;
}
__device__ __forceinline__ void unpack(const Pack8<float>& p, float (&v)[8]) {
  const float* f = reinterpret_cast<const float*>(p.w);
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = f[i];
}
__device__ __forceinline__ void unpack(const Pack8<__half>& p, float (&v)[8]) {
  const __half2* h = reinterpret_cast<const __half2*>(p.w);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(h[i]);
    v[2 * i] = f.x;
    v[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void unpack(const Pack8<__nv_bfloat16>& p, float (&v)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(p.w);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    v[2 * i] = f.x;
    v[2 * i + 1] = f.y;
  }
}
template <class T> __device__ __forceinline__ void load8(const T* p, float (&v)[8]) { unpack(load_pack(p), v); }
// Eight values rounded to T and written as 16-byte words. p must be 16-byte aligned.
template <class T> __device__ __forceinline__ void store8(T* p, const float (&v)[8]) {
  Pack8<T> r;
  T* e = reinterpret_cast<T*>(r.w);
#pragma unroll
  for (int i = 0; i < 8; ++i) e[i] = from_f<T>(v[i]);
  uint4* dst = reinterpret_cast<uint4*>(p);
#pragma unroll
  for (int i = 0; i < Pack8<T>::kWords; ++i) dst[i] = r.w[i];
}

template <class T> __device__ __forceinline__ T shfl_xor(T v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
template <class T> __device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += shfl_xor(v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, shfl_xor(v, o));
  return v;
}
// Sum over the block, returned to every thread. red: __shared__ T[32]. Safe to call back to back.
template <class T> __device__ __forceinline__ T block_sum(T v, T* red) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  __syncthreads();  // a previous call may still be reading red
  if (lane == 0) red[warp] = v;
  __syncthreads();
  return warp_sum(lane < warps ? red[lane] : T(0));
}

// exp(m - m_new) for online softmax, 0 when m is -inf (nothing accumulated yet).
__device__ __forceinline__ float rescale(float m, float m_new) { return m == -INFINITY ? 0.0f : expf(m - m_new); }

// Host side ------------------------------------------------------------------------------------------
template <class T> struct Tag { using type = T; };
// Calls f(Tag<T>{}) with the storage type of dt.
template <class F> cudaError_t dispatch(DType dt, F&& f) {
  switch (dt) {
    case DType::kF32: return f(Tag<float>{});
    case DType::kF16: return f(Tag<__half>{});
    case DType::kBF16: return f(Tag<__nv_bfloat16>{});
  }
  return cudaErrorInvalidValue;
}
// Two- and three-dtype kernels: f(Tag<A>, Tag<B>), f(Tag<A>, Tag<B>, Tag<C>).
template <class F> cudaError_t dispatch2(DType a, DType b, F&& f) {
  return dispatch(a, [&](auto ta) { return dispatch(b, [&](auto tb) { return f(ta, tb); }); });
}
template <class F> cudaError_t dispatch3(DType a, DType b, DType c, F&& f) {
  return dispatch(a, [&](auto ta) { return dispatch2(b, c, [&](auto tb, auto tc) { return f(ta, tb, tc); }); });
}
inline size_t dtype_size(DType dt) { return dt == DType::kF32 ? 4 : 2; }
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
// Blocks for a grid-stride loop over n items: enough to fill any current GPU, never more than needed.
inline unsigned grid_for(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
}

// An attribute of the current device, asked once per device (launchers run every layer); 0 when unknown.
template <cudaDeviceAttr kAttr> inline int device_attribute() {
  static int value[64] = {};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) return 0;
  if (value[dev] == 0 && cudaDeviceGetAttribute(&value[dev], kAttr, dev) != cudaSuccess) value[dev] = 0;
  return value[dev];
}
inline int device_major() { return device_attribute<cudaDevAttrComputeCapabilityMajor>(); }
inline int sm_count() { return device_attribute<cudaDevAttrMultiProcessorCount>(); }

}  // namespace weft::cuda::detail
