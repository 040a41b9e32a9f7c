// The device side of the Ops interface of prefill_mma_body.h (barrier, shuffle, mma.sync m16n8k16, 16-bit
// packing) for the tensor-core kernels: attention_prefill_mma.cu, lora.cu. mma.sync needs sm_80+; the
// launchers check the device before starting a kernel that uses it.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "common.cuh"

namespace weft::cuda::detail {

// T: __nv_bfloat16 or __half. The 16-bit conversions are common.cuh's to_f / from_f on the raw bits.
template <class T> struct DeviceOps {
  static_assert(sizeof(T) == 2, "DeviceOps is for 16-bit storage");
  static constexpr bool kSplitP = std::is_same_v<T, __nv_bfloat16>;
  static __device__ __forceinline__ void sync() { __syncthreads(); }
  static __device__ __forceinline__ float shfl_xor(float v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
  static __device__ __forceinline__ float exp2(float x) { return exp2f(x); }
  static __device__ __forceinline__ void copy16(uint16_t* dst, const uint16_t* src) {
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
  }
  static __device__ __forceinline__ void zero16(uint16_t* dst) { *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0); }
  // 16 bytes read once (weights streamed past): evict-first, so they do not push reused data out of the caches.
  static __device__ __forceinline__ void stream16(uint16_t* dst, const uint16_t* src) {
    *reinterpret_cast<uint4*>(dst) = __ldcs(reinterpret_cast<const uint4*>(src));
  }
  static __device__ __forceinline__ float to_f(uint16_t bits) {
    T v;
    __builtin_memcpy(&v, &bits, 2);
    return detail::to_f(v);
  }
  static __device__ __forceinline__ uint16_t from_f(float v) {
    const T t = detail::from_f<T>(v);
    uint16_t bits;
    __builtin_memcpy(&bits, &t, 2);
    return bits;
  }
  static __device__ __forceinline__ float round(float v) { return detail::to_f(detail::from_f<T>(v)); }
  // Two rounded values in one register, the lower column in the low 16 bits.
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    return static_cast<uint32_t>(from_f(lo)) | (static_cast<uint32_t>(from_f(hi)) << 16);
  }
  static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);

  // cp.async (sm_80+): a 16-byte global -> shared copy that bypasses registers and L1 (.cg); groups of them are
  // committed and waited for. The "memory" clobbers keep the compiler from moving shared-memory accesses across.
  static __device__ __forceinline__ void cp_async16(uint16_t* dst, const uint16_t* src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(src) : "memory");
#else
    __trap();
#endif
  }
  static __device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
  }
  template <int n> static __device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(n) : "memory");
#endif
  }
  // ldmatrix.x4 (sm_75+): four 8x8 16-bit matrices from shared memory, `row` = this lane's row address (row
  // lane % 8 of matrix lane / 8); kTrans delivers them transposed. Layouts: prefill_pipelined_body.h.
  template <bool kTrans> static __device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const uint16_t* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
    if constexpr (kTrans)
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                   : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                   : "r"(s)
                   : "memory");
    else
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                   : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                   : "r"(s)
                   : "memory");
#else
    r[0] = r[1] = r[2] = r[3] = 0;
    __trap();
#endif
  }
};

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


}  // namespace weft::cuda::detail
