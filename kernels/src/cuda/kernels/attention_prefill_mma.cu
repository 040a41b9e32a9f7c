// Tensor-core prefill attention: the CUDA side of prefill_mma_body.h (the algorithm and fragment layouts are
// described there). Needs sm_80+ (mma.sync m16n8k16 with bf16); older devices and other shapes get
// cudaErrorNotSupported and the caller uses the CUDA-core kernel in attention.cu.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels.h"
#include "mma_device_ops.cuh"
#include "prefill_mma_body.h"

namespace weft::cuda {
namespace {
namespace pm = prefill_mma;
using detail::DeviceOps;

template <class T, int D>
__global__ void __launch_bounds__(pm::kThreads) prefill_mma_kernel(PagedAttention a) {
  extern __shared__ uint4 smem_words[];
  const pm::BlockIndex ix{static_cast<int>(threadIdx.x), static_cast<int>(blockIdx.x), static_cast<int>(blockIdx.y),
                          static_cast<int>(blockIdx.z)};
  pm::block<DeviceOps<T>, D>(a, ix, reinterpret_cast<uint16_t*>(smem_words));
}

template <class T, int D> cudaError_t launch(const PagedAttention& a, cudaStream_t stream) {
  const size_t smem = pm::smem_bytes(D);
  if (smem > 48 * 1024) {
    const cudaError_t err =
        cudaFuncSetAttribute(prefill_mma_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  const int64_t tiles = (static_cast<int64_t>(a.max_query_len) * (a.heads / a.kv_heads) + pm::kRows - 1) / pm::kRows;
  if (tiles > 0x7fffffff) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(tiles), a.num_seqs, a.kv_heads);
  prefill_mma_kernel<T, D><<<grid, pm::kThreads, smem, stream>>>(a);
  return cudaGetLastError();
}

template <class T> cudaError_t launch_dim(const PagedAttention& a, cudaStream_t stream) {
  switch (a.head_dim) {
    case 16: return launch<T, 16>(a, stream);
    case 32: return launch<T, 32>(a, stream);
    case 48: return launch<T, 48>(a, stream);
    case 64: return launch<T, 64>(a, stream);
    case 80: return launch<T, 80>(a, stream);
    case 96: return launch<T, 96>(a, stream);
    case 112: return launch<T, 112>(a, stream);
    case 128: return launch<T, 128>(a, stream);
    default: return cudaErrorNotSupported;
  }
}

}  // namespace

bool paged_attention_prefill_mma_supported(const PagedAttention& a) { return pm::supports(a) && detail::device_major() >= 8; }

cudaError_t paged_attention_prefill_mma(const PagedAttention& a, cudaStream_t stream) {
  if (!paged_attention_valid(a) || a.max_query_len < 0) return cudaErrorInvalidValue;
  if (!paged_attention_prefill_mma_supported(a)) return cudaErrorNotSupported;
  if (a.num_tokens == 0 || a.max_query_len == 0) return cudaSuccess;
  return a.dtype == DType::kBF16 ? launch_dim<__nv_bfloat16>(a, stream) : launch_dim<__half>(a, stream);
}

}  // namespace weft::cuda
