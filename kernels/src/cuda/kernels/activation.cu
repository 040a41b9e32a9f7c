// Elementwise ops of the forward pass: SiLU·mul (also GeGLU and the clamped SwiGLU), GELU (tanh / erf), residual add,
// bias add, embedding gather and dtype conversion. Grid-stride loops, fp32 math, one read and one write per element:
// bandwidth-bound.
// Mirrors cpu/elementwise.cc.
#include "common.cuh"
#include "lora_dot.cuh"
#include "pdl.cuh"

namespace weft::cuda {
namespace {
using detail::from_f;
using detail::to_f;
constexpr int kThreads = 256;

__device__ __forceinline__ int64_t first_index() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

__device__ __forceinline__ float gelu_tanh_f(float v) {
  constexpr float kC = 0.7978845608028654f;  // sqrt(2/pi)
  return 0.5f * v * (1.0f + tanhf(kC * (v + 0.044715f * v * v * v)));
}

// kGelu: GeGLU (gelu_tanh_mul) instead of SwiGLU.
template <class T, bool kGelu = false>
__global__ void silu_mul_kernel(const T* gate_up, int64_t in_stride, T* out, int64_t out_stride, int64_t tokens,
                                int64_t inter) {
  detail::wait_then_release();  // pdl.cuh: launched chained
  for (int64_t e = first_index(); e < tokens * inter; e += grid_stride()) {
    const int64_t t = e / inter, i = e - t * inter;
    const float g = to_f(gate_up[t * in_stride + i]);
    const float u = to_f(gate_up[t * in_stride + inter + i]);
    const float act = kGelu ? gelu_tanh_f(g) : g / (1.0f + expf(-g));
    out[t * out_stride + i] = from_f<T>(act * u);
  }
}

// gpt-oss's clamped SwiGLU (cpu::clamped_swiglu): the gate clamped above only, the up both ways, at limit; then
// g·σ(alpha·g)·(u + 1). fp32 math and one rounding, as the CPU's oracle (transformers rounds each step to bf16).
template <class T>
__global__ void clamped_swiglu_kernel(const T* gate_up, int64_t in_stride, T* out, int64_t out_stride, int64_t tokens,
                                      int64_t inter, float alpha, float limit) {
  detail::wait_then_release();  // pdl.cuh: launched chained
  for (int64_t e = first_index(); e < tokens * inter; e += grid_stride()) {
    const int64_t t = e / inter, i = e - t * inter;
    const float gate = to_f(gate_up[t * in_stride + i]), up = to_f(gate_up[t * in_stride + inter + i]);
    const float g = gate > limit ? limit : gate;  // comparisons, not fminf: a NaN stays NaN, as on the CPU
    const float u = up > limit ? limit : (up < -limit ? -limit : up);
    out[t * out_stride + i] = from_f<T>((g / (1.0f + expf(-alpha * g))) * (u + 1.0f));
  }
}

// silu_mul_kernel eight consecutive outputs a thread, with 16-byte loads and stores (WEFT_SILU_MUL_VEC=1): the
// same formula per element, so the same bits. Prefill's SiLU·mul moved 2-byte values one by one with a 64-bit
// division per element (2,048 tokens: 3.2 ms a step on an H100, ~45 % of its bytes' bound).
template <class T>
__global__ void silu_mul_vec_kernel(const T* gate_up, int64_t in_stride, T* out, int64_t out_stride, int64_t tokens,
                                    int64_t inter) {
  detail::wait_then_release();  // pdl.cuh: launched chained
  const int64_t vecs = inter / 8;
  for (int64_t e = first_index(); e < tokens * vecs; e += grid_stride()) {
    const int64_t t = e / vecs, i = (e - t * vecs) * 8;
    float g[8], u[8], r[8];
    detail::load8(gate_up + t * in_stride + i, g);
    detail::load8(gate_up + t * in_stride + inter + i, u);
#pragma unroll
    for (int j = 0; j < 8; ++j) r[j] = (g[j] / (1.0f + expf(-g[j]))) * u[j];
    detail::store8(out + t * out_stride + i, r);
  }
}

// silu_mul with the decode rows' LoRA expand of the gate/up projection folded in (silu_mul_lora): rows from
// first_row on are BGMV rows; for a row with an adapter, gate (slice 0) and up (slice 1) each get
// + scale·h·Bᵀ, rounded as the expand would have written them (lora_dot.cuh), before the activation.
template <class T>
__global__ void silu_mul_lora_kernel(const T* gate_up, int64_t in_stride, T* out, int64_t out_stride, int64_t tokens,
                                     int64_t inter, LoraArgs lora, int64_t first_row) {
  detail::wait_then_release();  // pdl.cuh: launched chained
  for (int64_t e = first_index(); e < tokens * inter; e += grid_stride()) {
    const int64_t t = e / inter, i = e - t * inter;
    float g = to_f(gate_up[t * in_stride + i]);
    float u = to_f(gate_up[t * in_stride + inter + i]);
    if (t >= first_row) {
      const int64_t td = t - first_row;
      const int entry = lora.token_entry[td];
      if (entry >= 0 && entry < lora.num_entries) {
        float* vals[2] = {&g, &u};
        for (int s = 0; s < 2; ++s) {
          const int64_t ei = static_cast<int64_t>(s) * lora.num_entries + entry;
          if (!sgmv::live(lora, ei)) continue;
          const float* h = lora.h + (static_cast<int64_t>(s) * lora.tokens + td) * lora.max_rank;
          *vals[s] = detail::lora_expand_one(*vals[s], static_cast<const T*>(lora.b[ei]), lora.rank[ei],
                                             lora.scale[ei], h, i);
        }
      }
    }
    out[t * out_stride + i] = from_f<T>((g / (1.0f + expf(-g))) * u);
  }
}

template <class T, bool kTanh>
__global__ void gelu_kernel(T* x, int64_t n) {
  for (int64_t e = first_index(); e < n; e += grid_stride()) {
    const float v = to_f(x[e]);
    float r;
    if constexpr (kTanh) {
      r = gelu_tanh_f(v);
    } else {
      r = 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
    }
    x[e] = from_f<T>(r);
  }
}

template <class T>
__global__ void softcap_kernel(T* x, int64_t n, float cap) {
  for (int64_t e = first_index(); e < n; e += grid_stride()) x[e] = from_f<T>(tanhf(to_f(x[e]) / cap) * cap);
}

template <class T>
__global__ void scale_kernel(T* x, int64_t n, float mul) {
  for (int64_t e = first_index(); e < n; e += grid_stride()) x[e] = from_f<T>(to_f(x[e]) * mul);
}

template <class Ty, class Tx>
__global__ void add_kernel(Ty* y, const Tx* x, int64_t n) {
  for (int64_t e = first_index(); e < n; e += grid_stride()) y[e] = from_f<Ty>(to_f(y[e]) + to_f(x[e]));
}

template <class Ty, class Tb>
__global__ void bias_kernel(Ty* y, int64_t rows, int64_t cols, int64_t stride, const Tb* bias) {
  for (int64_t e = first_index(); e < rows * cols; e += grid_stride()) {
    const int64_t r = e / cols, c = e - r * cols;
    y[r * stride + c] = from_f<Ty>(to_f(y[r * stride + c]) + to_f(bias[c]));
  }
}

// scale != 1 (Gemma): the row times scale, rounded to the table's dtype as transformers multiplies in it.
template <class Tt, class To>
__global__ void embedding_kernel(const Tt* table, int64_t rows, int64_t dim, const int32_t* ids, int64_t n, To* out,
                                 const Tt* pos_table, int64_t pos_rows, const int32_t* positions, float scale) {
  for (int64_t e = first_index(); e < n * dim; e += grid_stride()) {
    const int64_t t = e / dim, d = e - t * dim;
    const int64_t id = ids[t];
    float v = id >= 0 && id < rows ? to_f(table[id * dim + d]) : 0.0f;
    if (scale != 1.0f) v = to_f(from_f<Tt>(v * scale));
    if (pos_table) {
      const int64_t p = positions[t];
      v += p >= 0 && p < pos_rows ? to_f(pos_table[p * dim + d]) : 0.0f;
    }
    out[e] = from_f<To>(v);
  }
}

template <class Ts, class Td>
__global__ void convert_kernel(const Ts* src, Td* dst, int64_t n) {
  for (int64_t e = first_index(); e < n; e += grid_stride()) dst[e] = from_f<Td>(to_f(src[e]));
}

// x = min(limit, max(-limit, x)) (OLMo's clip_qkv); the bounds rounded to the dtype as torch's clamp_ compares them.
template <class T>
__global__ void clamp_kernel(T* x, int64_t n, float limit) {
  const float hi = to_f(from_f<T>(limit));
  for (int64_t e = first_index(); e < n; e += grid_stride()) x[e] = from_f<T>(fminf(hi, fmaxf(-hi, to_f(x[e]))));
}

template <class T>
__global__ void relu_squared_kernel(T* x, int64_t n) {
  for (int64_t e = first_index(); e < n; e += grid_stride()) {
    const float r = fmaxf(to_f(x[e]), 0.0f);
    x[e] = from_f<T>(r * r);
  }
}

template <class T>
__global__ void xielu_kernel(T* x, int64_t n, const float* params) {
  const float alpha_p = params[0], alpha_n = params[1], beta = params[2], eps = params[3];
  for (int64_t e = first_index(); e < n; e += grid_stride()) {
    const float v = to_f(x[e]);
    x[e] = from_f<T>(v > 0.0f ? alpha_p * v * v + beta * v : (expm1f(fminf(v, eps)) - v) * alpha_n + beta * v);
  }
}

template <bool kTanh> cudaError_t gelu(void* x, int64_t n, DType dtype, cudaStream_t stream) {
  if (n < 0 || (n > 0 && !x)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    gelu_kernel<T, kTanh><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<T*>(x), n);
    return cudaGetLastError();
  });
}

}  // namespace

