// LoRA shrink (h = x·Aᵀ) and expand (y[:, off:off+len] += scale·h·Bᵀ), SGMV over segments of rows sharing an
// adapter and BGMV with one row per block (cpu::lora_shrink_expand, split in two so h stays in fp32 between).
// No shape table: ranks and hidden sizes are runtime values; 16-byte vector loads where the data allows.
#include <type_traits>

#include "cluster_device_ops.cuh"
#include "common.cuh"
#include "lora_expand_vec_body.h"
#include "lora_shrink_mma_body.h"
#include "lora_shrink_split_body.h"
#include "mma_device_ops.cuh"
#include "pdl.cuh"
#include "sgmv_tiles.h"

namespace weft::cuda {
namespace {
using detail::from_f;
using detail::load8;
using detail::to_f;

constexpr int kTileRows = 8;           // SGMV rows per block: each weight load feeds 8 rows
constexpr int kShrinkThreads = 256;    // 8 warps, one rank (row of A) each
constexpr int kShrinkRanks = kShrinkThreads / 32;
constexpr int kExpandThreads = 256;
constexpr int kExpandPerThread = 4;    // outputs per thread, blockDim apart (coalesced)
constexpr int kMaxRank = 1024;

using Work = sgmv::Tile;
template <bool kSegments> __device__ Work find_work(const LoraArgs& a) {
  if constexpr (kSegments) return sgmv::tile_of(a, blockIdx.y, kTileRows);
  const int t = blockIdx.y, e = a.token_entry[t];
  return e < 0 || e >= a.num_entries ? Work{0, 0, 0} : Work{e, t, t + 1};
}
using sgmv::live;
__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Programmatic dependent launch (sm_90+) between a decode step's BGMV shrink and its expand: the shrink lets the
// expand's blocks start at once, and the expand loads what the shrink does not write (its B rows and the y
// values the base GEMM wrote before the shrink ran) before it waits for the shrink's h. Each kernel is a few µs,
// most of it memory round trips in sequence, so overlapping one of them is worth having. No-ops before sm_90,
// and when the kernel was launched the ordinary way (WEFT_PDL=0, or the SGMV path).
bool pdl_enabled() {
  static const bool v = !detail::env_equals("WEFT_PDL", "0") && detail::device_major() >= 9;
  return v;
}

// Block = (8 ranks, row tile, slice); warp = one rank k, lanes stride over `in`, dot with every row of the tile.
template <class T, bool kSegments>
__global__ void __launch_bounds__(kShrinkThreads) shrink_kernel(LoraArgs a) {
  constexpr int R = kSegments ? kTileRows : 1;
  if constexpr (!kSegments) detail::release_dependents();
  const Work w = find_work<kSegments>(a);
  if (w.r1 <= w.r0) return;
  const int slice = blockIdx.z;
  const int64_t ei = static_cast<int64_t>(slice) * a.num_entries + w.entry;
  if (!live(a, ei)) return;
  const int k = blockIdx.x * kShrinkRanks + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (k >= a.rank[ei]) return;  // warp-uniform; no barriers in this kernel
  const int nrows = w.r1 - w.r0;
  const T* arow = static_cast<const T*>(a.a[ei]) + static_cast<int64_t>(k) * a.in;
  const T* x = static_cast<const T*>(a.x) + static_cast<int64_t>(w.r0) * a.x_stride;
  const bool vec = a.in % 8 == 0 && a.x_stride % 8 == 0 && aligned16(a.a[ei]) && aligned16(a.x);
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
  if (vec) {
    // Unrolled so a warp has 4 A loads in flight, not 1: a decode step's shrink is a few blocks per token, and a
    // loop that waits for each load ran 16 (in 4096) to 43 (in 11008) memory round trips in sequence.
#pragma unroll 4
    for (int64_t c = lane * 8; c < a.in; c += 32 * 8) {
      float av[8];
      load8(arow + c, av);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (r >= nrows) break;
        float xv[8];
        load8(x + r * a.x_stride + c, xv);
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[r] += av[e] * xv[e];
      }
    }
  } else {
    for (int64_t c = lane; c < a.in; c += 32) {
      const float av = to_f(arow[c]);
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (r < nrows) acc[r] += av * to_f(x[r * a.x_stride + c]);
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = detail::warp_sum(acc[r]);
  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < R; ++r)
      if (r < nrows) a.h[(static_cast<int64_t>(slice) * a.tokens + w.r0 + r) * a.max_rank + k] = acc[r];
  }
}

// Block = (1024 outputs, row tile, slice); thread = one output o (4 of them): B row o · h row, for every row.
template <class T, bool kSegments>
__global__ void __launch_bounds__(kExpandThreads) expand_kernel(LoraArgs a) {
  constexpr int R = kSegments ? kTileRows : 1;
  extern __shared__ float4 hs4[];
  float* hs = reinterpret_cast<float*>(hs4);  // [R][rank]
  const Work w = find_work<kSegments>(a);
  if (w.r1 <= w.r0) return;
  const int slice = blockIdx.z;
  const int64_t ei = static_cast<int64_t>(slice) * a.num_entries + w.entry;
  if (!live(a, ei)) return;  // block-uniform, before the barrier
  const int rank = a.rank[ei], nrows = w.r1 - w.r0;
  const T* B = static_cast<const T*>(a.b[ei]);
  const int out_len = a.out_len[slice], off = a.out_offset[slice];
  const float scale = a.scale[ei];
  const bool vec = rank % 8 == 0 && aligned16(B);
  T* y = static_cast<T*>(a.y) + static_cast<int64_t>(w.r0) * a.y_stride + off;
  // The thread's outputs o_i = base + i·256. All their B loads of a k-chunk are issued before any is used (and
  // before any y store, which the compiler could not move them past): at rank 16 a thread has 8 16-byte loads
  // in flight instead of 2, which is what a kernel this small needs to approach the copy rate.
  const int base = blockIdx.x * kExpandPerThread * kExpandThreads + threadIdx.x;
  const T* brow[kExpandPerThread];
  bool has[kExpandPerThread];
#pragma unroll
  for (int i = 0; i < kExpandPerThread; ++i) {
    has[i] = base + i * kExpandThreads < out_len;
    brow[i] = B + static_cast<int64_t>(has[i] ? base + i * kExpandThreads : 0) * rank;
  }
  // The y values are read first, so their loads overlap the B loads below instead of following them: one
  // memory round trip on the critical path instead of two (the BGMV expand of a decode step is latency-bound).
  // The compiler cannot hoist them itself: it cannot tell y from B apart.
  float yv[kExpandPerThread][R];
#pragma unroll
  for (int i = 0; i < kExpandPerThread; ++i)
#pragma unroll
    for (int r = 0; r < R; ++r)
      yv[i][r] = has[i] && r < nrows ? to_f(y[r * a.y_stride + base + i * kExpandThreads]) : 0.0f;
  // B's first 8 columns too: none of these loads needs h, so they are in flight while h is staged below.
  detail::Pack8<T> first[kExpandPerThread];
  if (vec) {
#pragma unroll
    for (int i = 0; i < kExpandPerThread; ++i)
      if (has[i]) first[i] = detail::load_pack(brow[i]);
  }
  detail::wait_for_predecessor();  // h is the shrink's output (the only one it reads; see the note above)
  for (int i = threadIdx.x; i < R * rank; i += kExpandThreads) {
    const int r = i / rank, k = i % rank;
    hs[i] = r < nrows ? a.h[(static_cast<int64_t>(slice) * a.tokens + w.r0 + r) * a.max_rank + k] : 0.0f;
  }
  __syncthreads();
  float acc[kExpandPerThread][R];
#pragma unroll
  for (int i = 0; i < kExpandPerThread; ++i)
#pragma unroll
    for (int r = 0; r < R; ++r) acc[i][r] = 0.0f;
  if (vec) {
    for (int k = 0; k < rank; k += 8) {
      detail::Pack8<T> bp[kExpandPerThread];
#pragma unroll
      for (int i = 0; i < kExpandPerThread; ++i)
        if (has[i]) bp[i] = k == 0 ? first[i] : detail::load_pack(brow[i] + k);
#pragma unroll
      for (int i = 0; i < kExpandPerThread; ++i) {
        if (!has[i]) continue;
        float bv[8];
        detail::unpack(bp[i], bv);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const float4 h0 = *reinterpret_cast<const float4*>(hs + r * rank + k);  // broadcast reads
          const float4 h1 = *reinterpret_cast<const float4*>(hs + r * rank + k + 4);
          acc[i][r] += bv[0] * h0.x + bv[1] * h0.y + bv[2] * h0.z + bv[3] * h0.w + bv[4] * h1.x + bv[5] * h1.y +
                       bv[6] * h1.z + bv[7] * h1.w;
        }
      }
    }
  } else {
    for (int k = 0; k < rank; ++k) {
#pragma unroll
      for (int i = 0; i < kExpandPerThread; ++i) {
        if (!has[i]) continue;
        const float bv = to_f(brow[i][k]);
#pragma unroll
        for (int r = 0; r < R; ++r) acc[i][r] += bv * hs[r * rank + k];
      }
    }
  }
  // Every y value was read before any is written: the compiler cannot tell the y addresses apart, so a read
  // after a write would wait for it — 32 serial memory round trips per thread in an 8-row SGMV tile.
#pragma unroll
  for (int i = 0; i < kExpandPerThread; ++i) {
    if (!has[i]) continue;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (r >= nrows) break;
      y[r * a.y_stride + base + i * kExpandThreads] = from_f<T>(yv[i][r] + scale * acc[i][r]);
    }
  }
}

