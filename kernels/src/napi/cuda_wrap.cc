// The CUDA runtime layer's JS surface: cudaInfo(), ncclUniqueId(), cudaCopyBandwidth(device). Always compiled;
// in a build without nvcc (WEFT_WITH_CUDA undefined) it reports compiled: false and refuses the rest with why.
#include <napi.h>

#include <string>

#include "napi/util.h"

#ifdef WEFT_WITH_CUDA
#include "cuda/runtime/device.h"
#include "cuda/runtime/nccl.h"
#endif

namespace weft::napi {

namespace {

const char* const kNotCompiled =
    "this build of the native addon has no CUDA backend (nvcc was not found when it was built; install the CUDA "
    "toolkit and rerun npm run build:native)";

// { compiled, available, reason, devices: [{ name, totalMemory, computeCapability, multiProcessors,
//   memoryBusWidth, nominalBandwidth }] }
Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  Napi::Array devices = Napi::Array::New(env);
#ifdef WEFT_WITH_CUDA
  std::string why;
  bool available = weft::cuda::cuda_available(&why);
  out.Set("compiled", true);
  if (available) {
    try {
      uint32_t i = 0;
      for (const auto& d : weft::cuda::list_devices()) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("index", d.index);
        o.Set("name", d.name);
        o.Set("totalMemory", static_cast<double>(d.total_memory));
        o.Set("computeCapability", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor));
        o.Set("multiProcessors", d.multiprocessors);
        o.Set("memoryBusWidth", d.memory_bus_width_bits);
        o.Set("nominalBandwidth", d.nominal_bandwidth);
        devices.Set(i++, o);
      }
    } catch (const std::exception& e) {
      available = false;
      why = std::string("querying the CUDA devices failed: ") + e.what();
      devices = Napi::Array::New(env);
    }
  }
  out.Set("available", available);
  out.Set("reason", available ? std::string() : why);
#else
  out.Set("compiled", false);
  out.Set("available", false);
  out.Set("reason", kNotCompiled);
#endif
  out.Set("devices", devices);
  return out;
}

// 128 bytes for ncclCommInitRank, made by rank 0 and sent to the others by the TS side.
Napi::Value GetNcclUniqueId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef WEFT_WITH_CUDA
  weft::cuda::NcclUniqueId id;
  try {
    id = weft::cuda::nccl_unique_id();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("ncclUniqueId: ") + e.what());
  }
  Napi::Uint8Array out = Napi::Uint8Array::New(env, id.size());
  for (size_t i = 0; i < id.size(); i++) out[i] = id[i];
  return out;
#else
  throw Napi::Error::New(env, std::string("ncclUniqueId: NCCL (libnccl.so.2) is not usable: ") + kNotCompiled);
#endif
}

// Measured device-to-device copy rate in bytes/s (blocks the calling thread for a few tens of milliseconds).
Napi::Value CudaCopyBandwidth(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t device = info[0].IsUndefined() ? 0 : num_int(info[0], "device");
#ifdef WEFT_WITH_CUDA
  try {
    return Napi::Number::New(env, weft::cuda::measure_copy_bandwidth(static_cast<int>(device)));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("cudaCopyBandwidth: ") + e.what());
  }
#else
  (void)device;
  throw Napi::Error::New(env, std::string("cudaCopyBandwidth: ") + kNotCompiled);
#endif
}

}  // namespace

bool cuda_compiled() {
#ifdef WEFT_WITH_CUDA
  return true;
#else
  return false;
#endif
}

void define_cuda(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfo, "cudaInfo"));
  exports.Set("ncclUniqueId", Napi::Function::New(env, GetNcclUniqueId, "ncclUniqueId"));
  exports.Set("cudaCopyBandwidth", Napi::Function::New(env, CudaCopyBandwidth, "cudaCopyBandwidth"));
}

}  // namespace weft::napi
