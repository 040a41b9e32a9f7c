// Tensor-core prefill attention: the CUDA side of prefill_mma_body.h (the algorithm and fragment layouts are
// described there). Needs sm_80+ (mma.sync m16n8k16 with bf16); older devices and other shapes get
// cudaErrorNotSupported and the caller uses the CUDA-core kernel in attention.cu.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <type_traits>

#include "kernels.h"
#include "prefill_mma_body.h"

namespace weft::cuda {
namespace {
namespace pm = prefill_mma;

template <class T> struct DeviceOps {
  static constexpr bool kSplitP = std::is_same_v<T, __nv_bfloat16>;
  static __device__ __forceinline__ void sync() { __syncthreads(); }
  static __device__ __forceinline__ float shfl_xor(float v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
  static __device__ __forceinline__ float exp2(float x) { return exp2f(x); }
  static __device__ __forceinline__ void copy16(uint16_t* dst, const uint16_t* src) {
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
  }
  static __device__ __forceinline__ void zero16(uint16_t* dst) { *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0); }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi);
  static __device__ __forceinline__ float round(float v);
  static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);
};

template <> __device__ __forceinline__ uint32_t DeviceOps<__nv_bfloat16>::pack(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low 16 bits) = lo
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <> __device__ __forceinline__ uint32_t DeviceOps<__half>::pack(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <> __device__ __forceinline__ float DeviceOps<__nv_bfloat16>::round(float v) {
  return __bfloat162float(__float2bfloat16_rn(v));
}
template <> __device__ __forceinline__ float DeviceOps<__half>::round(float v) {
  return __half2float(__float2half_rn(v));
}
template <>
__device__ __forceinline__ void DeviceOps<__nv_bfloat16>::mma(float (&c)[4], const uint32_t (&a)[4],
                                                              const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();  // the launcher never starts this kernel below sm_80
#endif
}
template <>
__device__ __forceinline__ void DeviceOps<__half>::mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();
#endif
}

template <class T, int D>
__global__ void __launch_bounds__(pm::kThreads) prefill_mma_kernel(PagedAttention a) {
  extern __shared__ uint4 smem_words[];
  const pm::BlockIndex ix{static_cast<int>(threadIdx.x), static_cast<int>(blockIdx.x), static_cast<int>(blockIdx.y),
                          static_cast<int>(blockIdx.z)};
  pm::block<DeviceOps<T>, D>(a, ix, reinterpret_cast<uint16_t*>(smem_words));
}

// Compute capability major of the current device, asked once per device (the launcher runs every layer).
int device_major() {
  static int major[64] = {};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) return 0;
  if (major[dev] == 0 && cudaDeviceGetAttribute(&major[dev], cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
    major[dev] = 0;
  return major[dev];
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

bool paged_attention_prefill_mma_supported(const PagedAttention& a) { return pm::supports(a) && device_major() >= 8; }

cudaError_t paged_attention_prefill_mma(const PagedAttention& a, cudaStream_t stream) {
  if (!paged_attention_valid(a) || a.max_query_len < 0) return cudaErrorInvalidValue;
  if (!paged_attention_prefill_mma_supported(a)) return cudaErrorNotSupported;
  if (a.num_tokens == 0 || a.max_query_len == 0) return cudaSuccess;
  return a.dtype == DType::kBF16 ? launch_dim<__nv_bfloat16>(a, stream) : launch_dim<__half>(a, stream);
}

}  // namespace weft::cuda
