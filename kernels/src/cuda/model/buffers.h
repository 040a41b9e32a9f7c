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

// Device bytes allocated in stream order (cudaMallocAsync from the device's default memory pool) and freed in
// stream order on the stream last named by free_on (cudaFreeAsync): freeing never waits for the device, so an
// adapter evicted between steps does not wait for another adapter's upload on a copy stream, nor that upload
// for a step. Devices without memory pools fall back to cudaMalloc / cudaFree. Move-only.
class StreamBuffer {
 public:
  StreamBuffer() = default;
  StreamBuffer(size_t bytes, cudaStream_t stream);  // the bytes are usable once `stream` reaches this point
  ~StreamBuffer() { reset(); }
  StreamBuffer(StreamBuffer&& o) noexcept { *this = std::move(o); }
  StreamBuffer& operator=(StreamBuffer&& o) noexcept;
  StreamBuffer(const StreamBuffer&) = delete;
  StreamBuffer& operator=(const StreamBuffer&) = delete;

  // The stream the free is ordered on: after the last work that uses the bytes.
  void free_on(cudaStream_t stream) { free_stream_ = stream; }
  void reset() noexcept;
  void* get() const { return p_; }
  template <class T> T* as() const { return static_cast<T*>(p_); }

 private:
  void* p_ = nullptr;
  cudaStream_t free_stream_ = nullptr;
  bool pooled_ = false;
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
// and the convert kernel (round to nearest even), chunk by chunk. upload synchronises `stream` before
// returning, so the caller may free `src` right away; enqueue does not: `src` must live until the caller
// synchronises `stream` (many uploads, one synchronisation).
class Uploader {
 public:
  static constexpr int64_t kChunkElements = int64_t(8) << 20;  // 32 MiB of float32 staging at most
  void upload(const float* src, int64_t n, void* dst, DType dt, cudaStream_t stream);
  void enqueue(const float* src, int64_t n, void* dst, DType dt, cudaStream_t stream);
  // Sizes the staging for uploads of up to n elements now, so that a later enqueue never reallocates it
  // (a cudaFree waits for the whole device).
  void reserve(int64_t n);
  void release() { staging_.reset(); }

 private:
  DeviceBuffer staging_;
};

}  // namespace weft::cuda
