#include "cuda/model/op_events.h"

#include "cuda/runtime/check.h"

namespace weft::cuda {

EventOpClock::~EventOpClock() {
  for (cudaEvent_t e : pool_) cudaEventDestroy(e);
}

void EventOpClock::set(bool on) {
  on_ = on;
  ops_.clear();
}

cudaEvent_t EventOpClock::event(size_t i) {
  while (pool_.size() <= i) {
    cudaEvent_t e = nullptr;
    WEFT_CUDA_CHECK(cudaEventCreate(&e));  // timing on (the default)
    pool_.push_back(e);
  }
  return pool_[i];
}

void EventOpClock::mark(const char* op, cudaStream_t stream) {
  if (!on_) return;
  WEFT_CUDA_CHECK(cudaEventRecord(event(ops_.size()), stream));
  ops_.push_back(op);
}

void EventOpClock::finish(cudaStream_t stream) {
  if (!on_ || ops_.empty()) return;
  const size_t n = ops_.size();
  cudaEvent_t end = event(n);
  WEFT_CUDA_CHECK(cudaEventRecord(end, stream));
  WEFT_CUDA_CHECK(cudaEventSynchronize(end));
  for (size_t i = 0; i < n; ++i) {
    float ms = 0;
    WEFT_CUDA_CHECK(cudaEventElapsedTime(&ms, pool_[i], pool_[i + 1]));
    totals_.add(ops_[i], ms);
  }
  ops_.clear();
}

}  // namespace weft::cuda
