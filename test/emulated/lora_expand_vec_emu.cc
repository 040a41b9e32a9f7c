// Runs the 16-byte SGMV expand body (kernels/src/cuda/kernels/lora_expand_vec_body.h, the code lora.cu's kernel
// instantiates) under the host warp emulator (warp_emu.h) and checks y += scale·h·Bᵀ per segment against a
// double-precision sum: fused slices at offsets that do and do not allow 16-byte access, slice widths that
// end mid-vector, ranks that are and are not multiples of 8, B 2 bytes off alignment, two column blocks, a
// base segment, an empty segment, padded y rows, bf16 and fp16. Every y entry outside the adapters' rows and
// slices must keep its value bit for bit. Build + run: test/unit/tensor-core-emulated.test.ts.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cuda/kernels/lora_expand_vec_body.h"
#include "warp_emu.h"
#include "y_check.h"

namespace {
namespace ev = weft::cuda::expand_vec;
using namespace weft::emu;
using weft::cuda::DType;
using weft::cuda::LoraArgs;

struct Slice {
  int off, len;
};
struct Segment {
  int rows, rank;  // rank 0: base model for this segment
};
struct Case {
  std::string name;
  DType d;
  int y_stride, max_rank;
  std::vector<Slice> slices;
  std::vector<Segment> segs;
  bool unaligned_b = false;
  bool compact = false;  // segments name their entries (seg_entries) among 3·segments + 2 table entries
};

bool run(const Case& c, bool early_y, std::mt19937& rng) {
  const std::string name = c.name + (early_y ? " [early y]" : "");
  const int E = static_cast<int>(c.segs.size()), S = static_cast<int>(c.slices.size());
  // Table entries: one per segment, or (compact) segment k at entry 3k + 1 of 3E + 2, the rest empty.
  const int ET = c.compact ? 3 * E + 2 : E;
  auto ent = [&](int k) { return c.compact ? 3 * k + 1 : k; };
  std::vector<int32_t> seg_entries(E);
  for (int k = 0; k < E; ++k) seg_entries[k] = ent(k);
  std::vector<int32_t> seg(E + 1, 0), offs(S), lens(S);
  for (int e = 0; e < E; ++e) seg[e + 1] = seg[e] + c.segs[e].rows;
  for (int s = 0; s < S; ++s) offs[s] = c.slices[s].off, lens[s] = c.slices[s].len;
  const int T = seg[E];
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<uint16_t> y0(static_cast<size_t>(T) * c.y_stride);
  for (auto& b : y0) b = to_bits(c.d, nd(rng));
  std::vector<float> h(static_cast<size_t>(S) * T * c.max_rank);
  for (float& v : h) v = nd(rng);
  std::vector<std::vector<uint16_t>> bs(S * ET);
  std::vector<const void*> ap(S * ET, nullptr), bp(S * ET, nullptr);
  std::vector<int32_t> ranks(S * ET, 0);
  std::vector<float> scales(S * ET, 0.0f);
  static const uint16_t kA = 0;  // expand never reads A; it only has to be non-null for a live entry
  for (int s = 0; s < S; ++s) {
    for (int e = 0; e < E; ++e) {
      const int i = s * ET + ent(e), r = c.segs[e].rank;
      if (r == 0) continue;
      bs[i].resize(static_cast<size_t>(lens[s]) * r + 8);  // new[] is 16-byte aligned: +1 element is 2 bytes off
      for (auto& b : bs[i]) b = to_bits(c.d, nd(rng));
      bp[i] = bs[i].data() + (c.unaligned_b ? 1 : 0);
      ap[i] = &kA;
      ranks[i] = r;
      scales[i] = 0.5f + static_cast<float>(e);
    }
  }
  std::vector<uint16_t> y = y0;
  LoraArgs a{};
  a.dtype = c.d;
  a.tokens = T;
  a.in = 16;
  a.x = y.data();  // not read by expand
  a.x_stride = 16;
  a.h = h.data();
  a.y = y.data();
  a.y_stride = c.y_stride;
  a.num_slices = S;
  a.out_offset = offs.data();
  a.out_len = lens.data();
  a.max_out_len = *std::max_element(lens.begin(), lens.end());
  a.num_entries = ET;
  a.a = ap.data();
  a.b = bp.data();
  a.rank = ranks.data();
  a.scale = scales.data();
  a.max_rank = c.max_rank;
  a.seg_starts = seg.data();
  if (c.compact) a.seg_entries = seg_entries.data(), a.num_segments = E;
  if (!ev::supports(a)) {
    std::printf("FAIL %s: not supported by the 16-byte expand\n", name.c_str());
    return false;
  }
  std::vector<float> hs(ev::smem_bytes(a) / sizeof(float));
  with_ops(c.d, [&](auto ops) {
    run_blocks(static_cast<int>(ev::col_blocks(a)), static_cast<int>(ev::row_tiles(a)), S,
               [&](const pm::BlockIndex& ix) {
                 if (early_y) ev::block<decltype(ops), true>(a, ix, hs.data());
                 else ev::block<decltype(ops), false>(a, ix, hs.data());
               });
  });

  // Reference in double.
  std::vector<double> ref(y0.size());
  std::vector<char> touched(y0.size(), 0);
  for (size_t i = 0; i < y0.size(); ++i) ref[i] = from_bits(c.d, y0[i]);
  for (int s = 0; s < S; ++s) {
    for (int e = 0; e < E; ++e) {
      const int i = s * ET + ent(e), r = ranks[i];
      if (r == 0) continue;
      const uint16_t* B = static_cast<const uint16_t*>(bp[i]);
      for (int t = seg[e]; t < seg[e + 1]; ++t) {
        for (int o = 0; o < lens[s]; ++o) {
          double d = 0;
          for (int k = 0; k < r; ++k)
            d += static_cast<double>(h[(static_cast<size_t>(s) * T + t) * c.max_rank + k]) * from_bits(c.d, B[static_cast<size_t>(o) * r + k]);
          const size_t at = static_cast<size_t>(t) * c.y_stride + offs[s] + o;
          ref[at] += scales[i] * d;
          touched[at] = 1;
        }
      }
    }
  }
  return check_y(name, c.d, y, y0, ref, touched);
}

}  // namespace