cudaError_t silu_mul_vec(const void* gate_up, int64_t in_stride, void* out, int64_t out_stride, int64_t tokens,
                         int64_t inter, DType dtype, cudaStream_t stream) {
  if (tokens < 0 || inter < 0 || in_stride < 2 * inter || out_stride < inter) return cudaErrorInvalidValue;
  if (inter % 8 != 0 || in_stride % 8 != 0 || out_stride % 8 != 0 || !detail::aligned16(gate_up) ||
      !detail::aligned16(out))
    return cudaErrorNotSupported;
  if (tokens == 0 || inter == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return detail::launch_chained(silu_mul_vec_kernel<T>, dim3(detail::grid_for(tokens * inter / 8, kThreads)),
                                  dim3(kThreads), 0, stream, static_cast<const T*>(gate_up), in_stride,
                                  static_cast<T*>(out), out_stride, tokens, inter);
  });
}

cudaError_t silu_mul(const void* gate_up, int64_t in_stride, void* out, int64_t out_stride, int64_t tokens,
                     int64_t inter, DType dtype, cudaStream_t stream) {
  if (tokens < 0 || inter < 0 || in_stride < 2 * inter || out_stride < inter) return cudaErrorInvalidValue;
  if (tokens == 0 || inter == 0) return cudaSuccess;
  static const bool vec_on = detail::env_equals("WEFT_SILU_MUL_VEC", "1");  // opt-in until measured on a GPU
  if (vec_on) {
    const cudaError_t err = silu_mul_vec(gate_up, in_stride, out, out_stride, tokens, inter, dtype, stream);
    if (err != cudaErrorNotSupported) return err;
  }
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return detail::launch_chained(silu_mul_kernel<T>, dim3(detail::grid_for(tokens * inter, kThreads)),
                                  dim3(kThreads), 0, stream, static_cast<const T*>(gate_up), in_stride,
                                  static_cast<T*>(out), out_stride, tokens, inter);
  });
}

