// Rotate-half rotary embedding (GPT-NeoX / HF Llama layout), in place on q and k, or (rope_kv_cache_write) in
// place on q with k rotated into its paged-cache slot and v copied there, one launch for both steps. Mirrors
// cpu::rope_rotate_half: angle = pos · inv_freq[i] rounded to fp32 (as transformers computes freqs), then
// cos/sin of that fp32 angle. They are evaluated in double and rounded, so the values match the CPU's
// correctly rounded cosf/sinf even under --use_fast_math (which would swap sincosf for a short-range
// intrinsic, wrong for positions in the thousands). A step may compute them once (rope_cos_sin_table: every
// layer rotates at the same positions, and every head at the same angles) and pass the table to the rotations,
// which then read the very values they would have computed.
#include "common.cuh"
#include "lora_dot.cuh"
#include "pdl.cuh"
#include "model/query_scale.h"

namespace weft::cuda {
namespace {
using detail::from_f;
using detail::to_f;

// Each token's q row times llama4_query_scale(position + offset) (model/query_scale.h): rounded to the dtype first
// where transformers casts the scale to q's dtype (Ministral 3, in_dtype), else in fp32 (Llama 4).
template <class T>
__global__ void query_position_scale_kernel(T* q, int64_t stride, int64_t q_dim, int64_t tokens, const int32_t* positions,
                                            float beta, int64_t period, int32_t offset, bool in_dtype) {
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    const float scale = llama4_query_scale(positions[t] + offset, beta, period);
    const float s = in_dtype ? to_f(from_f<T>(scale)) : scale;
    for (int64_t i = threadIdx.x; i < q_dim; i += blockDim.x) q[t * stride + i] = from_f<T>(to_f(q[t * stride + i]) * s);
  }
}

// cos and sin of a position's angle for frequency i, as the CPU computes them (see the file comment).
__device__ __forceinline__ void rope_cos_sin(float pos, const float* inv_freq, int64_t i, float factor, float& c,
                                             float& s) {
  const float angle = pos * inv_freq[i];
  double sd, cd;
  sincos(static_cast<double>(angle), &sd, &cd);
  c = static_cast<float>(cd) * factor;
  s = static_cast<float>(sd) * factor;
}

// Token t's frequencies: the long factors' (after the short ones in inv_freq) where rope_long marks it.
__device__ __forceinline__ const float* freqs_of(const float* inv_freq, const int32_t* rope_long, int64_t t,
                                                 int64_t half) {
  return rope_long && rope_long[t] ? inv_freq + half : inv_freq;
}

// cos and sin for token t's frequency i: from the step's table when there is one, else computed here.
__device__ __forceinline__ void cos_sin_of(const float* table, int64_t t, int64_t half, float pos,
                                           const float* inv_freq, int64_t i, float factor, float& c, float& s) {
  if (table) {
    const float2 cs = reinterpret_cast<const float2*>(table)[t * half + i];
    c = cs.x;
    s = cs.y;
  } else {
    rope_cos_sin(pos, inv_freq, i, factor, c, s);
  }
}

// table[t, i] = (cos, sin) of token t's angle for frequency i.
__global__ void rope_table_kernel(const int32_t* positions, int64_t tokens, const float* inv_freq, int64_t half,
                                  float factor, float* table, const int32_t* rope_long, MRope mrope) {
  detail::wait_then_release();  // pdl.cuh: launched chained
  float2* out = reinterpret_cast<float2*>(table);
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < tokens * half;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = e / half, i = e - t * half;
    float c, s;
    rope_cos_sin(rope_position(positions, mrope, t, i), freqs_of(inv_freq, rope_long, t, half), i, factor, c, s);
    out[e] = make_float2(c, s);
  }
}

// The dims frequency i rotates together: (i, i + half) (rotate-half, GPT-NeoX / Llama), or (2i, 2i + 1) when
// interleaved (GPT-J style, GLM-4).
__device__ __forceinline__ void pair_dims(int64_t i, int64_t half, bool interleaved, int64_t& ia, int64_t& ib) {
  ia = interleaved ? 2 * i : i;
  ib = interleaved ? 2 * i + 1 : i + half;
}

