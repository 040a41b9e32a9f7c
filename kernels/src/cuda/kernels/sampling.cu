// Logits processing, greedy argmax and seeded sampling with the exact rules of cpu/sampling.cc:
// repetition penalty -> temperature -> stable order by value (ties: lower id first) -> top-k -> top-p ->
// inverse-CDF draw with splitmix64(seed, draw_index), over 2^40 fixed-point weights (integer sums, exact in
// any order, so the block scans choose what the CPU's sequential loop chooses).
// The sorted order comes from one device-wide stable radix sort of (row, value desc) keys over all rows
// (CUB, from the CUDA toolkit), so the draw walks exactly the order the CPU's stable_sort produces.
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include <climits>

#include "common.cuh"

namespace weft::cuda {
namespace {
using detail::to_f;

constexpr int kRowThreads = 1024;  // logits_process, argmax: one block per row
constexpr int kDrawThreads = 256;
constexpr int kDrawItems = 8;      // entries per thread per scan step (blocked: 8 consecutive)

// Same definition as cpu/sampling.cc: a stateless hash, draw n depends only on (seed, n).
__device__ __forceinline__ uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
__device__ __forceinline__ double uniform01(uint64_t seed, uint64_t index) {
  return static_cast<double>(mix(mix(seed) ^ (index * 0xd1b54a32d192ed03ULL)) >> 11) * (1.0 / 9007199254740992.0);
}

template <class T>
__global__ void process_kernel(const T* logits, int64_t vocab, int64_t stride, const SampleRow* params,
                               const int32_t* pen_off, const int32_t* pen_tok, float* out, LogitsExtras x) {
  const int64_t row = blockIdx.x;
  const SampleRow p = params[row];
  const T* in = logits + row * stride;
  float* o = out + row * vocab;
  const bool temper = p.do_sample && p.temperature > 0.0f && p.temperature != 1.0f;
  // Structured output: tokens whose bit is clear get -inf whatever the penalties would make of them.
  const int64_t mask_bytes = x.mask_bytes;
  const uint8_t* mask = x.masks && p.mask_index >= 0 ? x.masks + static_cast<int64_t>(p.mask_index) * mask_bytes : nullptr;
  const auto allowed = [&](int64_t t) { return !mask || (t >> 3 < mask_bytes && ((mask[t >> 3] >> (t & 7)) & 1)); };
  // "+ 0.0f" turns -0 into +0: the radix sort orders -0 below +0, the CPU's comparison does not. NaN becomes
  // -inf (probability 0, last in the order), as in cpu/sampling.cc.
  const auto finite_or_low = [](float v) { return isnan(v) ? -INFINITY : v + 0.0f; };
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = to_f(in[i]);
    o[i] = allowed(i) ? finite_or_low(temper ? v / p.temperature : v) : -INFINITY;
  }
  if (p.repetition_penalty != 1.0f && pen_off) {  // uniform over the block: the barrier is safe
    __syncthreads();  // penalised values must land after the plain pass
    // Computed from the unprocessed input, so a token listed twice is written twice with the same value.
    for (int64_t k = pen_off[row] + threadIdx.x; k < pen_off[row + 1]; k += blockDim.x) {
      const int32_t t = pen_tok[k];
      if (t < 0 || t >= vocab || !allowed(t)) continue;
      float v = to_f(in[t]);
      v = v < 0.0f ? v * p.repetition_penalty : v / p.repetition_penalty;
      o[t] = finite_or_low(temper ? v / p.temperature : v);
    }
  }
  if (!x.adjust_offsets) return;
  __syncthreads();  // an adjusted token's value replaces the one the passes above wrote
  // Each token once per row (the host merged them), from the raw logit in cpu::sample_token's order; the _rn
  // intrinsics keep the compiler from fusing v - f * c into an FMA the CPU does not do.
  for (int64_t k = x.adjust_offsets[row] + threadIdx.x; k < x.adjust_offsets[row + 1]; k += blockDim.x) {
    const LogitAdjust e = x.adjustments[k];
    const int32_t t = e.token;
    if (t < 0 || t >= vocab || !allowed(t)) continue;
    float v = to_f(in[t]);
    if (e.flags & kAdjustRepetition) v = v < 0.0f ? v * p.repetition_penalty : v / p.repetition_penalty;
    if (e.count > 0) {
      v = __fsub_rn(__fsub_rn(v, __fmul_rn(p.frequency_penalty, static_cast<float>(e.count))), p.presence_penalty);
    }
    if (e.flags & kAdjustBias) v = __fadd_rn(v, e.bias);
    o[t] = finite_or_low(temper ? v / p.temperature : v);
  }
}

__device__ __forceinline__ bool better(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

template <class T>
__global__ void __launch_bounds__(kRowThreads)
    argmax_kernel(const T* logits, int64_t vocab, int64_t stride, int32_t* token, float* logprob) {
  __shared__ float sv[32];
  __shared__ int si[32];
  __shared__ double red[32];
  const T* x = logits + static_cast<int64_t>(blockIdx.x) * stride;
  float bv = -INFINITY;
  int bi = INT_MAX;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = to_f(x[i]);
    if (better(v, static_cast<int>(i), bv, bi)) bv = v, bi = static_cast<int>(i);
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = detail::shfl_xor(bv, o);
    const int oi = detail::shfl_xor(bi, o);
    if (better(ov, oi, bv, bi)) bv = ov, bi = oi;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) sv[warp] = bv, si[warp] = bi;
  __syncthreads();
  bv = -INFINITY;
  bi = INT_MAX;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w)
    if (better(sv[w], si[w], bv, bi)) bv = sv[w], bi = si[w];
  if (logprob) {
    double se = 0.0;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) se += exp(static_cast<double>(to_f(x[i])) - bv);
    se = detail::block_sum(se, red);
    if (threadIdx.x == 0) logprob[blockIdx.x] = static_cast<float>(-log(se));
  }
  // A row of NaN only: token 0, as the CPU's order (NaN after every number, ties to the lower id) gives.
  if (threadIdx.x == 0) token[blockIdx.x] = bi == INT_MAX ? 0 : bi;
}

