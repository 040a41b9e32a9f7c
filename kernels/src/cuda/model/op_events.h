// The CUDA backend's op profile (model/op_profile.h): mark(op) records an event on the step's stream where `op`
// starts; finish() records the end, waits for it and adds each op's time (event to next event) to the totals.
// The gaps the GPU waits for the host to launch the next kernel count to the op before them; in a prefill the
// host runs ahead and they vanish, in an eager decode step they show up as they would without graphs.
#pragma once
#include <cuda_runtime_api.h>

#include <vector>

#include "model/op_profile.h"

namespace weft::cuda {

class EventOpClock {
 public:
  EventOpClock() = default;
  ~EventOpClock();
  EventOpClock(const EventOpClock&) = delete;
  EventOpClock& operator=(const EventOpClock&) = delete;

  void set(bool on);
  bool on() const { return on_; }
  void begin_step() { ops_.clear(); }  // drops the marks of a step that failed before finish()
  void mark(const char* op, cudaStream_t stream);  // not during graph capture: callers profile eager steps only
  void finish(cudaStream_t stream);                // after the step's last work is enqueued
  std::vector<OpTime> take() { return totals_.take(); }

 private:
  cudaEvent_t event(size_t i);  // the i-th event of the pool, created on first use

  bool on_ = false;
  std::vector<cudaEvent_t> pool_;
  std::vector<const char*> ops_;  // ops_[i] started at pool_[i]
  OpTotals totals_;
};

}  // namespace weft::cuda
