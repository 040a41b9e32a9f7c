// Paged causal attention over the KV cache (cpu::paged_attention): a flash-decoding kernel for decode rows and
// a tiled flash-attention kernel for prefill. Both use an fp32 online softmax; see kernels.h for the design.
#include "common.cuh"
#include "pdl.cuh"

namespace weft::cuda {
namespace {
using detail::from_f;
using detail::load8;
using detail::rescale;
using detail::shfl_xor;

// Decode: keys per split. It depends on the model's head shape only, never on the batch, so a row's result does
// not change with what else is batched. GQA serves up to 4 query heads per block, so it launches up to 4× fewer
// blocks per row than MHA: at short contexts too few loads were in flight (43 % of the copy rate at 32/8 heads,
// ctx 512, batch 32, where MHA reached 84 %), so GQA splits every 256 keys and gets twice the blocks.
__host__ __device__ __forceinline__ int decode_partition(const PagedAttention& a) {
  return a.heads > a.kv_heads ? 256 : 512;
}
constexpr int kDecodeThreads = 128;  // 4 warps
constexpr int kRows = 16;            // prefill: (token, q head) rows per block, 4 per warp
constexpr int kRowsPerWarp = 4;
constexpr int kTileKeys = 32;        // prefill: keys per shared-memory tile, one per lane
constexpr int kPrefillThreads = 128;

// Sequence holding query row `row`: the largest s with cu[s] <= row (skips empty sequences).
__device__ __forceinline__ int find_seq(const int32_t* cu, int num_seqs, int row) {
  int lo = 0, hi = num_seqs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (cu[mid] <= row) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
__device__ __forceinline__ int64_t slot_of(const int32_t* bt, int j, int block_size) {
  return static_cast<int64_t>(bt[j / block_size]) * block_size + j % block_size;
}
__device__ __forceinline__ int window_lo(int pos, int window) {
  return window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
}

struct DecodeRow {
  int seq, pos, first, last;  // keys [lo, pos] visible; partitions first..last cover them
  int lo;
};
__device__ __forceinline__ DecodeRow decode_row(const PagedAttention& a, int row) {
  DecodeRow r;
  r.seq = find_seq(a.cu_seqlens_q, a.num_seqs, row);
  const int q0 = a.cu_seqlens_q[r.seq], nq = a.cu_seqlens_q[r.seq + 1] - q0;
  r.pos = a.context_lens[r.seq] - nq + (row - q0);
  r.lo = window_lo(r.pos, a.sliding_window);
  const int part = decode_partition(a);
  r.first = r.lo / part;
  r.last = r.pos / part;
  return r;
}

// Decode: block = (kv head × HPB-head chunk of its group, query row, partition). L lanes split head_dim into
// 8-element vectors and own one key at a time; the block's 128/L lane groups stride over the partition.
template <class T, int HPB, int L>
__global__ void __launch_bounds__(kDecodeThreads)
    decode_kernel(PagedAttention a, float* ws_ml, float* ws_acc, int max_splits) {
  constexpr int kGroups = kDecodeThreads / L;
  constexpr int kWarps = kDecodeThreads / 32;
  __shared__ float sm_m[kWarps][HPB], sm_l[kWarps][HPB];
  __shared__ float sm_acc[kWarps][HPB][256];
  detail::wait_then_release();  // pdl.cuh: launched chained

  const int row = blockIdx.y, split = blockIdx.z;
  const DecodeRow r = decode_row(a, row);
  if (split < r.first || split > r.last) return;  // whole block: no barrier reached yet
  const int part = decode_partition(a);
  const int j0 = max(r.lo, split * part), j1 = min(r.pos + 1, (split + 1) * part);
  const int group = a.heads / a.kv_heads, chunks = group / HPB;
  const int kvh = blockIdx.x / chunks, h0 = kvh * group + (blockIdx.x % chunks) * HPB;
  const int hd = a.head_dim, kv_dim = a.kv_heads * hd;
  const int sub = threadIdx.x % L, grp = threadIdx.x / L, d0 = sub * 8;
  const bool active = d0 < hd;

  float q[HPB][8], m[HPB], l[HPB], acc[HPB][8];
  const T* qp = static_cast<const T*>(a.q) + row * a.q_stride + static_cast<int64_t>(h0) * hd + d0;
#pragma unroll
  for (int h = 0; h < HPB; ++h) {
#pragma unroll
    for (int e = 0; e < 8; ++e) q[h][e] = acc[h][e] = 0.0f;
    if (active) load8(qp + h * hd, q[h]);
    m[h] = -INFINITY;
    l[h] = 0.0f;
  }
  const T* kc = static_cast<const T*>(a.k_cache) + kvh * hd + d0;
  const T* vc = static_cast<const T*>(a.v_cache) + kvh * hd + d0;
  const int32_t* bt = a.block_tables + static_cast<int64_t>(r.seq) * a.block_table_stride;
  const int iters = (j1 - j0 + kGroups - 1) / kGroups;  // block-uniform, so every lane reaches the shuffles

  // One-deep software pipeline: the next key's K and V are in flight while this one is reduced.
  detail::Pack8<T> kn{}, vn{};
  auto fetch = [&](int it) {
    const int j = j0 + it * kGroups + grp;
    if (active && j < j1) {
      const int64_t off = slot_of(bt, j, a.block_size) * kv_dim;
      kn = detail::load_pack(kc + off);
      vn = detail::load_pack(vc + off);
    }
  };
  if (iters > 0) fetch(0);
  for (int it = 0; it < iters; ++it) {
    const detail::Pack8<T> kp = kn, vp = vn;
    if (it + 1 < iters) fetch(it + 1);
    float kf[8], sc[HPB];
    detail::unpack(kp, kf);
#pragma unroll
    for (int h = 0; h < HPB; ++h) {
      float d = 0.0f;
#pragma unroll
      for (int e = 0; e < 8; ++e) d += q[h][e] * kf[e];
      sc[h] = d;
    }
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1) {
#pragma unroll
      for (int h = 0; h < HPB; ++h) sc[h] += shfl_xor(sc[h], o);
    }
    if (j0 + it * kGroups + grp < j1) {
      float vf[8];
      detail::unpack(vp, vf);
#pragma unroll
      for (int h = 0; h < HPB; ++h) {
        const float x = sc[h] * a.scale, mn = fmaxf(m[h], x), c = rescale(m[h], mn), p = expf(x - mn);
        l[h] = l[h] * c + p;
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[h][e] = acc[h][e] * c + p * vf[e];
        m[h] = mn;
      }
    }
  }
  // Merge the lane groups of a warp that hold the same dims, then the warps through shared memory.
#pragma unroll
  for (int o = L; o < 32; o <<= 1) {
#pragma unroll
    for (int h = 0; h < HPB; ++h) {
      const float mo = shfl_xor(m[h], o), lo = shfl_xor(l[h], o), mn = fmaxf(m[h], mo);
      const float ca = rescale(m[h], mn), cb = rescale(mo, mn);
      l[h] = l[h] * ca + lo * cb;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[h][e] = acc[h][e] * ca + shfl_xor(acc[h][e], o) * cb;
      m[h] = mn;
    }
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane < L && active) {
#pragma unroll
    for (int h = 0; h < HPB; ++h) {
#pragma unroll
      for (int e = 0; e < 8; ++e) sm_acc[warp][h][d0 + e] = acc[h][e];
    }
  }
  if (lane == 0) {
#pragma unroll
    for (int h = 0; h < HPB; ++h) {
      sm_m[warp][h] = m[h];
      sm_l[warp][h] = l[h];
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < HPB * hd; idx += kDecodeThreads) {
    const int h = idx / hd, d = idx % hd;
    float mx = -INFINITY, den = 0.0f, num = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, sm_m[w][h]);
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float c = rescale(sm_m[w][h], mx);
      den += sm_l[w][h] * c;
      num += sm_acc[w][h][d] * c;
    }
    if (r.first == r.last) {
      T* op = static_cast<T*>(a.out) + row * a.out_stride + static_cast<int64_t>(h0 + h) * hd;
      op[d] = from_f<T>(num / den);
    } else {
      const int64_t part = (static_cast<int64_t>(row) * a.heads + h0 + h) * max_splits + split;
      ws_acc[part * hd + d] = num;
      if (d == 0) {
        ws_ml[part * 2] = mx;
        ws_ml[part * 2 + 1] = den;
      }
    }
  }
}

// Second pass for rows spanning several partitions: out = Σ e^{m_p - M} acc_p / Σ e^{m_p - M} l_p.
template <class T>
__global__ void decode_merge_kernel(PagedAttention a, const float* ws_ml, const float* ws_acc, int max_splits) {
  detail::wait_then_release();  // pdl.cuh: launched chained
  const int h = blockIdx.x, row = blockIdx.y;
  const DecodeRow r = decode_row(a, row);
  if (r.first == r.last) return;
  const int64_t base = (static_cast<int64_t>(row) * a.heads + h) * max_splits;
  float mx = -INFINITY, den = 0.0f;
  for (int p = r.first; p <= r.last; ++p) mx = fmaxf(mx, ws_ml[(base + p) * 2]);
  for (int p = r.first; p <= r.last; ++p) den += ws_ml[(base + p) * 2 + 1] * rescale(ws_ml[(base + p) * 2], mx);
  T* op = static_cast<T*>(a.out) + row * a.out_stride + static_cast<int64_t>(h) * a.head_dim;
  for (int d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
    float num = 0.0f;
    for (int p = r.first; p <= r.last; ++p)
      num += ws_acc[(base + p) * a.head_dim + d] * rescale(ws_ml[(base + p) * 2], mx);
    op[d] = from_f<T>(num / den);
  }
}

// Prefill: block = (16 consecutive (token, head) rows of one sequence's kv-head group, sequence, kv head).
// Lane = key for QKᵀ (K tile rows padded by 4 floats: conflict-free float4 reads), lane = dims for P·V.
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
  const int hi = ctx - nq + (vr_end - 1) / group;  // last key any row of the block sees
  const int lo = window_lo(ctx - nq + vr0 / group, a.sliding_window);

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
  int rpos[kRowsPerWarp];
  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][DC];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int vr = vr0 + warp * kRowsPerWarp + r;
    rpos[r] = vr < vr_end ? ctx - nq + vr / group : -1;  // -1: padding row, sees nothing
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
      const bool vis = j <= rpos[r] && (a.sliding_window <= 0 || rpos[r] - j < a.sliding_window);
      const float x = vis ? sc[r] * a.scale : -INFINITY;
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
    const float inv = 1.0f / l[r];