// Sort key: row in the high word, then the value's bits mapped so that ascending key = descending value.
__global__ void sort_keys_kernel(const float* x, int64_t rows, int64_t vocab, uint64_t* keys, int32_t* ids) {
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < rows * vocab;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / vocab;
    const uint32_t b = __float_as_uint(x[e]);
    const uint32_t ord = (b & 0x80000000u) ? ~b : (b | 0x80000000u);  // ascending with the float
    keys[e] = (static_cast<uint64_t>(r) << 32) | static_cast<uint32_t>(~ord);
    ids[e] = static_cast<int32_t>(e - r * vocab);
  }
}
__device__ __forceinline__ double key_value(uint64_t key) {
  const uint32_t ord = ~static_cast<uint32_t>(key);
  return __uint_as_float((ord & 0x80000000u) ? (ord & 0x7fffffffu) : ~ord);
}

// exp(v - max) in (0, 1] as a 2^40 fixed-point integer: the same expression as cpu/sampling.cc, so the kept
// set and the draw are integer sums — exact in the scan's order as in the CPU's sequential one.
__device__ __forceinline__ uint64_t fixed_weight(double e) {
  return e > 0.0 ? static_cast<uint64_t>(e * 1099511627776.0 + 0.5) : 0ull;
}
__device__ __forceinline__ uint64_t weight_at(const uint64_t* keys, int64_t i, double mx) {
  return fixed_weight(exp(key_value(keys[i]) - mx));
}

using DrawScan = cub::BlockScan<unsigned long long, kDrawThreads>;

__device__ uint64_t block_sum_u64(uint64_t v, unsigned long long* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // red may still be read by a previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  uint64_t t = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) t += red[w];
  return t;
}

