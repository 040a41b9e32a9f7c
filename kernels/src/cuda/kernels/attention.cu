// Paged attention over the KV cache (cpu::paged_attention): the CUDA-core tiled flash-attention kernel for
// prefill, the argument checks every attention launcher applies, and the prefill kernel choice. Decode rows have
// their own kernel (attention_decode.cu); the tensor-core prefill kernels are attention_prefill_mma.cu.
#include "common.cuh"
#include "decode_attention_body.h"  // slot_of, first_key

namespace weft::cuda {
namespace {
using detail::from_f;
using detail::load8;
using detail::rescale;

constexpr int kRows = 16;            //: (token, q head) rows per block, 4 per warp
constexpr int kRowsPerWarp = 4;
constexpr int kTileKeys = 32;        // keys per shared-memory tile, one per lane
constexpr int kPrefillThreads = 128;
using decode_attention::slot_of;
using prefill_mma::first_key;
using prefill_mma::last_key;

// Prefill: block = (16 consecutive (token, head) rows of one sequence's kv-head group, sequence, kv head).
// Lane = key for QKᵀ (K tile rows padded by 4 floats: conflict-free float4 reads), lane = dims for P·V. Sinks
// (gpt-oss) join each row's softmax once its keys are done (prefill_mma_body.h's sink_factor).
template <class T, int DC>
__global__ void __launch_bounds__(kPrefillThreads) prefill_kernel(PagedAttention a) {
  extern __shared__ float4 smem4[];
  const int hd = a.head_dim, ks = hd + 4, chunks = hd / 8;
  float* qs = reinterpret_cast<float*>(smem4);  // [kRows][hd]
  float* kt = qs + kRows * hd;                   // [kTileKeys][hd + 4]
  float* vt = kt + kTileKeys * ks;               // [kTileKeys][hd]

  const int s = blockIdx.y, kvh = blockIdx.z, group = a.heads / a.kv_heads;
  const int q0 = a.cu_seqlens_q[s], nq = a.cu_seqlens_q[s + 1] - q0, ctx = a.context_lens[s];
  const int vr0 = blockIdx.x * kRows, vr_end = min(vr0 + kRows, nq * group);
  if (vr0 >= vr_end) return;  // whole block
  const int hi = last_key(a, s, ctx - nq + (vr_end - 1) / group, ctx);  // last key any row of the block sees
  const int lo = first_key(a, ctx - nq + vr0 / group);  // the block's first row starts earliest

  for (int idx = threadIdx.x; idx < kRows * chunks; idx += kPrefillThreads) {
    const int rr = idx / chunks, c = idx % chunks, vr = vr0 + rr;
    float v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (vr < vr_end) {
      const int64_t head = static_cast<int64_t>(kvh) * group + vr % group;
      load8(static_cast<const T*>(a.q) + (q0 + vr / group) * a.q_stride + head * hd + c * 8, v);
    }
    float4* dst = reinterpret_cast<float4*>(qs + rr * hd + c * 8);
    dst[0] = make_float4(v[0], v[1], v[2], v[3]);
    dst[1] = make_float4(v[4], v[5], v[6], v[7]);
  }

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int rlast[kRowsPerWarp], rfirst[kRowsPerWarp];  // each row's last and first visible key
  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][DC];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int vr = vr0 + warp * kRowsPerWarp + r;
    const int pos = vr < vr_end ? ctx - nq + vr / group : -1;  // -1: padding row, sees nothing
    rfirst[r] = first_key(a, pos);
    rlast[r] = last_key(a, s, pos, ctx);
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < DC; ++c) acc[r][c] = 0.0f;
  }
  const int kv_dim = a.kv_heads * hd;
  const T* kc = static_cast<const T*>(a.k_cache) + kvh * hd;
  const T* vc = static_cast<const T*>(a.v_cache) + kvh * hd;
  const int32_t* bt = a.block_tables + static_cast<int64_t>(s) * a.block_table_stride;
  const float* qw = qs + warp * kRowsPerWarp * hd;

  for (int t0 = lo; t0 <= hi; t0 += kTileKeys) {
    __syncthreads();  // the previous tile is consumed (first pass: the Q tile is stored)
    for (int idx = threadIdx.x; idx < kTileKeys * chunks; idx += kPrefillThreads) {
      const int kk = idx / chunks, c = idx % chunks, j = t0 + kk;
      float kv[8] = {0, 0, 0, 0, 0, 0, 0, 0}, vv[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      if (j <= hi) {  // keys past hi stay zero: masked scores must not meet NaN garbage in P·V
        const int64_t off = slot_of(bt, j, a.block_size) * kv_dim + c * 8;
        load8(kc + off, kv);
        load8(vc + off, vv);
      }
      float4* kd = reinterpret_cast<float4*>(kt + kk * ks + c * 8);
      float4* vd = reinterpret_cast<float4*>(vt + kk * hd + c * 8);
      kd[0] = make_float4(kv[0], kv[1], kv[2], kv[3]);
      kd[1] = make_float4(kv[4], kv[5], kv[6], kv[7]);
      vd[0] = make_float4(vv[0], vv[1], vv[2], vv[3]);
      vd[1] = make_float4(vv[4], vv[5], vv[6], vv[7]);
    }
    __syncthreads();
    float sc[kRowsPerWarp] = {};
    const float* krow = kt + lane * ks;
    for (int d = 0; d < hd; d += 4) {
      const float4 k4 = *reinterpret_cast<const float4*>(krow + d);
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const float4 q4 = *reinterpret_cast<const float4*>(qw + r * hd + d);
        sc[r] += q4.x * k4.x + q4.y * k4.y + q4.z * k4.z + q4.w * k4.w;
      }
    }
    const int j = t0 + lane;
    float p[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const bool vis = j <= rlast[r] && j >= rfirst[r];
      const float x = vis ? prefill_mma::softcap_score(sc[r] * a.scale, a.softcap) : -INFINITY;
      const float mn = fmaxf(m[r], detail::warp_max(x)), c = rescale(m[r], mn);
      p[r] = vis ? expf(x - mn) : 0.0f;
      l[r] = l[r] * c + detail::warp_sum(p[r]);
#pragma unroll
      for (int cc = 0; cc < DC; ++cc) acc[r][cc] *= c;
      m[r] = mn;
    }
    for (int kk = 0; kk < kTileKeys; ++kk) {
      float vv[DC];
#pragma unroll
      for (int cc = 0; cc < DC; ++cc) vv[cc] = lane + 32 * cc < hd ? vt[kk * hd + lane + 32 * cc] : 0.0f;
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const float pk = __shfl_sync(0xffffffffu, p[r], kk);
#pragma unroll
        for (int cc = 0; cc < DC; ++cc) acc[r][cc] += pk * vv[cc];
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int vr = vr0 + warp * kRowsPerWarp + r;
    if (vr >= vr_end) continue;
    const int64_t head = static_cast<int64_t>(kvh) * group + vr % group;
    T* op = static_cast<T*>(a.out) + (q0 + vr / group) * a.out_stride + head * hd;
    const float inv = a.sinks ? prefill_mma::sink_factor(m[r], l[r], a.sinks[head], [](float x) { return expf(x); })
                              : 1.0f / l[r];
#pragma unroll
    for (int cc = 0; cc < DC; ++cc)
      if (lane + 32 * cc < hd) op[lane + 32 * cc] = from_f<T>(acc[r][cc] * inv);
  }
}

}  // namespace