// SGMV shrink on tensor cores (lora_shrink_mma_body.h): kCluster blocks per tile (a thread-block cluster when
// more than one) split `in`.
template <class T, int kCluster>
__global__ void __launch_bounds__(shrink_mma::kThreads) shrink_mma_kernel(LoraArgs a) {
  __shared__ float red[shrink_mma::kWarps * shrink_mma::kRows * shrink_mma::kRankChunk];
  const prefill_mma::BlockIndex ix{static_cast<int>(threadIdx.x), static_cast<int>(blockIdx.x),
                                   static_cast<int>(blockIdx.y), static_cast<int>(blockIdx.z)};
  shrink_mma::block<detail::ClusterOps<T>, kCluster>(a, ix, red);
}

// Blocks per tile of the tensor-core SGMV shrink: a cluster of 8 on sm_90+ (prefill's few row tiles then fill
// the GPU: 32 blocks at 512 rows × 1 adapter became 256), one block below (no clusters). By device kind only,
// never by the step's rows, so a row's h does not depend on the batch. WEFT_SGMV_SHRINK_CLUSTER=0 keeps sm_90
// on one block and =4 takes 4: A/B measurements.
int shrink_cluster() {
  static const int v = detail::env_equals("WEFT_SGMV_SHRINK_CLUSTER", "0")   ? 1
                       : detail::env_equals("WEFT_SGMV_SHRINK_CLUSTER", "4") ? 4
                                                                             : 8;
  return detail::device_major() >= 9 ? v : 1;
}

