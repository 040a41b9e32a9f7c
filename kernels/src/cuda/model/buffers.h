// Device and pinned-host allocations owned by the CUDA model executor, and the host float32 -> device dtype
// upload path for weights and LoRA parts. Everything throws std::runtime_error (check.h) on failure.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/kernels/kernels.h"

namespace weft::cuda {

inline size_t dtype_bytes(DType dt) { return dt == DType::kF32 ? 4 : 2; }
inline size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// cudaMalloc'ed bytes; freed on destruction or reset. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { allocate(bytes); }
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void allocate(size_t bytes);  // frees what was there first; 0 bytes = empty
  // Reallocates (contents lost) when smaller than `bytes`; true when the address changed.
  bool ensure(size_t bytes);
  void reset() noexcept;
  void* get() const { return p_; }
  template <class T> T* as() const { return static_cast<T*>(p_); }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// cudaMallocHost'ed (page-locked) bytes: the staging area of uploads and of host collectives.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { reset(); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  bool ensure(size_t bytes);  // as DeviceBuffer::ensure
  void reset() noexcept;
  template <class T> T* as() const { return static_cast<T*>(p_); }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// Host float32 -> device `dt`: float32 is copied as is; fp16/bf16 go through a bounded float32 staging buffer
// and the convert kernel (round to nearest even), chunk by chunk. Synchronises `stream` before returning, so
// the caller may free `src` right away.
class Uploader {
 public:
  static constexpr int64_t kChunkElements = int64_t(8) << 20;  // 32 MiB of float32 staging at most
  void upload(const float* src, int64_t n, void* dst, DType dt, cudaStream_t stream);
  void release() { staging_.reset(); }

 private:
  DeviceBuffer staging_;
};

}  // namespace weft::cuda
