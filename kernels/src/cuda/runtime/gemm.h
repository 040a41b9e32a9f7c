// Base-weight GEMMs on the GPU through cuBLASLt: y[M,N] = x[M,K] · W[N,K]ᵀ (+ bias[N]), all row-major, the
// layout of the CPU backend (kernels/src/cpu/ops.h) and of Hugging Face Linear weights. Inputs and outputs are fp32,
// fp16 or bf16; accumulation is always fp32 (CUBLAS_COMPUTE_32F: no TF32, no fp16 accumulation).
//
// The column-major trick: cuBLASLt is column-major, and a row-major [R,C] matrix is the column-major [C,R] one.
// So y (row-major [M,N]) is yᵀ column-major [N,M], and yᵀ = W · xᵀ, where W is W's buffer read column-major
// ([K,N]) and transposed, and xᵀ is x's buffer read column-major ([K,M]) as is. The bias epilogue adds a vector
// over the rows of that column-major [N,M] result: one value per output feature, as wanted.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

#include "cuda/runtime/dl_loader.h"

namespace weft::cuda {

enum class GemmType { kF32, kF16, kBF16 };

// A cuBLASLt handle, its workspace and the plans (descriptors + an algorithm: the heuristic's first, or with
// WEFT_GEMM_AUTOTUNE=1 for decode-sized shapes the fastest of its first 8, timed once) cached per shape, for the
// device current when it was made. Calls may come from any stream: the workspace is handed from one stream to the
// next through an event, so work on two streams never shares it at the same time. Calls are serialized by a mutex.
// Constructing one throws (with the reason) when there is no usable GPU or no cuBLASLt.
class GemmContext {
 public:
  static constexpr size_t kDefaultWorkspaceBytes = size_t(32) << 20;  // what cuBLAS asks for on Hopper
  explicit GemmContext(size_t workspace_bytes = kDefaultWorkspaceBytes);
  ~GemmContext();
  GemmContext(const GemmContext&) = delete;
  GemmContext& operator=(const GemmContext&) = delete;

  // Enqueues y = x·Wᵀ (+bias) on `stream`; pointers are device memory of `type`. M = 0 is a no-op.
  void run(GemmType type, cudaStream_t stream, const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k,
           const void* bias);

  int device() const { return device_; }
  size_t cached_plans() const;

 private:
  struct Key {
    GemmType type;
    int64_t m, n, k;
    bool bias;
    uint32_t align_x, align_w, align_y, align_bias;  // pointer alignment classes the algorithm was chosen for
    bool operator<(const Key& o) const {
      return std::tie(type, m, n, k, bias, align_x, align_w, align_y, align_bias) <
             std::tie(o.type, o.m, o.n, o.k, o.bias, o.align_x, o.align_w, o.align_y, o.align_bias);
    }
  };
  struct Plan {
    lt::MatmulDesc desc = nullptr;
    lt::Layout a = nullptr, b = nullptr, d = nullptr;
    lt::MatmulAlgo algo{};
  };

  struct Operands {  // the call a plan is made for: decode-sized shapes are timed on it (gemm.cc, autotune)
    cudaStream_t stream;
    const void *x, *w;
    void* y;
    const void* bias;
  };
  Plan& plan_for(const Key& key, const Operands& op);
  lt::MatmulAlgo fastest(const Plan& p, const lt::HeuristicResult* results, int found, const Operands& op);
  void destroy_plan(Plan& p) noexcept;
  void hand_workspace_to(cudaStream_t stream);

  const CublasLtApi* api_ = nullptr;
  lt::Handle handle_ = nullptr;
  int device_ = 0;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  cudaEvent_t workspace_free_ = nullptr;
  cudaStream_t last_stream_ = nullptr;
  bool used_ = false;
  std::map<Key, Plan> plans_;
  mutable std::mutex mu_;
};

void gemm_fp32(GemmContext& ctx, cudaStream_t stream, const float* x, const float* w, float* y, int64_t m, int64_t n,
               int64_t k, const float* bias = nullptr);
void gemm_fp16(GemmContext& ctx, cudaStream_t stream, const __half* x, const __half* w, __half* y, int64_t m,
               int64_t n, int64_t k, const __half* bias = nullptr);
void gemm_bf16(GemmContext& ctx, cudaStream_t stream, const __nv_bfloat16* x, const __nv_bfloat16* w,
               __nv_bfloat16* y, int64_t m, int64_t n, int64_t k, const __nv_bfloat16* bias = nullptr);

// Measured y = x·Wᵀ rate of `device` in FLOP/s (2·m·n·k per GEMM) through GemmContext, best-case inputs
// (constant values), after three warm-up calls; gemm_rate.cc. Throws on failure.
double measure_gemm_rate(int device, GemmType type, int64_t m, int64_t n, int64_t k, int iterations = 20);

}  // namespace weft::cuda