#pragma unroll
    for (int cc = 0; cc < DC; ++cc)
      if (lane + 32 * cc < hd) op[lane + 32 * cc] = from_f<T>(acc[r][cc] * inv);
  }
}

}  // namespace

bool paged_attention_valid(const PagedAttention& a) {
  return a.heads > 0 && a.kv_heads > 0 && a.heads % a.kv_heads == 0 && a.head_dim >= 8 && a.head_dim <= 256 &&
         a.head_dim % 8 == 0 && a.block_size > 0 && a.num_seqs > 0 && a.num_tokens >= 0 && a.q && a.out &&
         a.k_cache && a.v_cache && a.cu_seqlens_q && a.context_lens && a.block_tables && a.q_stride % 8 == 0 &&
         detail::aligned16(a.q) && detail::aligned16(a.k_cache) && detail::aligned16(a.v_cache) &&
         a.num_seqs <= 65535 && a.kv_heads <= 65535;
}

namespace {
int64_t decode_splits(const PagedAttention& a) {
  const int part = decode_partition(a);
  return (static_cast<int64_t>(a.max_context_len > 0 ? a.max_context_len : 1) + part - 1) / part;
}

template <class T, int HPB>
cudaError_t launch_decode(const PagedAttention& a, float* ml, float* acc, int splits, cudaStream_t stream) {
  const dim3 grid(a.heads / HPB, a.num_tokens, splits);
  const auto kernel = a.head_dim <= 32    ? decode_kernel<T, HPB, 4>
                      : a.head_dim <= 64  ? decode_kernel<T, HPB, 8>
                      : a.head_dim <= 128 ? decode_kernel<T, HPB, 16>
                                          : decode_kernel<T, HPB, 32>;
  const cudaError_t err = detail::launch_chained(kernel, grid, dim3(kDecodeThreads), 0, stream, a, ml, acc, splits);
  if (err != cudaSuccess || splits == 1) return err;
  return detail::launch_chained(decode_merge_kernel<T>, dim3(a.heads, a.num_tokens), dim3(128), 0, stream, a,
                                static_cast<const float*>(ml), static_cast<const float*>(acc), splits);
}

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

size_t paged_attention_decode_workspace_bytes(const PagedAttention& a) {
  const int64_t splits = decode_splits(a);
  if (splits <= 1 || a.num_tokens <= 0) return 0;
  return sizeof(float) * static_cast<size_t>(a.num_tokens) * a.heads * splits * (a.head_dim + 2);
}

cudaError_t paged_attention_decode(const PagedAttention& a, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream) {
  if (!paged_attention_valid(a) || a.num_tokens > 65535) return cudaErrorInvalidValue;
  if (a.num_tokens == 0) return cudaSuccess;
  const int64_t splits = decode_splits(a);
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
    if (group % 4 == 0) return launch_decode<T, 4>(a, ml, acc, s, stream);
    if (group % 2 == 0) return launch_decode<T, 2>(a, ml, acc, s, stream);
    return launch_decode<T, 1>(a, ml, acc, s, stream);
  });
}

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
