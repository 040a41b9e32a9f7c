// Decode-sized tensor-core GEMM: the CUDA side of skinny_gemm_body.h (why and how are described there). Needs
// sm_80+ (mma.sync m16n8k16 with bf16); elsewhere, or for shapes it does not take, cudaErrorNotSupported and the
// caller keeps cuBLASLt.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels.h"
#include "mma_device_ops.cuh"
#include "skinny_gemm_body.h"

namespace weft::cuda {
namespace {
namespace sk = skinny;
using detail::DeviceOps;

template <class T, int NT>
__global__ void __launch_bounds__(sk::kThreads) skinny_gemm_kernel(SkinnyGemmArgs a) {
  __shared__ float red[sk::kWarps * sk::kRows * NT * 8];
  const prefill_mma::BlockIndex ix{static_cast<int>(threadIdx.x), static_cast<int>(blockIdx.x), 0, 0};
  sk::block<DeviceOps<T>, NT>(a, ix, red);
}

template <class T> cudaError_t launch(const SkinnyGemmArgs& a, cudaStream_t stream) {
  const int64_t blocks = sk::blocks(a);
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(blocks));
  if (a.m <= 8) skinny_gemm_kernel<T, 1><<<grid, sk::kThreads, 0, stream>>>(a);
  else if (a.m <= 16) skinny_gemm_kernel<T, 2><<<grid, sk::kThreads, 0, stream>>>(a);
  else skinny_gemm_kernel<T, 4><<<grid, sk::kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

bool skinny_gemm_supported(const SkinnyGemmArgs& a) {
  return sk::supports(a) && a.y_stride >= a.n && detail::device_major() >= 8;
}

cudaError_t skinny_gemm(const SkinnyGemmArgs& a, cudaStream_t stream) {
  if (!skinny_gemm_supported(a)) return cudaErrorNotSupported;
  return a.dtype == DType::kBF16 ? launch<__nv_bfloat16>(a, stream) : launch<__half>(a, stream);
}

}  // namespace weft::cuda