// Rotates pair (ia, ib) of one head: reads src, writes dst (the same row for in-place q and k, a cache row
// for k in rope_kv_kernel) — one definition, so the fused and the separate kernels round alike.
template <class T>
__device__ __forceinline__ void rotate_values(float a, float b, T* dst, int64_t ia, int64_t ib, float c, float s) {
  dst[ia] = from_f<T>(a * c - b * s);
  dst[ib] = from_f<T>(b * c + a * s);
}
template <class T>
__device__ __forceinline__ void rotate_pair(const T* src, T* dst, int64_t ia, int64_t ib, float c, float s) {
  rotate_values(to_f(src[ia]), to_f(src[ib]), dst, ia, ib, c, s);
}

// A decode row's qkv LoRA delta, for rope_kv_cache_write_lora (the expand folded in): per slice (q, k, v) the
// row's B, rank, scale and h, or no B when the row has no adapter there.
template <class T> struct RowLora {
  const T* b[3] = {nullptr, nullptr, nullptr};
  const float* h[3] = {nullptr, nullptr, nullptr};
  int rank[3] = {0, 0, 0};
  float scale[3] = {0.0f, 0.0f, 0.0f};
  // Output o of slice s plus the row's delta, rounded as the BGMV expand would have written it (lora_dot.cuh).
  __device__ __forceinline__ float apply(int s, float y, int64_t o) const {
    return b[s] ? detail::lora_expand_one(y, b[s], rank[s], scale[s], h[s], o) : y;
  }
};
// Rows from first_row on are the decode rows of `lora` (BGMV: token_entry, h [3][lora.tokens][max_rank]).
template <class T> __device__ RowLora<T> row_lora(const LoraArgs& lora, int64_t t, int64_t first_row) {
  RowLora<T> r;
  if (t < first_row) return r;
  const int64_t td = t - first_row;
  const int e = lora.token_entry[td];
  if (e < 0 || e >= lora.num_entries) return r;
  for (int s = 0; s < 3; ++s) {
    const int64_t ei = static_cast<int64_t>(s) * lora.num_entries + e;
    if (!sgmv::live(lora, ei)) continue;
    r.b[s] = static_cast<const T*>(lora.b[ei]);
    r.rank[s] = lora.rank[ei];
    r.scale[s] = lora.scale[ei];
    r.h[s] = lora.h + (static_cast<int64_t>(s) * lora.tokens + td) * lora.max_rank;
  }
  return r;
}

template <class T>
__global__ void rope_kernel(T* q, int64_t q_heads, int64_t q_stride, T* k, int64_t k_heads, int64_t k_stride,
                            int64_t head_dim, int64_t half, const int32_t* positions, const float* all_freq,
                            float factor, const float* table, const int32_t* rope_long, bool interleaved,
                            MRope mrope) {
  detail::wait_then_release();  // pdl.cuh: launched chained
  const int64_t t = blockIdx.x;
  const float* inv_freq = freqs_of(all_freq, rope_long, t, half);
  const int64_t total = (q_heads + k_heads) * half;
  // One element per thread, blockIdx.y picking the chunk: a loop over a token's (head, i) pairs in one block left
  // a decode step of 32 tokens with 32 blocks, each running 16 double-precision sincos in sequence (15 µs per
  // layer on an H100 for Llama-2-7B, where the work is a few hundred KB).
  for (int64_t e = blockIdx.y * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.y) * blockDim.x) {
    const int64_t h = e / half, i = e - h * half;
    T* v = h < q_heads ? q + t * q_stride + h * head_dim : k + t * k_stride + (h - q_heads) * head_dim;
    float c, s;
    cos_sin_of(table, t, half, rope_position(positions, mrope, t, i), inv_freq, i, factor, c, s);
    int64_t ia, ib;
    pair_dims(i, half, interleaved, ia, ib);
    rotate_pair(v, v, ia, ib, c, s);
  }
}