template <class T, int kCluster>
cudaError_t launch_shrink_mma(const LoraArgs& a, unsigned tiles, cudaStream_t stream) {
  const unsigned chunks = static_cast<unsigned>((a.max_rank + shrink_mma::kRankChunk - 1) / shrink_mma::kRankChunk);
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(chunks * kCluster, tiles, static_cast<unsigned>(a.num_slices));
  cfg.blockDim = dim3(shrink_mma::kThreads);
  cfg.stream = stream;
  cudaLaunchAttribute cluster[1] = {};
  cluster[0].id = cudaLaunchAttributeClusterDimension;
  cluster[0].val.clusterDim.x = kCluster;  // consecutive blocks along x: one rank chunk's split of `in`
  cluster[0].val.clusterDim.y = 1;
  cluster[0].val.clusterDim.z = 1;
  cfg.attrs = cluster;
  cfg.numAttrs = kCluster > 1 ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, shrink_mma_kernel<T, kCluster>, a);
}

template <class T> cudaError_t launch_shrink_mma(const LoraArgs& a, int cluster, unsigned tiles, cudaStream_t stream) {
  if (cluster == 8) return launch_shrink_mma<T, 8>(a, tiles, stream);
  if (cluster == 4) return launch_shrink_mma<T, 4>(a, tiles, stream);
  return launch_shrink_mma<T, 1>(a, tiles, stream);
}