// Smallest i < n whose inclusive cumulative weight reaches thr ((double)cum >= thr, or > thr when strict),
// -1 if none.
__device__ int64_t first_reaching(const uint64_t* keys, int64_t n, double mx, double thr, bool strict,
                                  DrawScan::TempStorage& tmp, int& found) {
  constexpr int kChunk = kDrawThreads * kDrawItems;
  unsigned long long carry = 0;
  for (int64_t base = 0; base < n; base += kChunk) {
    unsigned long long v[kDrawItems], agg;
#pragma unroll
    for (int j = 0; j < kDrawItems; ++j) {
      const int64_t i = base + threadIdx.x * kDrawItems + j;
      v[j] = i < n ? weight_at(keys, i, mx) : 0ull;
    }
    DrawScan(tmp).InclusiveSum(v, v, agg);
    if (threadIdx.x == 0) found = INT_MAX;
    __syncthreads();  // also: every thread has read `found` of the previous step, and tmp is free again
#pragma unroll
    for (int j = 0; j < kDrawItems; ++j) {
      const int64_t i = base + threadIdx.x * kDrawItems + j;
      const double c = static_cast<double>(carry + v[j]);
      if (i < n && (strict ? c > thr : c >= thr)) {
        atomicMin(&found, static_cast<int>(threadIdx.x) * kDrawItems + j);
        break;
      }
    }
    __syncthreads();
    const int f = found;
    __syncthreads();  // everyone has read `found` before thread 0 resets it
    if (f != INT_MAX) return base + f;
    carry += agg;
  }
  return -1;
}

__global__ void __launch_bounds__(kDrawThreads)
    draw_kernel(const uint64_t* sorted_keys, const int32_t* sorted_ids, int64_t vocab, const SampleRow* params,
                int32_t* token, float* logprob, int top_n, int32_t* top_ids, float* top_lp) {
  __shared__ DrawScan::TempStorage tmp;
  __shared__ double red[32];
  __shared__ unsigned long long red64[32];
  __shared__ int found;
  const int64_t row = blockIdx.x;
  const uint64_t* keys = sorted_keys + row * vocab;
  const int32_t* ids = sorted_ids + row * vocab;
  const SampleRow p = params[row];
  const double mx = key_value(keys[0]);
  double se = 0.0;
  for (int64_t i = threadIdx.x; i < vocab; i += kDrawThreads) se += exp(key_value(keys[i]) - mx);
  const double lse = mx + log(detail::block_sum(se, red));  // logprobs are of the processed, untruncated row
  for (int i = threadIdx.x; i < top_n && i < vocab; i += kDrawThreads) {
    top_ids[row * top_n + i] = ids[i];
    top_lp[row * top_n + i] = static_cast<float>(key_value(keys[i]) - lse);
  }
  int64_t pick = 0;  // greedy: the first of the stable order
  if (p.do_sample && p.temperature > 0.0f) {
    int64_t keep = p.top_k > 0 && p.top_k < vocab ? p.top_k : vocab;
    if (p.top_p < 1.0f) {
      uint64_t total = 0;
      for (int64_t i = threadIdx.x; i < keep; i += kDrawThreads) total += weight_at(keys, i, mx);
      total = block_sum_u64(total, red64);
      const double thr = static_cast<double>(p.top_p) * static_cast<double>(total);
      const int64_t k = first_reaching(keys, keep, mx, thr, false, tmp, found);
      if (k >= 0) keep = k + 1;
    }
    uint64_t mass = 0;
    for (int64_t i = threadIdx.x; i < keep; i += kDrawThreads) mass += weight_at(keys, i, mx);
    mass = block_sum_u64(mass, red64);
    const double u = uniform01(p.seed, p.draw_index) * static_cast<double>(mass);
    const int64_t k = first_reaching(keys, keep, mx, u, true, tmp, found);
    pick = k >= 0 ? k : keep - 1;
  }
  if (threadIdx.x == 0) {
    token[row] = ids[pick];
    if (logprob) logprob[row] = static_cast<float>(key_value(keys[pick]) - lse);
  }
}

int sort_end_bit(int64_t rows) {
  int bits = 0;
  while ((int64_t{1} << bits) < rows) ++bits;
  return 32 + bits;
}
size_t round_up(size_t n) { return (n + 255) & ~size_t{255}; }