// rope_kernel on q, and k rotated the same way straight into its cache slot together with v: per token, work
// items are q's rotation pairs, then k's, then k's dims past rotary_dim, then v's dims (then, with kLora, q's dims
// past rotary_dim). k in the source rows is left as it was (nothing reads it after the cache write). kLora: the
// decode rows' qkv LoRA expand folded in (rope_kv_cache_write_lora), each value taking its delta before it is
// rotated or copied.
template <class T, bool kLora>
__global__ void rope_kv_kernel(T* q, int64_t q_heads, const T* k, const T* v, int64_t kv_heads, int64_t stride,
                               int64_t head_dim, int64_t half, const int32_t* positions, const float* all_freq,
                               float factor, const int32_t* slots, T* k_cache, T* v_cache, const float* table,
                               LoraArgs lora, int64_t first_row, const int32_t* rope_long, bool interleaved,
                               MRope mrope) {
  detail::wait_then_release();  // pdl.cuh: launched chained
  const int64_t t = blockIdx.x, slot = slots[t];
  const float* inv_freq = freqs_of(all_freq, rope_long, t, half);
  const int64_t rot = 2 * half, kv_dim = kv_heads * head_dim, tail = head_dim - rot;
  const int64_t n_q = q_heads * half, n_k = kv_heads * half, n_tail = kv_heads * tail;
  RowLora<T> rl;
  if constexpr (kLora) rl = row_lora<T>(lora, t, first_row);
  const int64_t kv_items = slot >= 0 ? n_k + n_tail + kv_dim : 0;  // a padding token writes no cache row
  const int64_t q_tails = kLora && rl.b[0] ? q_heads * tail : 0;    // q's unrotated dims take their delta in place
  const int64_t total = n_q + kv_items + q_tails;
  T* qr = q + t * stride;
  const T* kr = k + t * stride;
  const T* vr = v + t * stride;
  T* kc = k_cache + slot * kv_dim;
  T* vc = v_cache + slot * kv_dim;
  for (int64_t e = blockIdx.y * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.y) * blockDim.x) {
    const bool in_kv = e >= n_q && e < n_q + kv_items;  // the cache items; past them (kLora only): q's tails
    const int64_t ke = e - n_q;
    if (e < n_q || (in_kv && ke < n_k)) {  // a rotation pair: q in place, or k into the cache
      const bool is_q = e < n_q;
      const int64_t pe = is_q ? e : ke, h = pe / half, i = pe - h * half;
      const T* src = is_q ? qr + h * head_dim : kr + h * head_dim;
      T* dst = is_q ? qr + h * head_dim : kc + h * head_dim;
      float c, s;
      cos_sin_of(table, t, half, rope_position(positions, mrope, t, i), inv_freq, i, factor, c, s);
      int64_t ia, ib;
      pair_dims(i, half, interleaved, ia, ib);
      if constexpr (kLora) {
        const int sl = is_q ? 0 : 1;
        rotate_values(rl.apply(sl, to_f(src[ia]), h * head_dim + ia), rl.apply(sl, to_f(src[ib]), h * head_dim + ib),
                      dst, ia, ib, c, s);
      } else {
        rotate_pair(src, dst, ia, ib, c, s);
      }
    } else if (in_kv && ke < n_k + n_tail) {  // k dims past the rotary part (partial rotary)
      const int64_t pe = ke - n_k, h = pe / tail, o = h * head_dim + rot + (pe - h * tail);
      if (kLora && rl.b[1]) kc[o] = from_f<T>(rl.apply(1, to_f(kr[o]), o));
      else kc[o] = kr[o];
    } else if (in_kv) {
      const int64_t d = ke - n_k - n_tail;
      if (kLora && rl.b[2]) vc[d] = from_f<T>(rl.apply(2, to_f(vr[d]), d));
      else vc[d] = vr[d];
    } else {  // kLora: a q dim past the rotary part
      const int64_t pe = e - n_q - kv_items, h = pe / tail, o = h * head_dim + rot + (pe - h * tail);
      qr[o] = from_f<T>(rl.apply(0, to_f(qr[o]), o));
    }
  }
}

