// Runs the decode-sized tensor-core GEMM body (kernels/src/cuda/kernels/skinny_gemm_body.h, the code
// skinny_gemm.cu's kernel instantiates) under the host warp emulator and checks y = x·Wᵀ (+ bias) against a
// double-precision sum rounded to the 16-bit type: M = 1..32 (1, 2 and 4 n-tiles, partial ones), N not a multiple
// of 16, K of 1..many 32-column chunks (fewer chunks than warps, chunks not a multiple of the unroll), bias and
// none, a y row stride wider than N, bf16 and fp16. Batch invariance: the first rows of an M = 32 product must
// equal, bit for bit, the same rows computed with M = 3 and M = 11. Outputs outside [M, N] keep a sentinel.
// Build + run: test/unit/tensor-core-emulated.test.ts. Exit status 0 when all cases pass.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cuda/kernels/skinny_gemm_body.h"
#include "warp_emu.h"

namespace {
namespace sk = weft::cuda::skinny;
using namespace weft::emu;
using weft::cuda::DType;
using weft::cuda::SkinnyGemmArgs;

struct Case {
  std::string name;
  DType d;
  int m, n, k;
  bool bias;
  int y_pad = 0;  // y row stride = n + y_pad
};

template <class Ops> void run_grid(const SkinnyGemmArgs& a) {
  std::vector<float> red(sk::smem_bytes() / sizeof(float));
  run_blocks(static_cast<int>(sk::blocks(a)), 1, 1, [&](const pm::BlockIndex& ix) {
    if (a.m <= 8) sk::block<Ops, 1>(a, ix, red.data());
    else if (a.m <= 16) sk::block<Ops, 2>(a, ix, red.data());
    else sk::block<Ops, 4>(a, ix, red.data());
  });
}

// y for the first m rows of x (16-bit storage), through the emulated kernel.
std::vector<uint16_t> gemm(const Case& c, int m, const std::vector<uint16_t>& x, const std::vector<uint16_t>& w,
                           const std::vector<uint16_t>& b) {
  const int64_t ys = c.n + c.y_pad;
  std::vector<uint16_t> y(static_cast<size_t>(m) * ys + 8, to_bits(c.d, -777.0f));  // sentinel
  SkinnyGemmArgs a{c.d, m, c.n, c.k, x.data(), w.data(), c.bias ? b.data() : nullptr, y.data(), ys};
  if (!sk::supports(a)) {
    std::printf("FAIL %s: shape not supported\n", c.name.c_str());
    std::exit(1);
  }
  with_ops(c.d, [&](auto ops) { run_grid<decltype(ops)>(a); });
  return y;
}

bool run(const Case& c, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto draw = [&](size_t n) {
    std::vector<uint16_t> v(n);
    for (auto& e : v) e = to_bits(c.d, nd(rng));
    return v;
  };
  // 16-byte aligned storage, as the model's buffers are.
  const auto x = draw(static_cast<size_t>(c.m) * c.k), w = draw(static_cast<size_t>(c.n) * c.k), b = draw(c.n);
  const std::vector<uint16_t> y = gemm(c, c.m, x, w, b);
  const int64_t ys = c.n + c.y_pad;
  double worst = 0.0;
  bool kept = true;
  for (int i = 0; i < c.m; ++i) {
    for (int64_t col = 0; col < ys; ++col) {
      const uint16_t got = y[i * ys + col];
      if (col >= c.n) {
        kept = kept && got == to_bits(c.d, -777.0f);
        continue;
      }
      double ref = c.bias ? from_bits(c.d, b[col]) : 0.0;
      for (int kk = 0; kk < c.k; ++kk)
        ref += static_cast<double>(from_bits(c.d, x[i * c.k + kk])) * from_bits(c.d, w[col * c.k + kk]);
      // fp32 accumulation of K products, then one rounding to 16 bits: within 1.5 units of the last place.
      const double ulp = std::fabs(ref) * (c.d == DType::kBF16 ? 0x1p-8 : 0x1p-11) + 1e-3;
      worst = std::max(worst, std::fabs(from_bits(c.d, got) - ref) / ulp);
    }
  }
  bool invariant = true;
  for (int sub : {3, 11}) {
    if (sub >= c.m) continue;
    const std::vector<uint16_t> ys_sub = gemm(c, sub, x, w, b);
    for (int64_t e = 0; e < static_cast<int64_t>(sub) * ys; ++e) invariant = invariant && ys_sub[e] == y[e];
  }
  const bool ok = worst <= 1.5 && kept && invariant;
  std::printf("%s %s (worst %.2f ulp%s%s)\n", ok ? "ok  " : "FAIL", c.name.c_str(), worst,
              kept ? "" : ", wrote past N", invariant ? "" : ", rows differ with M");
  std::fflush(stdout);
  return ok;
}

}  // namespace

int main() {
  std::mt19937 rng(4321);
  const DType bf16 = DType::kBF16, f16 = DType::kF16;
  const std::vector<Case> cases = {
      {"M 1, N 64, K 256 bf16 (2 chunks per warp)", bf16, 1, 64, 256, false},
      {"M 5, N 40 (partial row tile), K 96 (3 chunks: a warp without work), bias f16", f16, 5, 40, 96, true, 8},
      {"M 16, N 33, K 544 (17 chunks: unroll tail) bf16 + bias", bf16, 16, 33, 544, true},
      {"M 32, N 16, K 1024 f16", f16, 32, 16, 1024, false},
      {"M 29, N 48, K 352 bf16, y stride N + 24", bf16, 29, 48, 352, true, 24},
  };
  int failed = 0;
  for (const Case& c : cases) failed += run(c, rng) ? 0 : 1;
  std::printf("%zu cases, %d failed\n", cases.size(), failed);
  return failed == 0 ? 0 : 1;
}
