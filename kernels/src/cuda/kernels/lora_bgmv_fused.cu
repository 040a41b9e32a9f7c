// The fused decode LoRA kernel (lora_bgmv_fused_body.h): one thread-block cluster per (token, slice), launched
// with a cluster-dimension attribute (sm_90+), and lora_bgmv, which a step calls for its BGMV rows: the fused
// kernel when WEFT_LORA_FUSED=1 and the shape allows, else lora.cu's shrink then expand.
#include "cluster_device_ops.cuh"
#include "common.cuh"
#include "lora_bgmv_fused_body.h"

namespace weft::cuda {
namespace {
namespace bf = bgmv_fused;
using detail::ClusterOps;

template <class T>
__global__ void __launch_bounds__(bf::kThreads) bgmv_fused_kernel(LoraArgs a) {
  __shared__ bf::Shared sh;
  const prefill_mma::BlockIndex ix{static_cast<int>(threadIdx.x), static_cast<int>(blockIdx.x),
                                   static_cast<int>(blockIdx.y), static_cast<int>(blockIdx.z)};
  bf::block<ClusterOps<T>>(a, ix, sh);
}

bool fused_enabled() {
  static const bool v = detail::env_equals("WEFT_LORA_FUSED", "1");
  return v;
}

}  // namespace

cudaError_t lora_bgmv_fused(const LoraArgs& a, cudaStream_t stream) {
  if (a.tokens < 0 || !a.x || !a.y || !a.a || !a.b || !a.rank || !a.scale || !a.out_offset || !a.out_len ||
      a.num_slices <= 0 || a.num_slices > 65535 || a.num_entries < 0 || a.in <= 0)
    return cudaErrorInvalidValue;
  if (!bf::supports(a) || detail::device_major() < 9) return cudaErrorNotSupported;
  if (a.tokens == 0 || a.num_entries == 0 || a.max_out_len == 0) return cudaSuccess;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(bf::kCluster, static_cast<unsigned>(a.tokens), static_cast<unsigned>(a.num_slices));
  cfg.blockDim = dim3(bf::kThreads);
  cfg.stream = stream;
  cudaLaunchAttribute cluster[1] = {};
  cluster[0].id = cudaLaunchAttributeClusterDimension;
  cluster[0].val.clusterDim.x = bf::kCluster;
  cluster[0].val.clusterDim.y = 1;
  cluster[0].val.clusterDim.z = 1;
  cfg.attrs = cluster;
  cfg.numAttrs = 1;
  if (a.dtype == DType::kBF16) return cudaLaunchKernelEx(&cfg, bgmv_fused_kernel<__nv_bfloat16>, a);
  return cudaLaunchKernelEx(&cfg, bgmv_fused_kernel<__half>, a);
}

cudaError_t lora_bgmv(const LoraArgs& a, cudaStream_t stream) {
  if (fused_enabled() && bf::supports(a) && detail::device_major() >= 9) return lora_bgmv_fused(a, stream);
  const cudaError_t err = lora_bgmv_shrink(a, stream);
  return err != cudaSuccess ? err : lora_bgmv_expand(a, stream);
}

}  // namespace weft::cuda