cudaError_t gelu_tanh_mul(const void* gate_up, int64_t in_stride, void* out, int64_t out_stride, int64_t tokens,
                          int64_t inter, DType dtype, cudaStream_t stream) {
  if (tokens < 0 || inter < 0 || in_stride < 2 * inter || out_stride < inter) return cudaErrorInvalidValue;
  if (tokens == 0 || inter == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return detail::launch_chained(silu_mul_kernel<T, true>, dim3(detail::grid_for(tokens * inter, kThreads)),
                                  dim3(kThreads), 0, stream, static_cast<const T*>(gate_up), in_stride,
                                  static_cast<T*>(out), out_stride, tokens, inter);
  });
}

cudaError_t clamped_swiglu(const void* gate_up, int64_t in_stride, void* out, int64_t out_stride, int64_t tokens,
                           int64_t inter, float alpha, float limit, DType dtype, cudaStream_t stream) {
  if (tokens < 0 || inter < 0 || in_stride < 2 * inter || out_stride < inter || !(limit > 0.0f))
    return cudaErrorInvalidValue;
  if (tokens == 0 || inter == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return detail::launch_chained(clamped_swiglu_kernel<T>, dim3(detail::grid_for(tokens * inter, kThreads)),
                                  dim3(kThreads), 0, stream, static_cast<const T*>(gate_up), in_stride,
                                  static_cast<T*>(out), out_stride, tokens, inter, alpha, limit);
  });
}

cudaError_t silu_mul_lora(const void* gate_up, int64_t in_stride, void* out, int64_t out_stride, int64_t tokens,
                          int64_t inter, DType dtype, const LoraArgs& lora, cudaStream_t stream) {
  if (tokens < 0 || inter < 0 || in_stride < 2 * inter || out_stride < inter || lora.dtype != dtype ||
      lora.num_slices != 2 || !lora.token_entry || !lora.h || lora.tokens < 0 || lora.tokens > tokens || !lora.a ||
      !lora.b || !lora.rank || !lora.scale || lora.max_rank <= 0)
    return cudaErrorInvalidValue;
  if (tokens == 0 || inter == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return detail::launch_chained(silu_mul_lora_kernel<T>, dim3(detail::grid_for(tokens * inter, kThreads)),
                                  dim3(kThreads), 0, stream, static_cast<const T*>(gate_up), in_stride,
                                  static_cast<T*>(out), out_stride, tokens, inter, lora, tokens - lora.tokens);
  });
}

