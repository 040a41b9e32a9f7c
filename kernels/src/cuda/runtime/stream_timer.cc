#include "cuda/runtime/stream_timer.h"

#include <stdexcept>
#include <string>

namespace weft::cuda {

StreamTimer::StreamTimer() {
  try {
    WEFT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    WEFT_CUDA_CHECK(cudaEventCreate(&start_));
    WEFT_CUDA_CHECK(cudaEventCreate(&stop_));
  } catch (...) {
    release();
    throw;
  }
}

StreamTimer::~StreamTimer() { release(); }

void* StreamTimer::alloc(size_t bytes) {
  void* p = nullptr;
  WEFT_CUDA_CHECK(cudaMalloc(&p, bytes));
  allocations_.push_back(p);
  return p;
}

void StreamTimer::throw_no_time(const char* what) {
  throw std::runtime_error(std::string(what) + ": the timed work took no measurable time");
}

void StreamTimer::release() noexcept {
  if (stream_) cudaStreamSynchronize(stream_);
  for (void* p : allocations_) cudaFree(p);
  allocations_.clear();
  if (start_) cudaEventDestroy(start_);
  if (stop_) cudaEventDestroy(stop_);
  if (stream_) cudaStreamDestroy(stream_);
  start_ = stop_ = nullptr;
  stream_ = nullptr;
}

}  // namespace weft::cuda