// Multimodal RoPE's arguments: 3 rows of at least `tokens` positions, sections within the rotary half; never with
// longrope or interleaved pairs (model.cc refuses such configs).
bool mrope_valid(const MRope& m, int64_t tokens, int64_t rotary_dim, const int32_t* rope_long, bool interleaved) {
  if (!m.pos3) return true;
  return m.stride >= tokens && m.end0 >= 0 && m.end1 >= m.end0 && m.end1 <= rotary_dim / 2 && !rope_long && !interleaved;
}

}  // namespace

cudaError_t query_position_scale(void* q, int64_t q_stride, int64_t q_dim, DType dtype, int64_t tokens,
                                 const int32_t* positions, float beta, int64_t period, cudaStream_t stream,
                                 int32_t position_offset, bool scale_in_dtype) {
  if (!q || !positions || tokens < 0 || q_dim <= 0 || q_stride < q_dim || period <= 0 || position_offset < 0)
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    query_position_scale_kernel<T><<<static_cast<unsigned>(tokens < 65536 ? tokens : 65536), 128, 0, stream>>>(
        static_cast<T*>(q), q_stride, q_dim, tokens, positions, beta, period, position_offset, scale_in_dtype);
    return cudaGetLastError();
  });
}

cudaError_t rope_rotate_half(void* q, int64_t q_heads, int64_t q_stride, void* k, int64_t k_heads, int64_t k_stride,
                             DType dtype, int64_t tokens, int64_t head_dim, int64_t rotary_dim,
                             const int32_t* positions, const float* inv_freq, float attention_factor,
                             cudaStream_t stream, const float* cos_sin, const int32_t* rope_long, bool interleaved,
                             const MRope& mrope) {
  if (!k) k_heads = 0;
  if (!mrope_valid(mrope, tokens, rotary_dim, rope_long, interleaved)) return cudaErrorInvalidValue;
  if (tokens < 0 || tokens > INT32_MAX || q_heads < 0 || k_heads < 0 || rotary_dim < 0 || rotary_dim % 2 != 0 ||
      rotary_dim > head_dim || (q_heads > 0 && !q))
    return cudaErrorInvalidValue;
  const int64_t half = rotary_dim / 2;
  if (tokens == 0 || half == 0 || q_heads + k_heads == 0) return cudaSuccess;
  const int64_t work = (q_heads + k_heads) * half;
  const int threads = work >= 256 ? 256 : static_cast<int>((work + 31) / 32 * 32);
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t chunks = (work + threads - 1) / threads;
    const dim3 grid(static_cast<unsigned>(tokens), static_cast<unsigned>(chunks < 65535 ? chunks : 65535));
    return detail::launch_chained(rope_kernel<T>, grid, dim3(threads), 0, stream, static_cast<T*>(q), q_heads,
                                  q_stride, static_cast<T*>(k), k_heads, k_stride, head_dim, half, positions, inv_freq,
                                  attention_factor, cos_sin, rope_long, interleaved, mrope);
  });
}

