// Runs the tensor-core SGMV shrink body (kernels/src/cuda/kernels/lora_shrink_mma_body.h, the code lora.cu's
// kernel instantiates) under the host warp emulator (warp_emu.h) and checks h = x·Aᵀ per segment against a
// double-precision sum: several slices, ranks across the 64-rank chunks, a base-model segment (no adapter),
// an empty segment, `in` that does not split evenly over the 4 warps, padded x rows, bf16 and fp16.
// Entries of h the kernel must not touch (ranks past an adapter's rank, rows of the base segment) keep a
// sentinel. Build + run: test/unit/prefill-mma-emulated.test.ts. Exit status 0 when all cases pass.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cuda/kernels/lora_shrink_mma_body.h"
#include "warp_emu.h"

namespace {
namespace sm = weft::cuda::shrink_mma;
using namespace weft::emu;
using weft::cuda::DType;
using weft::cuda::LoraArgs;

constexpr float kSentinel = -12345.0f;

struct Segment {
  int rows, rank;  // rank 0: base model (no adapter) for this segment
};
struct Case {
  std::string name;
  DType d;
  int in, x_stride, slices, max_rank;
  std::vector<Segment> segs;
  bool unaligned_a = false;  // A starts 2 bytes past a 4-byte boundary
};

bool run(const Case& c, std::mt19937& rng) {
  const int E = static_cast<int>(c.segs.size()), S = c.slices;
  std::vector<int32_t> seg(E + 1, 0);
  for (int e = 0; e < E; ++e) seg[e + 1] = seg[e] + c.segs[e].rows;
  const int T = seg[E];
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto draw = [&](size_t n) {
    std::vector<uint16_t> v(n);
    for (auto& b : v) b = to_bits(c.d, nd(rng));
    return v;
  };
  const std::vector<uint16_t> x = draw(static_cast<size_t>(T) * c.x_stride);
  // Per (slice, entry): A [rank, in] (each slice its own), or nothing for a base segment.
  std::vector<std::vector<uint16_t>> as(S * E);
  std::vector<const void*> ap(S * E, nullptr), bp(S * E, nullptr);
  std::vector<int32_t> ranks(S * E, 0);
  std::vector<float> scales(S * E, 1.0f);
  static const uint16_t kB = 0;  // shrink never reads B; it only has to be non-null for a live entry
  for (int s = 0; s < S; ++s) {
    for (int e = 0; e < E; ++e) {
      const int i = s * E + e, r = c.segs[e].rank;
      if (r == 0) continue;
      as[i] = draw(static_cast<size_t>(r) * c.in + 1);  // new[] is 16-byte aligned: +1 element is 2 bytes off
      ap[i] = as[i].data() + (c.unaligned_a ? 1 : 0);
      bp[i] = &kB;
      ranks[i] = r;
    }
  }
  std::vector<float> h(static_cast<size_t>(S) * T * c.max_rank, kSentinel);
  LoraArgs a{};
  a.dtype = c.d;
  a.tokens = T;
  a.in = c.in;
  a.x = x.data();
  a.x_stride = c.x_stride;
  a.h = h.data();
  a.num_slices = S;
  a.num_entries = E;
  a.a = ap.data();
  a.b = bp.data();
  a.rank = ranks.data();
  a.scale = scales.data();
  a.max_rank = c.max_rank;
  a.seg_starts = seg.data();
  if (!sm::supports(a)) {
    std::printf("FAIL %s: not supported by the tensor-core shrink\n", c.name.c_str());
    return false;
  }
  std::vector<float> red(sm::smem_bytes() / sizeof(float));
  const int gx = (c.max_rank + sm::kRankChunk - 1) / sm::kRankChunk;
  with_ops(c.d, [&](auto ops) {
    run_blocks(gx, static_cast<int>(sm::row_tiles(a)), S,
               [&](const pm::BlockIndex& ix) { sm::block<decltype(ops)>(a, ix, red.data()); });
  });
  double worst = 0;
  int untouched_bad = 0;
  for (int s = 0; s < S; ++s) {
    for (int e = 0; e < E; ++e) {
      const int r = ranks[s * E + e];
      for (int t = seg[e]; t < seg[e + 1]; ++t) {
        for (int k = 0; k < c.max_rank; ++k) {
          const float got = h[(static_cast<size_t>(s) * T + t) * c.max_rank + k];
          if (k >= r) {
            untouched_bad += got != kSentinel;
            continue;
          }
          double ref = 0, mag = 0;
          for (int i = 0; i < c.in; ++i) {
            const double p = static_cast<double>(from_bits(c.d, x[static_cast<size_t>(t) * c.x_stride + i])) *
                             from_bits(c.d, static_cast<const uint16_t*>(ap[s * E + e])[static_cast<size_t>(k) * c.in + i]);
            ref += p;
            mag += std::fabs(p);
          }
          worst = std::max(worst, std::fabs(got - ref) / (mag + 1e-30));  // relative to Σ|terms|: fp32 summation
        }
      }
    }
  }
  const bool ok = worst <= 1e-5 && untouched_bad == 0;
  std::printf("%s %s (err %.3g of Σ|x·a|, %d entries written that must not be)\n", ok ? "ok  " : "FAIL", c.name.c_str(),
              worst, untouched_bad);
  std::fflush(stdout);
  return ok;
}

}  // namespace

int main() {
  std::mt19937 rng(77);
  const DType bf16 = DType::kBF16, f16 = DType::kF16;
  const std::vector<Case> cases = {
      {"3 slices, ranks 16/8/64, a base segment, 16-row tiles across segments", bf16, 256, 256, 3, 64,
       {{20, 16}, {1, 8}, {7, 0}, {39, 64}}},
      {"rank 80 over two 64-rank chunks, in 176 (11 k-steps over 4 warps), padded x rows", bf16, 176, 200, 1, 96,
       {{33, 80}, {0, 16}, {5, 96}}},
      {"fp16, 2 slices, rank 4, one long segment", f16, 64, 64, 2, 16, {{70, 4}}},
      {"A 2 bytes off a 4-byte boundary, bf16", bf16, 128, 128, 1, 16, {{9, 16}, {4, 12}}, true},
  };
  int failed = 0;
  for (const Case& c : cases) failed += run(c, rng) ? 0 : 1;
  std::printf("%zu cases, %d failed\n", cases.size(), failed);
  return failed == 0 ? 0 : 1;
}
