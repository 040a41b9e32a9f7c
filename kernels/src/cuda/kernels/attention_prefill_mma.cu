// Tensor-core prefill attention: the CUDA side of prefill_mma_body.h and of its pipelined variant
// prefill_pipelined_body.h (the algorithm and fragment layouts are described there). Needs sm_80+ (mma.sync
// m16n8k16 with bf16, cp.async); older devices and other shapes get cudaErrorNotSupported and the caller uses the CUDA-core kernel in attention.cu.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels.h"
#include "mma_device_ops.cuh"
#include "prefill_mma_body.h"
#include "prefill_pipelined_body.h"

namespace weft::cuda {
namespace {
namespace pm = prefill_mma;
namespace pp = prefill_pipelined;
using detail::DeviceOps;

template <class T, int D>
__global__ void __launch_bounds__(pm::kThreads) prefill_mma_kernel(PagedAttention a) {
  extern __shared__ uint4 smem_words[];
  const pm::BlockIndex ix{static_cast<int>(threadIdx.x), static_cast<int>(blockIdx.x), static_cast<int>(blockIdx.y),
                          static_cast<int>(blockIdx.z)};
  pm::block<DeviceOps<T>, D>(a, ix, reinterpret_cast<uint16_t*>(smem_words));
}

// The pipelined kernel's grid is (kv head, sequence, row tile) with the row tiles numbered backwards: blocks
// start in x-fastest order, so the last row tiles of every sequence — the ones that see the most keys under the
// causal mask — start first and the short ones fill the tail.
template <class T, int D>
__global__ void __launch_bounds__(pp::kThreads) prefill_pipelined_kernel(PagedAttention a) {
  extern __shared__ uint4 smem_words[];
  const pm::BlockIndex ix{static_cast<int>(threadIdx.x), static_cast<int>(gridDim.z - 1 - blockIdx.z),
                          static_cast<int>(blockIdx.y), static_cast<int>(blockIdx.x)};
  pp::block<DeviceOps<T>, D>(a, ix, reinterpret_cast<uint16_t*>(smem_words));
}

template <class T, int D> cudaError_t launch(const PagedAttention& a, bool pipelined, cudaStream_t stream) {
  const size_t smem = pipelined ? pp::smem_bytes(D) : pm::smem_bytes(D);
  const void* kernel = pipelined ? reinterpret_cast<const void*>(prefill_pipelined_kernel<T, D>)
                                 : reinterpret_cast<const void*>(prefill_mma_kernel<T, D>);
  if (smem > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  const int64_t tiles = (static_cast<int64_t>(a.max_query_len) * (a.heads / a.kv_heads) + pm::kRows - 1) / pm::kRows;
  if (pipelined) {
    if (tiles > 65535) return cudaErrorInvalidValue;  // grid z; 4M query rows per sequence and kv head
    const dim3 grid(a.kv_heads, a.num_seqs, static_cast<unsigned>(tiles));
    prefill_pipelined_kernel<T, D><<<grid, pp::kThreads, smem, stream>>>(a);
  } else {
    if (tiles > 0x7fffffff) return cudaErrorInvalidValue;
    const dim3 grid(static_cast<unsigned>(tiles), a.num_seqs, a.kv_heads);
    prefill_mma_kernel<T, D><<<grid, pm::kThreads, smem, stream>>>(a);
  }
  return cudaGetLastError();
}

template <class T> cudaError_t launch_dim(const PagedAttention& a, bool pipelined, cudaStream_t stream) {
  switch (a.head_dim) {
    case 16: return launch<T, 16>(a, pipelined, stream);
    case 32: return launch<T, 32>(a, pipelined, stream);
    case 48: return launch<T, 48>(a, pipelined, stream);
    case 64: return launch<T, 64>(a, pipelined, stream);
    case 80: return launch<T, 80>(a, pipelined, stream);
    case 96: return launch<T, 96>(a, pipelined, stream);
    case 112: return launch<T, 112>(a, pipelined, stream);
    case 128: return launch<T, 128>(a, pipelined, stream);
    default: return cudaErrorNotSupported;
  }
}

cudaError_t launch_any(const PagedAttention& a, bool pipelined, cudaStream_t stream) {
  if (!paged_attention_valid(a) || a.max_query_len < 0) return cudaErrorInvalidValue;
  if (!paged_attention_prefill_mma_supported(a)) return cudaErrorNotSupported;
  if (a.num_tokens == 0 || a.max_query_len == 0) return cudaSuccess;
  return a.dtype == DType::kBF16 ? launch_dim<__nv_bfloat16>(a, pipelined, stream)
                                 : launch_dim<__half>(a, pipelined, stream);
}

}  // namespace

bool paged_attention_prefill_mma_supported(const PagedAttention& a) { return pm::supports(a) && detail::device_major() >= 8; }

cudaError_t paged_attention_prefill_mma(const PagedAttention& a, cudaStream_t stream) { return launch_any(a, false, stream); }

cudaError_t paged_attention_prefill_pipelined(const PagedAttention& a, cudaStream_t stream) {
  return launch_any(a, true, stream);
}

}  // namespace weft::cuda