// SGMV expand with 16-byte y and B accesses (lora_expand_vec_body.h); kEarlyY: WEFT_SGMV_EXPAND_EARLY_Y=1.
template <class T, bool kEarlyY>
__global__ void __launch_bounds__(expand_vec::kThreads) expand_vec_kernel(LoraArgs a) {
  extern __shared__ float4 hs_vec[];
  const prefill_mma::BlockIndex ix{static_cast<int>(threadIdx.x), static_cast<int>(blockIdx.x),
                                   static_cast<int>(blockIdx.y), static_cast<int>(blockIdx.z)};
  expand_vec::block<detail::DeviceOps<T>, kEarlyY>(a, ix, reinterpret_cast<float*>(hs_vec));
}
bool expand_early_y() {
  static const bool on = detail::env_equals("WEFT_SGMV_EXPAND_EARLY_Y", "1");
  return on;
}

// BGMV shrink with `in` split across the block (lora_shrink_split_body.h): about one memory round trip per block
// instead of one per 1,024 elements of `in` per warp. Lets the expand start at once, like the first kernel.
template <class T>
__global__ void __launch_bounds__(shrink_split::kThreads) shrink_split_kernel(LoraArgs a) {
  __shared__ float red[shrink_split::kRedFloats];
  detail::release_dependents();
  const prefill_mma::BlockIndex ix{static_cast<int>(threadIdx.x), static_cast<int>(blockIdx.x),
                                   static_cast<int>(blockIdx.y), static_cast<int>(blockIdx.z)};
  shrink_split::block<detail::DeviceOps<T>>(a, ix, red);
}
// WEFT_BGMV_SHRINK=split runs a decode step's shrink on the split kernel: opt-in, measured no faster on an H100
// (2026-11-23: -1.0 to +2.4 % per decode step over batch 1..128, within run-to-run noise).
bool bgmv_shrink_split() {
  static const bool v = detail::env_equals("WEFT_BGMV_SHRINK", "split");
  return v;
}

// WEFT_LORA_KERNELS=simt keeps the SGMV shrink and expand on the first (CUDA-core, 2-byte) kernels: A/B
// measurements, or a way around a problem with the newer ones on a new GPU without rebuilding.
bool simt_only() {
  static const bool v = detail::env_equals("WEFT_LORA_KERNELS", "simt");
  return v;
}

bool valid(const LoraArgs& a, bool segments) {
  return a.tokens >= 0 && a.in > 0 && a.x && a.h && a.y && a.num_slices > 0 && a.num_slices <= 65535 &&
         a.num_entries >= 0 && a.a && a.b && a.rank && a.scale && a.out_offset && a.out_len && a.max_rank > 0 &&
         a.max_rank <= kMaxRank && a.max_out_len >= 0 &&
         (segments ? a.seg_starts != nullptr : a.token_entry != nullptr);
}
// Row tiles of the grid: SGMV's 8-row tiles; BGMV one per token.
int64_t row_tiles(const LoraArgs& a, bool segments) { return segments ? sgmv::row_tiles(a, kTileRows) : a.tokens; }

// pdl: the BGMV expand right after its shrink (see allow_dependents_to_start).
template <bool kShrink, bool kSegments>
cudaError_t launch(const LoraArgs& a, cudaStream_t stream, bool pdl = false) {
  if (!valid(a, kSegments)) return cudaErrorInvalidValue;
  const int64_t tiles = row_tiles(a, kSegments);
  if (tiles > 65535) return cudaErrorInvalidValue;
  if (a.tokens == 0 || a.num_entries == 0 || (!kShrink && a.max_out_len == 0)) return cudaSuccess;
  return detail::dispatch(a.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (kShrink) {
      const dim3 grid((a.max_rank + kShrinkRanks - 1) / kShrinkRanks, static_cast<unsigned>(tiles), a.num_slices);
      shrink_kernel<T, kSegments><<<grid, kShrinkThreads, 0, stream>>>(a);
    } else {
      constexpr int kPerBlock = kExpandThreads * kExpandPerThread;
      const dim3 grid((a.max_out_len + kPerBlock - 1) / kPerBlock, static_cast<unsigned>(tiles), a.num_slices);
      const size_t smem = sizeof(float) * (kSegments ? kTileRows : 1) * a.max_rank;
      return detail::launch_maybe_pdl(!kSegments && pdl && pdl_enabled(), expand_kernel<T, kSegments>, grid,
                                      dim3(kExpandThreads), smem, stream, a);
    }
    return cudaGetLastError();
  });
}

}  // namespace

cudaError_t lora_sgmv_shrink_simt(const LoraArgs& a, cudaStream_t stream) { return launch<true, true>(a, stream); }