struct SortSpace {
  uint64_t *keys_in, *keys_out;
  int32_t *ids_in, *ids_out;
  void* temp;
  size_t temp_bytes, total;
};
// Carves the workspace (base may be null to only size it).
cudaError_t sort_space(int64_t rows, int64_t vocab, void* base, SortSpace* s) {
  const int64_t n = rows * vocab;
  if (rows <= 0 || vocab <= 0 || vocab > INT32_MAX || rows > INT32_MAX) return cudaErrorInvalidValue;
  s->temp_bytes = 0;
  const cudaError_t err =
      cub::DeviceRadixSort::SortPairs(nullptr, s->temp_bytes, static_cast<const uint64_t*>(nullptr),
                                      static_cast<uint64_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                      static_cast<int32_t*>(nullptr), n, 0, sort_end_bit(rows));
  if (err != cudaSuccess) return err;
  char* p = static_cast<char*>(base);
  const size_t kb = round_up(sizeof(uint64_t) * n), ib = round_up(sizeof(int32_t) * n);
  s->keys_in = reinterpret_cast<uint64_t*>(p);
  s->keys_out = reinterpret_cast<uint64_t*>(p + kb);
  s->ids_in = reinterpret_cast<int32_t*>(p + 2 * kb);
  s->ids_out = reinterpret_cast<int32_t*>(p + 2 * kb + ib);
  s->temp = p + 2 * kb + 2 * ib;
  s->total = 2 * kb + 2 * ib + round_up(s->temp_bytes);
  return cudaSuccess;
}

}  // namespace

cudaError_t logits_process(const void* logits, DType dtype, int64_t rows, int64_t vocab, int64_t stride,
                           const SampleRow* params, const int32_t* penalty_offsets, const int32_t* penalty_tokens,
                           float* processed, cudaStream_t stream, const LogitsExtras* extras) {
  const LogitsExtras x = extras ? *extras : LogitsExtras{};
  if (rows < 0 || rows > INT32_MAX || vocab < 0 || stride < vocab || !params || (penalty_offsets && !penalty_tokens) ||
      (x.masks && x.mask_bytes <= 0) || (x.adjust_offsets && !x.adjustments))
    return cudaErrorInvalidValue;
  if (rows == 0 || vocab == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    process_kernel<T><<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(
        static_cast<const T*>(logits), vocab, stride, params, penalty_offsets, penalty_tokens, processed, x);
    return cudaGetLastError();
  });
}

cudaError_t argmax_rows(const void* logits, DType dtype, int64_t rows, int64_t vocab, int64_t stride, int32_t* token,
                        float* logprob, cudaStream_t stream) {
  if (rows < 0 || rows > INT32_MAX || vocab <= 0 || vocab > INT32_MAX || stride < vocab || !token)
    return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    argmax_kernel<T><<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(static_cast<const T*>(logits), vocab,
                                                                               stride, token, logprob);
    return cudaGetLastError();
  });
}

cudaError_t sample_workspace_bytes(int64_t rows, int64_t vocab, size_t* bytes) {
  SortSpace s{};
  const cudaError_t err = sort_space(rows, vocab, nullptr, &s);
  if (err == cudaSuccess) *bytes = s.total;
  return err;
}

cudaError_t sample_rows(const float* processed, int64_t rows, int64_t vocab, const SampleRow* params, void* workspace,
                        size_t workspace_bytes, int32_t* token, float* logprob, int32_t top_n, int32_t* top_ids,
                        float* top_logprobs, cudaStream_t stream) {
  if (top_n < 0 || (top_n > 0 && (!top_ids || !top_logprobs)) || !processed || !params || !token || !workspace)
    return cudaErrorInvalidValue;
  SortSpace s{};
  cudaError_t err = sort_space(rows, vocab, workspace, &s);
  if (err != cudaSuccess) return err;
  if (workspace_bytes < s.total) return cudaErrorInvalidValue;
  const int64_t n = rows * vocab;
  sort_keys_kernel<<<detail::grid_for(n, 256), 256, 0, stream>>>(processed, rows, vocab, s.keys_in, s.ids_in);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  err = cub::DeviceRadixSort::SortPairs(s.temp, s.temp_bytes, s.keys_in, s.keys_out, s.ids_in, s.ids_out, n, 0,
                                        sort_end_bit(rows), stream);
  if (err != cudaSuccess) return err;
  draw_kernel<<<static_cast<unsigned>(rows), kDrawThreads, 0, stream>>>(s.keys_out, s.ids_out, vocab, params, token,
                                                                         logprob, top_n, top_ids, top_logprobs);
  return cudaGetLastError();
}

}  // namespace weft::cuda
