// measure_gemm_rate: the GEMM throughput the prefill bound of DESIGN.md §9 divides by, measured through the same
// cuBLASLt path (GemmContext) the executor's base GEMMs take, so the bound is what this engine could reach.
#include <cuda_runtime_api.h>

#include <stdexcept>

#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/gemm.h"
#include "cuda/runtime/stream_timer.h"

namespace weft::cuda {

double measure_gemm_rate(int device, GemmType type, int64_t m, int64_t n, int64_t k, int iterations) {
  if (m <= 0 || n <= 0 || k <= 0 || iterations <= 0)
    throw std::invalid_argument("measure_gemm_rate: m, n, k and iterations must be > 0");
  device_info(device);  // existence + availability, with the reason when not
  DeviceScope scope(device);
  const size_t elem = type == GemmType::kF32 ? 4 : 2;
  GemmContext gemm;
  StreamTimer timer;
  void* x = timer.alloc(elem * m * k);
  void* w = timer.alloc(elem * n * k);
  void* y = timer.alloc(elem * m * n);
  // 0x3c bytes: small finite values in every dtype (bf16 0x3c3c ≈ 0.0115, fp16 ≈ 1.06, fp32 ≈ 0.0115).
  WEFT_CUDA_CHECK(cudaMemset(x, 0x3c, elem * m * k));
  WEFT_CUDA_CHECK(cudaMemset(w, 0x3c, elem * n * k));
  const auto run = [&] { gemm.run(type, timer.stream(), x, w, y, m, n, k, nullptr); };
  for (int i = 0; i < 3; i++) run();  // plan + clocks up
  const float ms = timer.time(iterations, run, "measure_gemm_rate");
  return 2.0 * static_cast<double>(m) * n * k * iterations / (ms * 1e-3);
}

}  // namespace weft::cuda
