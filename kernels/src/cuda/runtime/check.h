// Error checks for CUDA runtime calls. A failure becomes a std::runtime_error naming the call, where it was made
// and CUDA's own words; the N-API layer turns it into a JS Error. Never exit() or abort(): the process is a server.
#pragma once
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace weft::cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + call + " failed: " +
                           cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

}  // namespace weft::cuda

// WEFT_CUDA_CHECK(cudaMalloc(&p, n)); — throws on anything but cudaSuccess.
#define WEFT_CUDA_CHECK(call)                                                      \
  do {                                                                             \
    const cudaError_t weft_cuda_err_ = (call);                                     \
    if (weft_cuda_err_ != cudaSuccess)                                             \
      ::weft::cuda::throw_cuda_error(weft_cuda_err_, #call, __FILE__, __LINE__);   \
  } while (0)

// After a kernel launch (<<<...>>> returns nothing): reports a bad launch configuration right away.
// Errors raised while the kernel runs surface at the next synchronizing call, which is checked too.
#define WEFT_CUDA_CHECK_LAUNCH(what)                                               \
  do {                                                                             \
    const cudaError_t weft_cuda_err_ = cudaGetLastError();                         \
    if (weft_cuda_err_ != cudaSuccess)                                             \
      ::weft::cuda::throw_cuda_error(weft_cuda_err_, what, __FILE__, __LINE__);    \
  } while (0)
