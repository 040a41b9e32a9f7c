// DeviceOps (mma_device_ops.cuh) plus a thread-block cluster's barrier and distributed shared memory, for the
// kernel bodies that reduce over a cluster (lora_bgmv_fused_body.h, lora_shrink_mma_body.h): cluster_sync()
// and peer(p, rank), the same shared address in block `rank` of the cluster. Clusters need sm_90+; the
// launchers start a cluster kernel only there (below, both trap).
#pragma once
#include <cooperative_groups.h>

#include "mma_device_ops.cuh"

namespace weft::cuda::detail {

template <class T> struct ClusterOps : DeviceOps<T> {
  static __device__ __forceinline__ void cluster_sync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    cooperative_groups::this_cluster().sync();
#else
    __trap();
#endif
  }
  template <class U> static __device__ __forceinline__ U* peer(U* p, int rank) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    return cooperative_groups::this_cluster().map_shared_rank(p, static_cast<unsigned>(rank));
#else
    __trap();
    return p;
#endif
  }
};

}  // namespace weft::cuda::detail
