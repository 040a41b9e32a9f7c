// Programmatic dependent launch (PDL, sm_90+) between a step's own small kernels: a kernel launched with it may
// start while the kernel before it on the stream is still finishing, so its launch and block scheduling overlap
// that kernel's tail instead of following it. A decode step runs ~14 kernels per layer, most of them a few µs
// (an H100 op profile, 2026-11-23: batch 1 ran 7.6 ms per Llama-2-7B step against a 4.5 ms bandwidth bound),
// so the gaps between kernels are a visible share of it.
//
// The contract, for every kernel launched by launch_chained: its first statement is wait_then_release() — it
// waits until the kernel before it has completed and its writes are visible (griddepcontrol.wait), and only then
// lets the next kernel launch (griddepcontrol.launch_dependents), so at most one kernel is early, and no kernel
// reads or writes anything before its predecessor is done. Without PDL both instructions are no-ops.
// WEFT_PDL_STEP=1 turns it on (opt-in until measured on a GPU); otherwise launch_chained is an ordinary launch.
#pragma once
#include <cuda_runtime.h>

#include <utility>

#include "common.cuh"
#include "cuda/runtime/env.h"

namespace weft::cuda::detail {

// The two PDL instructions; no-ops before sm_90 and in a grid launched without PDL / without PDL dependents.
// Lets the next kernel on the stream (launched with PDL) start now.
__device__ __forceinline__ void release_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
// Waits until the kernel before this one has completed and its writes are visible.
__device__ __forceinline__ void wait_for_predecessor() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void wait_then_release() {
  wait_for_predecessor();
  release_dependents();
}

inline bool step_pdl_enabled() {
  static const bool on = env_equals("WEFT_PDL_STEP", "1");
  return on && device_major() >= 9;
}

// kernel<<<grid, block, smem, stream>>>(args...), with programmatic stream serialization when `pdl`. Arguments
// are passed as the kernel declares them (no default arguments).
template <class... Params, class... Args>
cudaError_t launch_maybe_pdl(bool pdl, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                             cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1] = {};
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, static_cast<Params>(args)...);
}

// A step's small kernel, with PDL when step_pdl_enabled(). The kernel must begin with wait_then_release().
template <class... Params, class... Args>
cudaError_t launch_chained(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                           Args&&... args) {
  return launch_maybe_pdl(step_pdl_enabled(), kernel, grid, block, smem, stream, std::forward<Args>(args)...);
}

}  // namespace weft::cuda::detail