cudaError_t gelu_tanh(void* x, int64_t n, DType dtype, cudaStream_t stream) { return gelu<true>(x, n, dtype, stream); }

cudaError_t scale_inplace(void* x, DType dtype, int64_t n, float mul, cudaStream_t stream) {
  if (n < 0 || (n > 0 && !x)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    scale_kernel<T><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<T*>(x), n, mul);
    return cudaGetLastError();
  });
}

cudaError_t softcap_inplace(void* x, DType dtype, int64_t n, float cap, cudaStream_t stream) {
  if (n < 0 || (n > 0 && !x) || !(cap > 0.0f)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    softcap_kernel<T><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<T*>(x), n, cap);
    return cudaGetLastError();
  });
}
cudaError_t gelu_erf(void* x, int64_t n, DType dtype, cudaStream_t stream) { return gelu<false>(x, n, dtype, stream); }

cudaError_t relu_squared(void* x, int64_t n, DType dtype, cudaStream_t stream) {
  if (n < 0 || (n > 0 && !x)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    relu_squared_kernel<T><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<T*>(x), n);
    return cudaGetLastError();
  });
}

cudaError_t xielu(void* x, int64_t n, const float* params, DType dtype, cudaStream_t stream) {
  if (n < 0 || (n > 0 && (!x || !params))) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    xielu_kernel<T><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<T*>(x), n, params);
    return cudaGetLastError();
  });
}

cudaError_t clamp_inplace(void* x, int64_t n, float limit, DType dtype, cudaStream_t stream) {
  if (n < 0 || (n > 0 && !x) || !(limit > 0.0f)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    clamp_kernel<T><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<T*>(x), n, limit);
    return cudaGetLastError();
  });
}

cudaError_t add_inplace(void* y, DType y_dtype, const void* x, DType x_dtype, int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return detail::dispatch2(y_dtype, x_dtype, [&](auto ty, auto tx) {
    using Ty = typename decltype(ty)::type;
    using Tx = typename decltype(tx)::type;
    add_kernel<Ty, Tx><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<Ty*>(y),
                                                                                static_cast<const Tx*>(x), n);
    return cudaGetLastError();
  });
}

cudaError_t bias_add(void* y, DType y_dtype, int64_t rows, int64_t cols, int64_t y_stride, const void* bias,
                     DType bias_dtype, cudaStream_t stream) {
  if (rows < 0 || cols < 0 || y_stride < cols) return cudaErrorInvalidValue;
  if (rows == 0 || cols == 0) return cudaSuccess;
  return detail::dispatch2(y_dtype, bias_dtype, [&](auto ty, auto tb) {
    using Ty = typename decltype(ty)::type;
    using Tb = typename decltype(tb)::type;
    bias_kernel<Ty, Tb><<<detail::grid_for(rows * cols, kThreads), kThreads, 0, stream>>>(
        static_cast<Ty*>(y), rows, cols, y_stride, static_cast<const Tb*>(bias));
    return cudaGetLastError();
  });
}

cudaError_t embedding_gather(const void* table, DType table_dtype, int64_t rows, int64_t dim, const int32_t* ids,
                             int64_t n, void* out, DType out_dtype, const void* pos_table, int64_t pos_rows,
                             const int32_t* positions, cudaStream_t stream, float scale) {
  if (n < 0 || dim < 0 || rows < 0 || (pos_table && !positions)) return cudaErrorInvalidValue;
  if (n == 0 || dim == 0) return cudaSuccess;
  return detail::dispatch2(table_dtype, out_dtype, [&](auto tt, auto to) {
    using Tt = typename decltype(tt)::type;
    using To = typename decltype(to)::type;
    embedding_kernel<Tt, To><<<detail::grid_for(n * dim, kThreads), kThreads, 0, stream>>>(
        static_cast<const Tt*>(table), rows, dim, ids, n, static_cast<To*>(out), static_cast<const Tt*>(pos_table),
        pos_rows, positions, scale);
    return cudaGetLastError();
  });
}

cudaError_t convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  return detail::dispatch2(src_dtype, dst_dtype, [&](auto ts, auto td) {
    using Ts = typename decltype(ts)::type;
    using Td = typename decltype(td)::type;
    convert_kernel<Ts, Td><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const Ts*>(src),
                                                                                    static_cast<Td*>(dst), n);
    return cudaGetLastError();
  });
}

}  // namespace weft::cuda
