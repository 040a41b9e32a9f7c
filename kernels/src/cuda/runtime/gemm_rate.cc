// measure_gemm_rate: the GEMM throughput the prefill bound of DESIGN.md §9 divides by, measured through the same
// cuBLASLt path (GemmContext) the executor's base GEMMs take, so the bound is what this engine could reach.
#include <cuda_runtime_api.h>

#include <stdexcept>

#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/gemm.h"

namespace weft::cuda {

double measure_gemm_rate(int device, GemmType type, int64_t m, int64_t n, int64_t k, int iterations) {
  if (m <= 0 || n <= 0 || k <= 0 || iterations <= 0)
    throw std::invalid_argument("measure_gemm_rate: m, n, k and iterations must be > 0");
  device_info(device);  // existence + availability, with the reason when not
  DeviceScope scope(device);
  const size_t elem = type == GemmType::kF32 ? 4 : 2;
  void *x = nullptr, *w = nullptr, *y = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  auto release = [&] {
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    if (stream) cudaStreamDestroy(stream);
    if (x) cudaFree(x);
    if (w) cudaFree(w);
    if (y) cudaFree(y);
    start = stop = nullptr;
    stream = nullptr;
    x = w = y = nullptr;
  };
  try {
    GemmContext gemm;
    WEFT_CUDA_CHECK(cudaMalloc(&x, elem * m * k));
    WEFT_CUDA_CHECK(cudaMalloc(&w, elem * n * k));
    WEFT_CUDA_CHECK(cudaMalloc(&y, elem * m * n));
    // 0x3c bytes: small finite values in every dtype (bf16 0x3c3c ≈ 0.0115, fp16 ≈ 1.06, fp32 ≈ 0.0115).
    WEFT_CUDA_CHECK(cudaMemset(x, 0x3c, elem * m * k));
    WEFT_CUDA_CHECK(cudaMemset(w, 0x3c, elem * n * k));
    WEFT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    WEFT_CUDA_CHECK(cudaEventCreate(&start));
    WEFT_CUDA_CHECK(cudaEventCreate(&stop));
    for (int i = 0; i < 3; i++) gemm.run(type, stream, x, w, y, m, n, k, nullptr);  // plan + clocks up
    WEFT_CUDA_CHECK(cudaEventRecord(start, stream));
    for (int i = 0; i < iterations; i++) gemm.run(type, stream, x, w, y, m, n, k, nullptr);
    WEFT_CUDA_CHECK(cudaEventRecord(stop, stream));
    WEFT_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    WEFT_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    WEFT_CUDA_CHECK(cudaStreamSynchronize(stream));
    release();
    if (ms <= 0) throw std::runtime_error("measure_gemm_rate: the GEMMs took no measurable time");
    return 2.0 * static_cast<double>(m) * n * k * iterations / (ms * 1e-3);
  } catch (...) {
    release();
    throw;
  }
}

}  // namespace weft::cuda
