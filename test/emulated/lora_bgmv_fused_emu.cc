// Runs the fused decode LoRA body (kernels/src/cuda/kernels/lora_bgmv_fused_body.h, the code of
// lora_bgmv_fused.cu's kernel) under the host warp emulator, with a thread-block cluster emulated as its
// kCluster blocks running at once (cluster_emu.h: a barrier over all their threads, and each block's shared
// memory reachable by the others): y += scale·(x·Aᵀ)·Bᵀ per token against double precision. Cases: qkv-like
// slices at offsets that do and do not allow 16-byte access, widths that end mid-vector, `in` not a multiple of
// 8 and not divisible by the cluster, ranks 8/12/16/64 (prefetched B and not), base rows, an entry without
// weights, A and B 2 bytes off alignment, bf16 and fp16. Entries outside the adapters' rows and slices must keep
// their value bit for bit. Build + run: test/unit/tensor-core-emulated.test.ts.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cluster_emu.h"
#include "cuda/kernels/lora_bgmv_fused_body.h"
#include "y_check.h"

namespace {
namespace bf = weft::cuda::bgmv_fused;
using namespace weft::emu;
using weft::cuda::DType;
using weft::cuda::LoraArgs;

struct Slice {
  int off, len;
};
struct Case {
  std::string name;
  DType d;
  int tokens, in, y_stride, max_rank;
  std::vector<Slice> slices;
  std::vector<int> entry_rank;   // rank per entry (0: an entry without weights)
  std::vector<int> token_entry;  // per token, -1: base row
  bool unaligned = false;        // A and B 2 bytes off a 16-byte boundary
};

bool run(const Case& c, std::mt19937& rng) {
  const int E = static_cast<int>(c.entry_rank.size()), S = static_cast<int>(c.slices.size()), T = c.tokens;
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<uint16_t> x(static_cast<size_t>(T) * c.in);
  for (auto& v : x) v = to_bits(c.d, nd(rng));
  std::vector<uint16_t> y0(static_cast<size_t>(T) * c.y_stride);
  for (auto& v : y0) v = to_bits(c.d, nd(rng));
  std::vector<int32_t> offs(S), lens(S);
  for (int s = 0; s < S; ++s) offs[s] = c.slices[s].off, lens[s] = c.slices[s].len;
  std::vector<std::vector<uint16_t>> as(S * E), bs(S * E);
  std::vector<const void*> ap(S * E, nullptr), bp(S * E, nullptr);
  std::vector<int32_t> ranks(S * E, 0);
  std::vector<float> scales(S * E, 0.0f);
  const int skew = c.unaligned ? 1 : 0;
  for (int s = 0; s < S; ++s) {
    for (int e = 0; e < E; ++e) {
      const int i = s * E + e, r = c.entry_rank[e];
      if (r == 0) continue;
      as[i].resize(static_cast<size_t>(r) * c.in + 8);
      for (auto& v : as[i]) v = to_bits(c.d, nd(rng) / std::sqrt(static_cast<float>(c.in)));
      bs[i].resize(static_cast<size_t>(lens[s]) * r + 8);
      for (auto& v : bs[i]) v = to_bits(c.d, nd(rng));
      ap[i] = as[i].data() + skew;
      bp[i] = bs[i].data() + skew;
      ranks[i] = r;
      scales[i] = 0.5f + 0.25f * static_cast<float>(e);
    }
  }
  std::vector<int32_t> te(c.token_entry.begin(), c.token_entry.end());
  std::vector<float> h(static_cast<size_t>(S) * T * c.max_rank, 0.0f);  // the fused kernel never touches it
  std::vector<uint16_t> y = y0;
  LoraArgs a{};
  a.dtype = c.d;
  a.tokens = T;
  a.in = c.in;
  a.x = x.data();
  a.x_stride = c.in;
  a.h = h.data();
  a.y = y.data();
  a.y_stride = c.y_stride;
  a.num_slices = S;
  a.out_offset = offs.data();
  a.out_len = lens.data();
  a.max_out_len = *std::max_element(lens.begin(), lens.end());
  a.num_entries = E;
  a.a = ap.data();
  a.b = bp.data();
  a.rank = ranks.data();
  a.scale = scales.data();
  a.max_rank = c.max_rank;
  a.token_entry = te.data();
  if (!bf::supports(a)) {
    std::printf("FAIL %s: not supported by the fused kernel\n", c.name.c_str());
    return false;
  }
  with_cluster_ops(c.d, [&](auto ops) {
    run_clusters(bf::kCluster, bf::kCluster, T, S, sizeof(bf::Shared), [&](const pm::BlockIndex& ix, void* smem) {
      bf::block<decltype(ops)>(a, ix, *static_cast<bf::Shared*>(smem));
    });
  });

  // Reference in double: h = x·Aᵀ, y += scale·h·Bᵀ.
  std::vector<double> ref(y0.size());
  std::vector<char> touched(y0.size(), 0);
  for (size_t i = 0; i < y0.size(); ++i) ref[i] = from_bits(c.d, y0[i]);
  for (int t = 0; t < T; ++t) {
    const int e = te[t];
    if (e < 0) continue;
    for (int s = 0; s < S; ++s) {
      const int i = s * E + e, r = ranks[i];
      if (r == 0) continue;
      const uint16_t* A = static_cast<const uint16_t*>(ap[i]);
      const uint16_t* B = static_cast<const uint16_t*>(bp[i]);
      std::vector<double> hk(r, 0.0);
      for (int k = 0; k < r; ++k)
        for (int q = 0; q < c.in; ++q)
          hk[k] += static_cast<double>(from_bits(c.d, A[static_cast<size_t>(k) * c.in + q])) * from_bits(c.d, x[static_cast<size_t>(t) * c.in + q]);
      for (int o = 0; o < lens[s]; ++o) {
        double d = 0;
        for (int k = 0; k < r; ++k) d += hk[k] * from_bits(c.d, B[static_cast<size_t>(o) * r + k]);
        const size_t at = static_cast<size_t>(t) * c.y_stride + offs[s] + o;
        ref[at] += scales[i] * d;
        touched[at] = 1;
      }
    }
  }
  return check_y(c.name, c.d, y, y0, ref, touched);
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  const DType bf16 = DType::kBF16, f16 = DType::kF16;
  const std::vector<Case> cases = {
      {"qkv-like: slices 0/64/88, widths 64/24/36, ranks 16/8 (B prefetched), a base row", bf16, 5, 256, 128, 16,
       {{0, 64}, {64, 24}, {88, 36}}, {16, 8}, {0, 1, -1, 1, 0}},
      {"in 1000 (scalar x/A), rank 12 (scalar B), slice at offset 4 (scalar y)", f16, 3, 1000, 72, 16,
       {{4, 60}}, {12, 16}, {1, 0, 1}},
      {"rank 64, 1100 outputs over the cluster's quarters, in 520 not divisible by the cluster", bf16, 2, 520, 1104, 64,
       {{0, 1100}}, {64}, {0, 0}},
      {"an entry without weights and A/B 2 bytes off alignment", bf16, 4, 264, 48, 16,
       {{0, 40}, {40, 8}}, {0, 16}, {0, 1, 1, -1}, true},
  };
  int failed = 0;
  for (const Case& c : cases) failed += run(c, rng) ? 0 : 1;
  std::printf("%zu cases, %d failed\n", cases.size(), failed);
  return failed == 0 ? 0 : 1;
}
