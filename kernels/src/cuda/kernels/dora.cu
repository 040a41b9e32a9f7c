// DoRA on the device (kernels.h): the channel scale over a step's rows (lora_dora_scale: one block per (row,
// slice), a few launches per layer that touch only the DoRA rows' outputs, once), and the weight-row norms an
// adapter load needs (lora_weight_norms_sq: one block per row; a load of a rank-16 DoRA adapter on every module
// of a Llama-2-7B reads each weight once, ~13 GB, instead of copying it back to the host).
#include "cuda/kernels/common.cuh"

namespace weft::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void dora_scale_kernel(DoraScaleArgs a) {
  const int64_t row = blockIdx.x;
  const int s = static_cast<int>(blockIdx.y);
  const int32_t e = a.row_entry[row];
  if (e < 0) return;
  const float* mag = a.mag[static_cast<int64_t>(s) * a.num_entries + e];
  if (!mag) return;
  const int32_t off = a.out_offset[s], len = a.out_len[s];
  T* y = static_cast<T*>(a.y) + row * a.y_stride + off;
  const T* bias = a.bias ? static_cast<const T*>(a.bias) + off : nullptr;
  for (int32_t o = static_cast<int32_t>(threadIdx.x); o < len; o += kThreads) {
    const float b = bias ? detail::to_f(bias[o]) : 0.0f;
    y[o] = detail::from_f<T>(mag[o] * (detail::to_f(y[o]) - b) + b);
  }
}

template <class T>
__global__ void weight_norms_kernel(const T* w, int64_t in, const float* a, const float* b, int32_t rank, float scale,
                                    float* out) {
  extern __shared__ float brow[];  // b[o, :]
  __shared__ float partial[kThreads / 32];
  const int64_t o = blockIdx.x;
  for (int32_t k = static_cast<int32_t>(threadIdx.x); k < rank; k += kThreads) brow[k] = b[o * rank + k];
  __syncthreads();
  float acc = 0.0f;
  for (int64_t j = threadIdx.x; j < in; j += kThreads) {  // consecutive threads read consecutive columns
    float delta = 0.0f;
    for (int32_t k = 0; k < rank; ++k) delta += brow[k] * a[k * in + j];
    const float v = detail::to_f(w[o * in + j]) + scale * delta;
    acc += v * v;
  }
  acc = detail::warp_sum(acc);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = 0.0f;
    for (int i = 0; i < kThreads / 32; ++i) s += partial[i];
    out[o] = s;
  }
}

}  // namespace

cudaError_t lora_weight_norms_sq(const void* w, DType w_dtype, int64_t rows, int64_t in, const float* a, const float* b,
                                 int32_t rank, float scale, float* out, cudaStream_t stream) {
  if (rows < 0 || in <= 0 || rank <= 0 || rank > 1024 || !w || !a || !b || !out) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (rows > 2147483647) return cudaErrorInvalidConfiguration;
  return detail::dispatch(w_dtype, [&](auto t) {
    using T = typename decltype(t)::type;
    weight_norms_kernel<T><<<static_cast<unsigned>(rows), kThreads, sizeof(float) * static_cast<size_t>(rank), stream>>>(
        static_cast<const T*>(w), in, a, b, rank, scale, out);
    return cudaGetLastError();
  });
}

cudaError_t lora_dora_scale(const DoraScaleArgs& a, cudaStream_t stream) {
  if (a.rows < 0 || a.num_slices <= 0 || a.num_entries <= 0 || !a.y || !a.mag || !a.row_entry) return cudaErrorInvalidValue;
  if (a.rows == 0) return cudaSuccess;
  if (a.rows > 65535 || a.num_slices > 65535) return cudaErrorInvalidConfiguration;
  return detail::dispatch(a.dtype, [&](auto t) {
    using T = typename decltype(t)::type;
    dora_scale_kernel<T><<<dim3(static_cast<unsigned>(a.rows), static_cast<unsigned>(a.num_slices)), kThreads, 0, stream>>>(a);
    return cudaGetLastError();
  });
}

}  // namespace weft::cuda