bool paged_attention_valid(const PagedAttention& a) {
  return a.heads > 0 && a.kv_heads > 0 && a.heads % a.kv_heads == 0 && a.head_dim >= 8 && a.head_dim <= 256 &&
         a.head_dim % 8 == 0 && a.block_size > 0 && a.chunk >= 0 && !(a.bidirectional && a.chunk > 0) &&
         (!a.image_spans || (a.span_offsets && !a.bidirectional)) && a.num_seqs > 0 && a.num_tokens >= 0 && a.q &&
         a.out && a.k_cache && a.v_cache && a.cu_seqlens_q && a.context_lens && a.block_tables && a.q_stride % 8 == 0 &&
         detail::aligned16(a.q) && detail::aligned16(a.k_cache) && detail::aligned16(a.v_cache) &&
         a.num_seqs <= 65535 && a.kv_heads <= 65535;
}

namespace {
template <class T, int DC>
cudaError_t launch_prefill(const PagedAttention& a, cudaStream_t stream) {
  const size_t smem = sizeof(float) * (kRows * a.head_dim + kTileKeys * (a.head_dim + 4) + kTileKeys * a.head_dim);
  if (smem > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(prefill_kernel<T, DC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  const int64_t tiles = (static_cast<int64_t>(a.max_query_len) * (a.heads / a.kv_heads) + kRows - 1) / kRows;
  const dim3 grid(static_cast<unsigned>(tiles), a.num_seqs, a.kv_heads);
  prefill_kernel<T, DC><<<grid, kPrefillThreads, smem, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t paged_attention_prefill_simt(const PagedAttention& a, cudaStream_t stream) {
  if (!paged_attention_valid(a) || a.max_query_len < 0) return cudaErrorInvalidValue;
  if (a.num_tokens == 0 || a.max_query_len == 0) return cudaSuccess;
  return detail::dispatch(a.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (a.head_dim <= 32) return launch_prefill<T, 1>(a, stream);
    if (a.head_dim <= 64) return launch_prefill<T, 2>(a, stream);
    if (a.head_dim <= 128) return launch_prefill<T, 4>(a, stream);
    return launch_prefill<T, 8>(a, stream);
  });
}

cudaError_t paged_attention_prefill(const PagedAttention& a, cudaStream_t stream) {
  // WEFT_PREFILL_ATTENTION=simt keeps every shape on the CUDA-core kernel (A/B measurements, or a way around a
  // tensor-core kernel problem on a new device without rebuilding).
  // The pipelined cp.async/ldmatrix tensor-core kernel is the default (H100, 2026-11-23: a 2,048-token prefill
  // 59.2 vs 67.9 ms); WEFT_PREFILL_ATTENTION=mma keeps the first tensor-core kernel.
  static const bool simt_only = detail::env_equals("WEFT_PREFILL_ATTENTION", "simt");
  static const bool first_mma = detail::env_equals("WEFT_PREFILL_ATTENTION", "mma");
  if (!simt_only && paged_attention_prefill_mma_supported(a))
    return first_mma ? paged_attention_prefill_mma(a, stream) : paged_attention_prefill_pipelined(a, stream);
  return paged_attention_prefill_simt(a, stream);
}

}  // namespace weft::cuda
