#include "cuda/runtime/gemm.h"

#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>

#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/env.h"

namespace weft::cuda {

namespace {

// Beyond this many shapes the cache starts over: prefill lengths vary, and descriptors are cheap to rebuild.
constexpr size_t kMaxPlans = 1024;

// Opt-in (WEFT_GEMM_AUTOTUNE=1): decode-sized GEMMs (M <= kTuneMaxRows rows) only stream the weights, and
// cuBLASLt's first heuristic choice for them can leave SMs idle or skip split-K, so a plan may instead time the
// heuristic's first kTuneCandidates algorithms once, on the call's own operands, and keep the fastest. Off by
// default: on an H100 it gained ~1 % of a Llama-2-7B decode step (12.79 -> 12.60 ms at batch 32 x 32 adapters),
// and a choice by timing can differ between two starts of a server when two algorithms run about as fast —
// different rounding, so a seeded request could give other tokens after a restart. The heuristic's choice is
// the same for the same shape, GPU and library.
constexpr int kTuneCandidates = 8;
constexpr int64_t kTuneMaxRows = 128;
constexpr int kTuneRuns = 3;

bool autotune_enabled() {
  static const bool on = detail::env_equals("WEFT_GEMM_AUTOTUNE", "1");
  return on;
}

cudaDataType_t data_type(GemmType t) {
  switch (t) {
    case GemmType::kF32: return CUDA_R_32F;
    case GemmType::kF16: return CUDA_R_16F;
    case GemmType::kBF16: return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

const char* type_name(GemmType t) {
  switch (t) {
    case GemmType::kF32: return "fp32";
    case GemmType::kF16: return "fp16";
    case GemmType::kBF16: return "bf16";
  }
  return "?";
}

// Largest power of two <= 16 dividing the address: the alignment cuBLASLt may assume for it.
uint32_t alignment(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 16;
  while (a > 1 && (v % a) != 0) a /= 2;
  return a;
}

void lt_check(lt::Status s, const char* call, const std::string& context) {
  if (s != lt::kSuccess)
    throw std::runtime_error(std::string("cuBLASLt ") + call + " failed: " + cublas_status_text(s) + " (" + context +
                             ")");
}

std::string shape_text(const char* type, int64_t m, int64_t n, int64_t k, bool bias) {
  return std::string(type) + " GEMM M=" + std::to_string(m) + " N=" + std::to_string(n) + " K=" + std::to_string(k) +
         (bias ? " +bias" : "");
}

}  // namespace

GemmContext::GemmContext(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  std::string why;
  if (!cuda_available(&why)) throw std::runtime_error("cuBLASLt GEMM needs a GPU: " + why);
  api_ = &cublaslt();
  WEFT_CUDA_CHECK(cudaGetDevice(&device_));
  lt_check(api_->create(&handle_), "cublasLtCreate", "device " + std::to_string(device_));
  try {
    if (workspace_bytes_ > 0) WEFT_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
    WEFT_CUDA_CHECK(cudaEventCreateWithFlags(&workspace_free_, cudaEventDisableTiming));
  } catch (...) {
    if (workspace_) cudaFree(workspace_);
    api_->destroy(handle_);
    throw;
  }
}

GemmContext::~GemmContext() {
  for (auto& [key, plan] : plans_) destroy_plan(plan);
  if (workspace_free_) cudaEventDestroy(workspace_free_);
  if (workspace_) cudaFree(workspace_);  // synchronizes with work still using it
  if (handle_) api_->destroy(handle_);
}

size_t GemmContext::cached_plans() const {
  std::lock_guard<std::mutex> lock(mu_);
  return plans_.size();
}

void GemmContext::destroy_plan(Plan& p) noexcept {
  if (p.desc) api_->desc_destroy(p.desc);
  if (p.a) api_->layout_destroy(p.a);
  if (p.b) api_->layout_destroy(p.b);
  if (p.d) api_->layout_destroy(p.d);
  p = Plan{};
}

GemmContext::Plan& GemmContext::plan_for(const Key& key, const Operands& op) {
  const void* bias = op.bias;
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  if (plans_.size() >= kMaxPlans) {
    for (auto& [k, plan] : plans_) destroy_plan(plan);
    plans_.clear();
  }
  const std::string what = shape_text(type_name(key.type), key.m, key.n, key.k, key.bias);
  const cudaDataType_t dt = data_type(key.type);
  Plan p;
  lt::Preference pref = nullptr;
  try {
    lt_check(api_->desc_create(&p.desc, lt::kComputeF32, CUDA_R_32F), "cublasLtMatmulDescCreate", what);
    const int32_t trans_a = lt::kOpT, trans_b = lt::kOpN;
    lt_check(api_->desc_set(p.desc, lt::kDescTransA, &trans_a, sizeof trans_a), "set TRANSA", what);
    lt_check(api_->desc_set(p.desc, lt::kDescTransB, &trans_b, sizeof trans_b), "set TRANSB", what);
    const uint32_t epilogue = key.bias ? lt::kEpilogueBias : lt::kEpilogueDefault;
    lt_check(api_->desc_set(p.desc, lt::kDescEpilogue, &epilogue, sizeof epilogue), "set EPILOGUE", what);
    // The heuristic reads the bias pointer's value to learn its alignment.
    if (key.bias) lt_check(api_->desc_set(p.desc, lt::kDescBiasPointer, &bias, sizeof bias), "set BIAS_POINTER", what);
    const auto K = static_cast<uint64_t>(key.k), N = static_cast<uint64_t>(key.n), M = static_cast<uint64_t>(key.m);
    lt_check(api_->layout_create(&p.a, dt, K, N, key.k), "cublasLtMatrixLayoutCreate(W)", what);
    lt_check(api_->layout_create(&p.b, dt, K, M, key.k), "cublasLtMatrixLayoutCreate(x)", what);
    lt_check(api_->layout_create(&p.d, dt, N, M, key.n), "cublasLtMatrixLayoutCreate(y)", what);

    lt_check(api_->pref_create(&pref), "cublasLtMatmulPreferenceCreate", what);
    const uint64_t ws = workspace_bytes_;
    lt_check(api_->pref_set(pref, lt::kPrefMaxWorkspaceBytes, &ws, sizeof ws), "set MAX_WORKSPACE_BYTES", what);
    lt_check(api_->pref_set(pref, lt::kPrefMinAlignmentA, &key.align_w, sizeof key.align_w), "set ALIGNMENT_A", what);
    lt_check(api_->pref_set(pref, lt::kPrefMinAlignmentB, &key.align_x, sizeof key.align_x), "set ALIGNMENT_B", what);
    lt_check(api_->pref_set(pref, lt::kPrefMinAlignmentC, &key.align_y, sizeof key.align_y), "set ALIGNMENT_C", what);
    lt_check(api_->pref_set(pref, lt::kPrefMinAlignmentD, &key.align_y, sizeof key.align_y), "set ALIGNMENT_D", what);

    lt::HeuristicResult results[kTuneCandidates] = {};
    int found = 0;
    const int wanted = key.m <= kTuneMaxRows && autotune_enabled() ? kTuneCandidates : 1;
    lt_check(api_->heuristic(handle_, p.desc, p.a, p.b, p.d, p.d, pref, wanted, results, &found),
             "cublasLtMatmulAlgoGetHeuristic", what);
    if (found < 1 || results[0].state != lt::kSuccess)
      throw std::runtime_error("cuBLASLt has no algorithm for " + what + " within a " +
                               std::to_string(workspace_bytes_) + "-byte workspace");
    p.algo = results[0].algo;
    if (found > 1) p.algo = fastest(p, results, found, op);
    api_->pref_destroy(pref);
  } catch (...) {
    if (pref) api_->pref_destroy(pref);
    destroy_plan(p);
    throw;
  }
  return plans_.emplace(key, p).first->second;
}

lt::MatmulAlgo GemmContext::fastest(const Plan& p, const lt::HeuristicResult* results, int found, const Operands& op) {
  // Never time inside a graph capture (nothing runs, and a synchronize would break the capture): the executor's
  // eager warm-up run makes every decode plan before its graph is captured.
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(op.stream, &capturing) != cudaSuccess || capturing != cudaStreamCaptureStatusNone)
    return results[0].algo;
  hand_workspace_to(op.stream);
  cudaEvent_t start = nullptr, stop = nullptr;
  WEFT_CUDA_CHECK(cudaEventCreate(&start));
  if (cudaEventCreate(&stop) != cudaSuccess) {
    cudaEventDestroy(start);
    throw std::runtime_error("cudaEventCreate failed while timing GEMM algorithms");
  }
  const float alpha = 1.0f, beta = 0.0f;
  // y = x·Wᵀ (+bias) is the same result whichever algorithm writes it, so timing on the call's operands is safe.
  const auto launch = [&](const lt::MatmulAlgo& algo) {
    return api_->matmul(handle_, p.desc, &alpha, op.w, p.a, op.x, p.b, &beta, op.y, p.d, op.y, p.d, &algo, workspace_,
                        workspace_bytes_, op.stream);
  };
  float best_ms = std::numeric_limits<float>::infinity();
  int best = 0;
  for (int i = 0; i < found; ++i) {
    if (results[i].state != lt::kSuccess || results[i].workspaceSize > workspace_bytes_) continue;
    if (launch(results[i].algo) != lt::kSuccess) continue;  // warm-up; an algorithm that refuses is skipped
    bool ok = cudaEventRecord(start, op.stream) == cudaSuccess;
    for (int r = 0; r < kTuneRuns && ok; ++r) ok = launch(results[i].algo) == lt::kSuccess;
    ok = ok && cudaEventRecord(stop, op.stream) == cudaSuccess && cudaEventSynchronize(stop) == cudaSuccess;
    float ms = 0;
    if (ok && cudaEventElapsedTime(&ms, start, stop) == cudaSuccess && ms < best_ms) {
      best_ms = ms;
      best = i;
    }
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  WEFT_CUDA_CHECK(cudaGetLastError());  // a kernel fault while timing is the caller's error, not a silent choice
  return results[best].algo;
}

void GemmContext::hand_workspace_to(cudaStream_t stream) {
  if (used_ && stream != last_stream_) {
    WEFT_CUDA_CHECK(cudaEventRecord(workspace_free_, last_stream_));
    WEFT_CUDA_CHECK(cudaStreamWaitEvent(stream, workspace_free_, 0));
  }
  last_stream_ = stream;
  used_ = true;
}

void GemmContext::run(GemmType type, cudaStream_t stream, const void* x, const void* w, void* y, int64_t m,
                      int64_t n, int64_t k, const void* bias) {
  if (m < 0 || n <= 0 || k <= 0)
    throw std::invalid_argument("GEMM shape must have M >= 0, N > 0, K > 0; got " +
                                shape_text(type_name(type), m, n, k, bias != nullptr));
  if (m == 0) return;
  if (!x || !w || !y) throw std::invalid_argument("GEMM x, W and y must be device pointers, not null");
  std::lock_guard<std::mutex> lock(mu_);
  int current = 0;
  WEFT_CUDA_CHECK(cudaGetDevice(&current));
  if (current != device_)
    throw std::runtime_error("GemmContext of device " + std::to_string(device_) + " used while device " +
                             std::to_string(current) + " is current");
  const Key key{type, m, n, k, bias != nullptr, alignment(x), alignment(w), alignment(y), bias ? alignment(bias) : 0u};
  Plan& p = plan_for(key, Operands{stream, x, w, y, bias});
  const std::string what = shape_text(type_name(type), m, n, k, bias != nullptr);
  if (bias) lt_check(api_->desc_set(p.desc, lt::kDescBiasPointer, &bias, sizeof bias), "set BIAS_POINTER", what);
  hand_workspace_to(stream);
  const float alpha = 1.0f, beta = 0.0f;
  lt_check(api_->matmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, y, p.d, y, p.d, &p.algo, workspace_,
                        workspace_bytes_, stream),
           "cublasLtMatmul", what);
}

void gemm_fp32(GemmContext& ctx, cudaStream_t stream, const float* x, const float* w, float* y, int64_t m, int64_t n,
               int64_t k, const float* bias) {
  ctx.run(GemmType::kF32, stream, x, w, y, m, n, k, bias);
}

void gemm_fp16(GemmContext& ctx, cudaStream_t stream, const __half* x, const __half* w, __half* y, int64_t m,
               int64_t n, int64_t k, const __half* bias) {
  ctx.run(GemmType::kF16, stream, x, w, y, m, n, k, bias);
}

void gemm_bf16(GemmContext& ctx, cudaStream_t stream, const __nv_bfloat16* x, const __nv_bfloat16* w,
               __nv_bfloat16* y, int64_t m, int64_t n, int64_t k, const __nv_bfloat16* bias) {
  ctx.run(GemmType::kBF16, stream, x, w, y, m, n, k, bias);
}

}  // namespace weft::cuda
