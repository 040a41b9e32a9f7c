// Test harness of the CUDA kernel tests: device buffers with dtype conversion, random inputs rounded to the
// kernel's storage dtype (so the CPU oracle sees exactly the values the GPU sees), comparison and reporting.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cpu/ops.h"
#include "cuda/kernels/kernels.h"
#include "tolerance.h"

namespace gt {
using weft::cuda::DType;
using weft::testing::scaled_err;
using weft::testing::tol_for;

inline void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
#define CK(x) ::gt::check_cuda((x), #x)

struct Report {
  int passed = 0, failed = 0;
  void record(const std::string& name, bool ok, const std::string& detail) {
    std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.empty() ? "" : "  ", detail.c_str());
    std::fflush(stdout);
    (ok ? passed : failed)++;
  }
};
Report& report();  // cuda-kernels.cu

// Runs one case; a thrown error (a CUDA failure, a size mismatch) fails it instead of ending the program.
template <class F> void guard(const std::string& name, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    report().record(name, false, std::string("error: ") + e.what());
  }
}

inline const char* dname(DType d) { return d == DType::kF32 ? "f32" : d == DType::kF16 ? "f16" : "bf16"; }
inline size_t dsize(DType d) { return d == DType::kF32 ? 4 : 2; }


inline float round_to(DType d, float v) {
  if (d == DType::kBF16) return __bfloat162float(__float2bfloat16_rn(v));
  if (d == DType::kF16) return __half2float(__float2half_rn(v));
  return v;
}
inline void quantize(std::vector<float>& v, DType d) {
  for (float& x : v) x = round_to(d, x);
}
inline std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.0f, DType d = DType::kF32) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = round_to(d, nd(rng));
  return v;
}

class DevBuf {
 public:
  DevBuf() = default;
  explicit DevBuf(size_t bytes) : bytes_(bytes) {
    CK(cudaMalloc(&p_, bytes ? bytes : 16));
    CK(cudaMemset(p_, 0, bytes ? bytes : 16));
  }
  DevBuf(DevBuf&& o) noexcept : p_(std::exchange(o.p_, nullptr)), bytes_(o.bytes_) {}
  DevBuf& operator=(DevBuf&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  DevBuf(const DevBuf&) = delete;
  ~DevBuf() {
    if (p_) cudaFree(p_);
  }
  void* get() const { return p_; }
  template <class T> T* as() const { return static_cast<T*>(p_); }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// Host floats → device buffer of dtype d (values are rounded; quantize first to keep host and device equal).
inline DevBuf upload(const std::vector<float>& v, DType d) {
  DevBuf b(v.size() * dsize(d));
  std::vector<unsigned char> raw(v.size() * dsize(d));
  for (size_t i = 0; i < v.size(); ++i) {
    if (d == DType::kF32) std::memcpy(&raw[i * 4], &v[i], 4);
    else if (d == DType::kBF16) {
      const __nv_bfloat16 h = __float2bfloat16_rn(v[i]);
      std::memcpy(&raw[i * 2], &h, 2);
    } else {
      const __half h = __float2half_rn(v[i]);
      std::memcpy(&raw[i * 2], &h, 2);
    }
  }
  if (!raw.empty()) CK(cudaMemcpy(b.get(), raw.data(), raw.size(), cudaMemcpyHostToDevice));
  return b;
}
template <class T> DevBuf upload_vec(const std::vector<T>& v) {
  DevBuf b(v.size() * sizeof(T));
  if (!v.empty()) CK(cudaMemcpy(b.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return b;
}
inline std::vector<float> download(const void* p, size_t n, DType d) {
  std::vector<unsigned char> raw(n * dsize(d));
  CK(cudaDeviceSynchronize());
  if (n) CK(cudaMemcpy(raw.data(), p, raw.size(), cudaMemcpyDeviceToHost));
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    if (d == DType::kF32) std::memcpy(&v[i], &raw[i * 4], 4);
    else if (d == DType::kBF16) {
      __nv_bfloat16 h;
      std::memcpy(&h, &raw[i * 2], 2);
      v[i] = __bfloat162float(h);
    } else {
      __half h;
      std::memcpy(&h, &raw[i * 2], 2);
      v[i] = __half2float(h);
    }
  }
  return v;
}
template <class T> std::vector<T> download_vec(const void* p, size_t n) {
  std::vector<T> v(n);
  CK(cudaDeviceSynchronize());
  if (n) CK(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

inline void expect_close(const std::string& name, const std::vector<float>& got, const std::vector<float>& ref,
                         double tol) {
  const double e = scaled_err(got, ref);
  char buf[96];
  std::snprintf(buf, sizeof buf, "(err %.3g, tol %.3g)", e, tol);
  report().record(name, e <= tol, buf);
}
inline void expect(const std::string& name, bool ok, const std::string& detail = "") {
  report().record(name, ok, detail);
}

// Per-suite entry points.
void run_basic_tests(std::mt19937& rng);
void run_attention_tests(std::mt19937& rng);
void run_lora_tests(std::mt19937& rng);
void run_lora_folded_tests(std::mt19937& rng);
void run_dora_tests(std::mt19937& rng);
void run_lora_embed_tests(std::mt19937& rng);
void run_sampling_tests(std::mt19937& rng);
void run_llama4_tests(std::mt19937& rng);
void run_benchmarks(std::mt19937& rng);

}  // namespace gt
