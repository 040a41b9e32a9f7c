// What every device measurement (copy bandwidth, GEMM rate, LoRA kernel time) needs: its own stream, two events
// around the timed work, and device memory that is freed with them. Everything is released on every path, after
// the stream has drained (nothing may still run on memory being freed). Make one inside a DeviceScope.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

#include "cuda/runtime/check.h"

namespace weft::cuda {

class StreamTimer {
 public:
  StreamTimer();  // throws std::runtime_error naming the failed call
  ~StreamTimer();
  StreamTimer(const StreamTimer&) = delete;
  StreamTimer& operator=(const StreamTimer&) = delete;

  cudaStream_t stream() const { return stream_; }
  // cudaMalloc'ed bytes, freed by the destructor.
  void* alloc(size_t bytes);
  // Milliseconds of `iterations` calls of body() on stream(), between two events (after they finished, so a
  // kernel that failed while running is reported here). Throws if they took no measurable time.
  template <class F> float time(int iterations, F&& body, const char* what) {
    WEFT_CUDA_CHECK(cudaEventRecord(start_, stream_));
    for (int i = 0; i < iterations; ++i) body();
    WEFT_CUDA_CHECK(cudaEventRecord(stop_, stream_));
    WEFT_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    WEFT_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    if (ms <= 0) throw_no_time(what);
    return ms;
  }

 private:
  [[noreturn]] static void throw_no_time(const char* what);
  void release() noexcept;

  cudaStream_t stream_ = nullptr;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
  std::vector<void*> allocations_;
};

}  // namespace weft::cuda
