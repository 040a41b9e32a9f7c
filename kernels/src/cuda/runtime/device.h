// Which NVIDIA GPUs this process can use, and what they are. Asking never throws when there is no GPU or driver:
// cuda_available() says no and why (this is how the development machines and CI answer: the CUDA runtime is
// linked in, but there is no driver, so every call returns cudaErrorInsufficientDriver).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace weft::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  size_t total_memory = 0;           // bytes
  int cc_major = 0, cc_minor = 0;    // compute capability
  int multiprocessors = 0;
  int memory_bus_width_bits = 0;
  int memory_clock_khz = 0;          // peak
  double nominal_bandwidth = 0;      // bytes/s: 2 (DDR) * clock * bus width; the datasheet figure, not measured
};

// True when at least one device answers. Otherwise false with the reason in *why (no trailing period).
// The answer is computed once per process (the driver does not come and go under a running server).
bool cuda_available(std::string* why);

// Every visible device; empty when cuda_available() is false.
std::vector<DeviceInfo> list_devices();
// One device; throws std::runtime_error when it does not exist or the runtime fails.
DeviceInfo device_info(int device);

// Measured device-to-device copy rate of `device` in bytes/s (bytes read + bytes written per second), the
// figure the decode bound of DESIGN.md §9 divides by. Allocates 2 * bytes on the device; throws on failure.
double measure_copy_bandwidth(int device, size_t bytes = size_t(256) << 20, int iterations = 10);

// Makes `device` current for a scope and restores the calling thread's previous device at the end (the JS thread
// and the thread-pool threads that call in may have another device current). Throws if the device cannot be set.
class DeviceScope {
 public:
  explicit DeviceScope(int device);
  ~DeviceScope();
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int prev_ = 0;
};

}  // namespace weft::cuda