cudaError_t lora_sgmv_shrink_mma(const LoraArgs& a, cudaStream_t stream, int cluster) {
  if (!valid(a, true) || (cluster != 0 && cluster != 1 && cluster != 4 && cluster != 8)) return cudaErrorInvalidValue;
  if (cluster == 0) cluster = shrink_cluster();
  if (!shrink_mma::supports(a) || detail::device_major() < (cluster > 1 ? 9 : 8)) return cudaErrorNotSupported;
  const int64_t tiles = shrink_mma::row_tiles(a);
  if (tiles > 65535) return cudaErrorInvalidValue;
  if (a.tokens == 0 || a.num_entries == 0) return cudaSuccess;
  const unsigned gy = static_cast<unsigned>(tiles);
  if (a.dtype == DType::kBF16) return launch_shrink_mma<__nv_bfloat16>(a, cluster, gy, stream);
  return launch_shrink_mma<__half>(a, cluster, gy, stream);
}

cudaError_t lora_sgmv_shrink(const LoraArgs& a, cudaStream_t stream) {
  if (!simt_only() && shrink_mma::supports(a) && detail::device_major() >= 8) return lora_sgmv_shrink_mma(a, stream);
  return lora_sgmv_shrink_simt(a, stream);
}

cudaError_t lora_sgmv_expand_vec(const LoraArgs& a, cudaStream_t stream) {
  if (!valid(a, true)) return cudaErrorInvalidValue;
  if (!expand_vec::supports(a)) return cudaErrorNotSupported;
  const int64_t tiles = expand_vec::row_tiles(a);
  if (tiles > 65535) return cudaErrorInvalidValue;
  if (a.tokens == 0 || a.num_entries == 0 || a.max_out_len == 0) return cudaSuccess;
  const size_t smem = expand_vec::smem_bytes(a);
  const dim3 grid(static_cast<unsigned>(expand_vec::col_blocks(a)), static_cast<unsigned>(tiles), a.num_slices);
  return detail::dispatch(a.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, float>) {
      return cudaErrorNotSupported;
    } else {
      const auto kernel = expand_early_y() ? expand_vec_kernel<T, true> : expand_vec_kernel<T, false>;
      if (smem > 48 * 1024) {
        const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                     static_cast<int>(smem));
        if (err != cudaSuccess) return err;
      }
      kernel<<<grid, expand_vec::kThreads, smem, stream>>>(a);
      return cudaGetLastError();
    }
  });
}

cudaError_t lora_sgmv_expand(const LoraArgs& a, cudaStream_t stream) {
  if (!simt_only() && expand_vec::supports(a)) return lora_sgmv_expand_vec(a, stream);
  return lora_sgmv_expand_simt(a, stream);
}
cudaError_t lora_sgmv_expand_simt(const LoraArgs& a, cudaStream_t stream) { return launch<false, true>(a, stream); }
cudaError_t lora_bgmv_shrink_warp(const LoraArgs& a, cudaStream_t stream) { return launch<true, false>(a, stream); }
cudaError_t lora_bgmv_shrink_split(const LoraArgs& a, cudaStream_t stream) {
  if (!valid(a, false) || a.tokens > 65535) return cudaErrorInvalidValue;
  if (!shrink_split::supports(a)) return cudaErrorNotSupported;
  if (a.tokens == 0 || a.num_entries == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(shrink_split::rank_chunks(a)), static_cast<unsigned>(a.tokens), a.num_slices);
  if (a.dtype == DType::kBF16) shrink_split_kernel<__nv_bfloat16><<<grid, shrink_split::kThreads, 0, stream>>>(a);
  else shrink_split_kernel<__half><<<grid, shrink_split::kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}
// By dtype and an environment switch only, never by the step's rows (a token's h must not depend on the batch).
cudaError_t lora_bgmv_shrink(const LoraArgs& a, cudaStream_t stream) {
  if (bgmv_shrink_split() && shrink_split::supports(a)) return lora_bgmv_shrink_split(a, stream);
  return lora_bgmv_shrink_warp(a, stream);
}
cudaError_t lora_bgmv_expand(const LoraArgs& a, cudaStream_t stream) { return launch<false, false>(a, stream, true); }
cudaError_t lora_bgmv_expand_no_pdl(const LoraArgs& a, cudaStream_t stream) { return launch<false, false>(a, stream); }

}  // namespace weft::cuda
