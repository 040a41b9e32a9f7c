#include "cuda/runtime/device.h"

#include <cuda_runtime_api.h>

#include <mutex>

#include "cuda/runtime/check.h"
#include "cuda/runtime/stream_timer.h"

namespace weft::cuda {

namespace {

struct Availability {
  bool ok = false;
  std::string why;
};

Availability probe() {
  Availability a;
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();  // leave no error behind for the next unrelated check
    const std::string words = std::string(cudaGetErrorName(err)) + " (" + cudaGetErrorString(err) + ")";
    if (err == cudaErrorInsufficientDriver)
      a.why = "no usable NVIDIA driver: cudaGetDeviceCount returned " + words;
    else if (err == cudaErrorNoDevice)
      a.why = "no CUDA device found: cudaGetDeviceCount returned " + words;
    else
      a.why = "the CUDA runtime could not reach a device: cudaGetDeviceCount returned " + words;
    return a;
  }
  if (n == 0) {
    a.why = "no CUDA device found (cudaGetDeviceCount returned 0)";
    return a;
  }
  a.ok = true;
  return a;
}

const Availability& availability() {
  static std::once_flag once;
  static Availability a;
  std::call_once(once, [] { a = probe(); });
  return a;
}

}  // namespace

bool cuda_available(std::string* why) {
  const Availability& a = availability();
  if (why) *why = a.ok ? std::string() : a.why;
  return a.ok;
}

DeviceInfo device_info(int device) {
  std::string why;
  if (!cuda_available(&why)) throw std::runtime_error("CUDA device " + std::to_string(device) + ": " + why);
  int n = 0;
  WEFT_CUDA_CHECK(cudaGetDeviceCount(&n));
  if (device < 0 || device >= n)
    throw std::runtime_error("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(n) +
                             " visible)");
  cudaDeviceProp p{};
  WEFT_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  DeviceInfo d;
  d.index = device;
  d.name = p.name;
  d.total_memory = p.totalGlobalMem;
  d.cc_major = p.major;
  d.cc_minor = p.minor;
  d.multiprocessors = p.multiProcessorCount;
  d.memory_bus_width_bits = p.memoryBusWidth;
  // CUDA 13 dropped cudaDeviceProp::memoryClockRate; the attribute remains.
  WEFT_CUDA_CHECK(cudaDeviceGetAttribute(&d.memory_clock_khz, cudaDevAttrMemoryClockRate, device));
  d.nominal_bandwidth = 2.0 * d.memory_clock_khz * 1e3 * (d.memory_bus_width_bits / 8.0);
  return d;
}

std::vector<DeviceInfo> list_devices() {
  std::vector<DeviceInfo> out;
  if (!cuda_available(nullptr)) return out;
  int n = 0;
  WEFT_CUDA_CHECK(cudaGetDeviceCount(&n));
  for (int i = 0; i < n; i++) out.push_back(device_info(i));
  return out;
}

double measure_copy_bandwidth(int device, size_t bytes, int iterations) {
  if (bytes == 0 || iterations <= 0) throw std::invalid_argument("measure_copy_bandwidth: bytes and iterations must be > 0");
  device_info(device);  // existence + availability, with the reason when not
  DeviceScope scope(device);
  StreamTimer timer;
  void* src = timer.alloc(bytes);
  void* dst = timer.alloc(bytes);
  WEFT_CUDA_CHECK(cudaMemset(src, 1, bytes));
  const auto copy = [&] { WEFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, timer.stream())); };
  copy();  // warm-up
  const float ms = timer.time(iterations, copy, "measure_copy_bandwidth");
  return 2.0 * static_cast<double>(bytes) * iterations / (ms * 1e-3);
}

DeviceScope::DeviceScope(int device) {
  WEFT_CUDA_CHECK(cudaGetDevice(&prev_));
  if (prev_ != device) WEFT_CUDA_CHECK(cudaSetDevice(device));
}

DeviceScope::~DeviceScope() { cudaSetDevice(prev_); }

}  // namespace weft::cuda