namespace {
// rope_kv_cache_write and its LoRA-folding variant: the checks and the launch they share.
template <bool kLora>
cudaError_t launch_rope_kv(void* q, int64_t q_heads, const void* k, const void* v, int64_t kv_heads, int64_t stride,
                           DType dtype, int64_t tokens, int64_t head_dim, int64_t rotary_dim, const int32_t* positions,
                           const float* inv_freq, float attention_factor, const int32_t* slot_mapping, void* k_cache,
                           void* v_cache, const float* cos_sin, const LoraArgs& lora, cudaStream_t stream,
                           const int32_t* rope_long, bool interleaved, const MRope& mrope) {
  if (!mrope_valid(mrope, tokens, rotary_dim, rope_long, interleaved)) return cudaErrorInvalidValue;
  if (tokens < 0 || tokens > INT32_MAX || q_heads < 0 || kv_heads < 0 || rotary_dim < 2 || rotary_dim % 2 != 0 ||
      rotary_dim > head_dim || stride < (q_heads + 2 * kv_heads) * head_dim || !q || !k || !v || !positions ||
      !inv_freq || !slot_mapping || !k_cache || !v_cache)
    return cudaErrorInvalidValue;
  if (kLora && (lora.dtype != dtype || lora.num_slices != 3 || !lora.token_entry || !lora.h || lora.tokens < 0 ||
                lora.tokens > tokens || !lora.b || !lora.rank || !lora.scale || lora.max_rank <= 0))
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  const int64_t half = rotary_dim / 2, tail = head_dim - rotary_dim;
  const int64_t work = (q_heads + kv_heads) * half + kv_heads * tail + kv_heads * head_dim + (kLora ? q_heads * tail : 0);
  const int threads = work >= 256 ? 256 : static_cast<int>((work + 31) / 32 * 32);
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t chunks = (work + threads - 1) / threads;
    const dim3 grid(static_cast<unsigned>(tokens), static_cast<unsigned>(chunks < 65535 ? chunks : 65535));
    return detail::launch_chained(rope_kv_kernel<T, kLora>, grid, dim3(threads), 0, stream, static_cast<T*>(q), q_heads,
                                  static_cast<const T*>(k), static_cast<const T*>(v), kv_heads, stride, head_dim, half,
                                  positions, inv_freq, attention_factor, slot_mapping, static_cast<T*>(k_cache),
                                  static_cast<T*>(v_cache), cos_sin, lora, tokens - (kLora ? lora.tokens : 0), rope_long,
                                  interleaved, mrope);
  });
}
}  // namespace

cudaError_t rope_kv_cache_write(void* q, int64_t q_heads, const void* k, const void* v, int64_t kv_heads,
                                int64_t stride, DType dtype, int64_t tokens, int64_t head_dim, int64_t rotary_dim,
                                const int32_t* positions, const float* inv_freq, float attention_factor,
                                const int32_t* slot_mapping, void* k_cache, void* v_cache, cudaStream_t stream,
                                const float* cos_sin, const int32_t* rope_long, bool interleaved, const MRope& mrope) {
  return launch_rope_kv<false>(q, q_heads, k, v, kv_heads, stride, dtype, tokens, head_dim, rotary_dim, positions,
                               inv_freq, attention_factor, slot_mapping, k_cache, v_cache, cos_sin, LoraArgs{}, stream,
                               rope_long, interleaved, mrope);
}

cudaError_t rope_kv_cache_write_lora(void* q, int64_t q_heads, const void* k, const void* v, int64_t kv_heads,
                                     int64_t stride, DType dtype, int64_t tokens, int64_t head_dim, int64_t rotary_dim,
                                     const int32_t* positions, const float* inv_freq, float attention_factor,
                                     const int32_t* slot_mapping, void* k_cache, void* v_cache, const LoraArgs& lora,
                                     cudaStream_t stream, const float* cos_sin, const int32_t* rope_long,
                                     bool interleaved, const MRope& mrope) {
  return launch_rope_kv<true>(q, q_heads, k, v, kv_heads, stride, dtype, tokens, head_dim, rotary_dim, positions,
                              inv_freq, attention_factor, slot_mapping, k_cache, v_cache, cos_sin, lora, stream,
                              rope_long, interleaved, mrope);
}

cudaError_t rope_cos_sin_table(const int32_t* positions, int64_t tokens, const float* inv_freq, int64_t rotary_dim,
                               float attention_factor, float* table, cudaStream_t stream, const int32_t* rope_long,
                               const MRope& mrope) {
  if (tokens < 0 || rotary_dim < 2 || rotary_dim % 2 != 0 || !positions || !inv_freq || !table ||
      !mrope_valid(mrope, tokens, rotary_dim, rope_long, false))
    return cudaErrorInvalidValue;
  const int64_t half = rotary_dim / 2;
  if (tokens == 0) return cudaSuccess;
  return detail::launch_chained(rope_table_kernel, dim3(detail::grid_for(tokens * half, 256)), dim3(256), 0, stream,
                                positions, tokens, inv_freq, half, attention_factor, table, rope_long, mrope);
}

}  // namespace weft::cuda
