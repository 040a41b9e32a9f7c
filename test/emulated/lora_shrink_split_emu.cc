// Runs the split BGMV shrink body (kernels/src/cuda/kernels/lora_shrink_split_body.h, the code lora.cu's kernel
// instantiates) under the host warp emulator and checks h = x·Aᵀ per token against a double-precision sum:
// several slices, ranks that are and are not multiples of the block's 4-rank chunk, base tokens (entry -1),
// entries without weights, `in` 4096 and 11008 (the down projection: a last pass with part of the threads idle),
// `in` not a multiple of 8 and A off 16 bytes (the element-by-element path), padded x rows, bf16 and fp16.
// Entries of h the kernel must not touch (ranks past an adapter's rank, base tokens) keep a sentinel. Batch
// invariance: every token is run again alone as a one-token step and its h must match bit for bit.
// Build + run: test/unit/tensor-core-emulated.test.ts. Exit status 0 when all cases pass.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/kernels/lora_shrink_split_body.h"
#include "h_check.h"
#include "warp_emu.h"

namespace {
namespace ss = weft::cuda::shrink_split;
using namespace weft::emu;
using weft::cuda::DType;
using weft::cuda::LoraArgs;

constexpr float kSentinel = -12345.0f;

struct Case {
  std::string name;
  DType d;
  int in, x_stride, slices, max_rank, entries;
  std::vector<int> ranks;        // per entry (all slices); 0 = no weights for this entry
  std::vector<int> token_entry;  // -1 = base model
  int a_misalign = 0;            // A this many elements past a 16-byte boundary
};

void shrink(const LoraArgs& a) {
  std::vector<float> red(ss::kRedFloats);
  with_ops(a.dtype, [&](auto ops) {
    run_blocks(static_cast<int>(ss::rank_chunks(a)), a.tokens, a.num_slices,
               [&](const weft::cuda::prefill_mma::BlockIndex& ix) { ss::block<decltype(ops)>(a, ix, red.data()); });
  });
}

bool run(const Case& c, std::mt19937& rng) {
  const int S = c.slices, E = c.entries, T = static_cast<int>(c.token_entry.size());
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<uint16_t> x(static_cast<size_t>(T) * c.x_stride + 8);
  for (auto& v : x) v = to_bits(c.d, nd(rng));
  std::vector<std::vector<uint16_t>> as(S * E);
  std::vector<const void*> ap(S * E, nullptr), bp(S * E, nullptr);
  std::vector<int32_t> ranks(S * E, 0);
  std::vector<float> scales(S * E, 1.0f);
  static const uint16_t kB = 0;  // the shrink never reads B; it only has to be non-null for a live entry
  for (int s = 0; s < S; ++s)
    for (int e = 0; e < E; ++e) {
      const int r = c.ranks[e], i = s * E + e;
      if (r == 0) continue;
      as[i].resize(static_cast<size_t>(r) * c.in + 8);  // vector storage is 16-byte aligned
      for (auto& v : as[i]) v = to_bits(c.d, nd(rng));
      ap[i] = as[i].data() + c.a_misalign;
      bp[i] = &kB;
      ranks[i] = r;
    }
  std::vector<int32_t> offs(S, 0), lens(S, 16);
  auto args = [&](int tokens, const uint16_t* xs, float* h, const int32_t* te) {
    LoraArgs a{};
    a.dtype = c.d;
    a.tokens = tokens;
    a.in = c.in;
    a.x = xs;
    a.x_stride = c.x_stride;
    a.h = h;
    a.y = h;  // not used by the shrink
    a.y_stride = 16;
    a.num_slices = S;
    a.out_offset = offs.data();
    a.out_len = lens.data();
    a.max_out_len = 16;
    a.num_entries = E;
    a.a = ap.data();
    a.b = bp.data();
    a.rank = ranks.data();
    a.scale = scales.data();
    a.max_rank = c.max_rank;
    a.token_entry = te;
    return a;
  };
  std::vector<float> h(static_cast<size_t>(S) * T * c.max_rank, kSentinel);
  shrink(args(T, x.data(), h.data(), c.token_entry.data()));

  double worst = 0;
  int untouched_bad = 0, variant = 0;
  for (int s = 0; s < S; ++s)
    for (int t = 0; t < T; ++t) {
      const int e = c.token_entry[t], i = s * E + e;
      const int r = e < 0 ? 0 : ranks[i];
      for (int k = 0; k < c.max_rank; ++k) {
        const float got = h[(static_cast<size_t>(s) * T + t) * c.max_rank + k];
        if (k >= r) {
          untouched_bad += got != kSentinel;
          continue;
        }
        const uint16_t* A = static_cast<const uint16_t*>(ap[i]) + static_cast<size_t>(k) * c.in;
        worst = std::max(worst, shrink_rel_err(c.d, &x[static_cast<size_t>(t) * c.x_stride], A, c.in, got));
      }
    }
  // Each token alone: the same h bits.
  for (int t = 0; t < T; ++t) {
    std::vector<float> h1(static_cast<size_t>(S) * c.max_rank, kSentinel);
    const int32_t te[1] = {c.token_entry[t]};
    shrink(args(1, x.data() + static_cast<size_t>(t) * c.x_stride, h1.data(), te));
    for (int s = 0; s < S; ++s)
      variant += std::memcmp(&h[(static_cast<size_t>(s) * T + t) * c.max_rank], &h1[static_cast<size_t>(s) * c.max_rank],
                             sizeof(float) * c.max_rank) != 0;
  }
  const bool ok = worst <= 1e-5 && untouched_bad == 0 && variant == 0;
  std::printf("%s %s (err %.3g of Σ|x·a|, %d entries written that must not be, %d token slices differ alone)\n",
              ok ? "ok  " : "FAIL", c.name.c_str(), worst, untouched_bad, variant);
  std::fflush(stdout);
  return ok;
}

}  // namespace

int main() {
  std::mt19937 rng(31);
  const DType bf16 = DType::kBF16, f16 = DType::kF16;
  const std::vector<Case> cases = {
      {"qkv-like: in 4096, 3 slices, ranks 16/8, a base token", bf16, 4096, 4096, 3, 16, 2, {16, 8}, {0, 1, -1, 0}},
      {"down-like: in 11008, ranks 16/6 (a partial 4-rank chunk), padded x rows, fp16", f16, 11008, 11016, 1, 16, 2,
       {16, 6}, {1, 0, 1}},
      {"rank 64 (16 chunks), an entry without weights, 2 slices", bf16, 1024, 1024, 2, 64, 3, {64, 0, 3},
       {0, 1, 2, 2, -1}},
      {"in 1000 (a last pass of 104 elements), rank 7", f16, 1000, 1000, 1, 8, 1, {7}, {0, 0}},
      {"A 2 bytes off 16 (element path), in 520, rank 12", bf16, 520, 520, 1, 16, 1, {12}, {0, -1, 0}, 1},
      {"in 1002 (not a multiple of 8: element path), rank 4, x rows 1002 apart", f16, 1002, 1002, 1, 4, 1, {4}, {0, 0, 0}},
  };
  int failed = 0;
  for (const Case& c : cases) failed += !run(c, rng);
  std::printf("%zu cases, %d failed\n", cases.size(), failed);
  return failed == 0 ? 0 : 1;
}
