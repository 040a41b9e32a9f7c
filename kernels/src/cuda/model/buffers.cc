#include "cuda/model/buffers.h"

#include <algorithm>
#include <string>

#include "cuda/runtime/check.h"

namespace weft::cuda {

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    p_ = o.p_;
    bytes_ = o.bytes_;
    o.p_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::allocate(size_t bytes) {
  reset();
  if (bytes == 0) return;
  const cudaError_t err = cudaMalloc(&p_, bytes);
  if (err != cudaSuccess) {
    p_ = nullptr;
    cudaGetLastError();
    throw std::runtime_error("CUDA model: cudaMalloc of " + std::to_string(bytes) + " bytes failed: " +
                             cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
  }
  bytes_ = bytes;
}

bool DeviceBuffer::ensure(size_t bytes) {
  if (bytes <= bytes_) return false;
  allocate(bytes);
  return true;
}

void DeviceBuffer::reset() noexcept {
  if (p_) cudaFree(p_);  // synchronises with work still using it
  p_ = nullptr;
  bytes_ = 0;
}

StreamBuffer::StreamBuffer(size_t bytes, cudaStream_t stream) : free_stream_(stream) {
  if (bytes == 0) return;
  int device = 0, pools = 0;
  WEFT_CUDA_CHECK(cudaGetDevice(&device));
  WEFT_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device));
  pooled_ = pools != 0;
  const cudaError_t err = pooled_ ? cudaMallocAsync(&p_, bytes, stream) : cudaMalloc(&p_, bytes);
  if (err != cudaSuccess) {
    p_ = nullptr;
    cudaGetLastError();
    throw std::runtime_error("CUDA model: allocating " + std::to_string(bytes) + " bytes failed: " +
                             cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
  }
}

StreamBuffer& StreamBuffer::operator=(StreamBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    p_ = o.p_, free_stream_ = o.free_stream_, pooled_ = o.pooled_;
    o.p_ = nullptr;
  }
  return *this;
}

void StreamBuffer::reset() noexcept {
  if (p_) {
    if (pooled_) cudaFreeAsync(p_, free_stream_);
    else cudaFree(p_);
  }
  p_ = nullptr;
}

bool PinnedBuffer::ensure(size_t bytes) {
  if (bytes <= bytes_) return false;
  reset();
  const cudaError_t err = cudaMallocHost(&p_, bytes);
  if (err != cudaSuccess) {
    p_ = nullptr;
    cudaGetLastError();
    throw std::runtime_error("CUDA model: cudaMallocHost of " + std::to_string(bytes) + " bytes failed: " +
                             cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
  }
  bytes_ = bytes;
  return true;
}

void PinnedBuffer::reset() noexcept {
  if (p_) cudaFreeHost(p_);
  p_ = nullptr;
  bytes_ = 0;
}

void Uploader::reserve(int64_t n) {
  staging_.ensure(sizeof(float) * static_cast<size_t>(std::min(std::max<int64_t>(n, 0), kChunkElements)));
}

void Uploader::enqueue(const float* src, int64_t n, void* dst, DType dt, cudaStream_t stream) {
  if (n <= 0) return;
  if (dt == DType::kF32) {
    WEFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(float) * static_cast<size_t>(n), cudaMemcpyHostToDevice, stream));
    return;
  }
  const int64_t chunk = std::min(n, kChunkElements);
  staging_.ensure(sizeof(float) * static_cast<size_t>(chunk));
  char* out = static_cast<char*>(dst);
  for (int64_t i = 0; i < n; i += chunk) {
    const int64_t len = std::min(chunk, n - i);
    // Stream order keeps this copy behind the previous chunk's convert, which reads the same staging.
    WEFT_CUDA_CHECK(cudaMemcpyAsync(staging_.get(), src + i, sizeof(float) * static_cast<size_t>(len),
                                    cudaMemcpyHostToDevice, stream));
    WEFT_CUDA_CHECK(convert(staging_.get(), DType::kF32, out + static_cast<size_t>(i) * dtype_bytes(dt), dt, len,
                            stream));
  }
}

void Uploader::upload(const float* src, int64_t n, void* dst, DType dt, cudaStream_t stream) {
  enqueue(src, n, dst, dt, stream);
  WEFT_CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace weft::cuda
