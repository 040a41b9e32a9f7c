// The error metric and tolerances of the kernel tests, host C++ only: shared by the CUDA kernel tests
// (harness.h) and the host warp emulator (test/emulated/), so both hold kernels to the same bar.
#pragma once
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "cuda/kernels/kernels.h"

namespace weft::testing {
using weft::cuda::DType;

// max_i |got_i - ref_i| / max(|ref_i|, rms(ref)): relative where values are of ordinary size, relative to the
// tensor's scale where a value is near zero (a cancellation makes a tiny reference meaningless to divide by).
inline double scaled_err(const std::vector<float>& got, const std::vector<float>& ref) {
  if (got.size() != ref.size()) throw std::runtime_error("size mismatch");
  double ss = 0;
  for (float r : ref) ss += static_cast<double>(r) * r;
  const double rms = ref.empty() ? 1.0 : std::sqrt(ss / ref.size()) + 1e-30;
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - ref[i]);
    const double e = std::isnan(got[i]) != std::isnan(ref[i]) ? INFINITY : d / std::max<double>(std::fabs(ref[i]), rms);
    if (!(e <= worst)) worst = e;
  }
  return worst;
}

// Tolerances, in the scaled metric of scaled_err. fp32: 1e-4 (the brief's bound; fp32 sums in another order
// differ by ~1e-6). 16-bit outputs: inputs are identical on both sides and the math is fp32, so the error is
// the one rounding of the output to storage: ≤ 2^-9 ≈ 2e-3 relative for bf16 (8-bit mantissa), ≤ 2^-12 for
// fp16. Ops that round an intermediate (an in-place add into a bf16 y, q·k of bf16 inputs feeding exp) can
// reach 2-3 such roundings, hence 1e-2 for bf16 and 2e-3 for fp16.
inline double tol_for(DType d) { return d == DType::kF32 ? 1e-4 : d == DType::kF16 ? 2e-3 : 1e-2; }

}  // namespace weft::testing
