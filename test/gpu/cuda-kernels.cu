// Standalone test of the CUDA kernels (kernels/src/cuda/kernels) against the CPU backend (kernels/src/cpu),
// the oracle. One line per case, then "N passed, M failed"; exit status 1 on any failure, 2 without a GPU.
// Usage: cuda-kernels [--no-bench]. Built and run by test/gpu/run.sh.
#include <cstring>

#include "harness.h"

namespace gt {
Report& report() {
  static Report r;
  return r;
}
}  // namespace gt

int main(int argc, char** argv) {
  bool bench = true;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--no-bench") == 0) bench = false;
  int devices = 0;
  const cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess || devices == 0) {
    std::printf("no CUDA device (%s)\n", err != cudaSuccess ? cudaGetErrorString(err) : "none found");
    return 2;
  }
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d, %.0f GiB)\n", prop.name, prop.major, prop.minor,
              prop.totalGlobalMem / 1073741824.0);
  std::mt19937 rng(20240611);
  gt::run_basic_tests(rng);
  gt::run_attention_tests(rng);
  gt::run_lora_tests(rng);
  gt::run_lora_folded_tests(rng);
  gt::run_dora_tests(rng);
  gt::run_lora_embed_tests(rng);
  gt::run_sampling_tests(rng);
  gt::run_llama4_tests(rng);
  if (bench) gt::run_benchmarks(rng);
  const gt::Report& r = gt::report();
  std::printf("%d passed, %d failed\n", r.passed, r.failed);
  return r.failed ? 1 : 0;
}