int main() {
  std::mt19937 rng(99);
  const DType bf16 = DType::kBF16, f16 = DType::kF16;
  const std::vector<Case> cases = {
      {"qkv-like slices at 0/64/88, widths 64/24/36 (ends mid-vector), ranks 16/8, a base segment", bf16, 136, 16,
       {{0, 64}, {64, 24}, {88, 36}}, {{9, 16}, {3, 0}, {12, 8}}},
      {"slice at offset 4 (no 16-byte access), rank 12, padded rows", f16, 72, 16, {{4, 60}}, {{10, 12}, {0, 8}, {5, 16}}},
      {"1100 outputs over two column blocks, rank 32", bf16, 1104, 32, {{0, 1100}}, {{17, 32}}},
      {"B 2 bytes off a 16-byte boundary", bf16, 64, 16, {{0, 64}}, {{6, 16}}, true},
      {"compact segments: 3 adapters at entries 1/4/7 of 11, 2 slices, ranks 16/8/32", bf16, 136, 32,
       {{0, 64}, {64, 72}}, {{9, 16}, {20, 8}, {5, 32}}, false, true},
  };
  int failed = 0;
  int runs = 0;
  for (const Case& c : cases)
    for (bool early_y : {false, true}) {  // WEFT_SGMV_EXPAND_EARLY_Y off and on
      failed += run(c, early_y, rng) ? 0 : 1;
      ++runs;
    }
  std::printf("%d cases, %d failed\n", runs, failed);
  return failed == 0 ? 0 : 1;
}
