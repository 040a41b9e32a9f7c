// The CUDA runtime layer's JS surface: cudaInfo(), ncclUniqueId(), cudaCopyBandwidth(device). Always compiled;
// in a build without nvcc (WEFT_WITH_CUDA undefined) it reports compiled: false and refuses the rest with why.
#include <napi.h>

#include <cmath>
#include <string>

#include "napi/util.h"

#ifdef WEFT_WITH_CUDA
#include "cuda/runtime/device.h"
#include "cuda/runtime/gemm.h"
#include "cuda/runtime/lora_bench.h"
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
    const int64_t bytes = info.Length() > 1 && !info[1].IsUndefined() ? num_int(info[1], "bytes") : int64_t(256) << 20;
    if (bytes <= 0) throw std::invalid_argument("bytes must be > 0");
    return Napi::Number::New(env, weft::cuda::measure_copy_bandwidth(static_cast<int>(device), static_cast<size_t>(bytes)));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("cudaCopyBandwidth: ") + e.what());
  }
#else
  (void)device;
  throw Napi::Error::New(env, std::string("cudaCopyBandwidth: ") + kNotCompiled);
#endif
}

// cudaGemmRate(device, dtype, m, n, k) -> FLOP/s of y = x·Wᵀ through the executor's cuBLASLt path.
Napi::Value CudaGemmRate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t device = num_int(info[0], "device");
  const std::string dtype = info[1].ToString().Utf8Value();
  const int64_t m = num_int(info[2], "m"), n = num_int(info[3], "n"), k = num_int(info[4], "k");
#ifdef WEFT_WITH_CUDA
  try {
    weft::cuda::GemmType t = weft::cuda::GemmType::kBF16;
    if (dtype == "float32") t = weft::cuda::GemmType::kF32;
    else if (dtype == "float16") t = weft::cuda::GemmType::kF16;
    else if (dtype != "bfloat16") throw std::invalid_argument("dtype must be float32, float16 or bfloat16, got '" + dtype + "'");
    return Napi::Number::New(env, weft::cuda::measure_gemm_rate(static_cast<int>(device), t, m, n, k));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("cudaGemmRate: ") + e.what());
  }
#else
  (void)device, (void)m, (void)n, (void)k;
  throw Napi::Error::New(env, std::string("cudaGemmRate: ") + kNotCompiled);
#endif
}

// cudaLoraKernelTime({ op: 'shrink'|'expand', kind: 'sgmv'|'bgmv', dtype: 'bfloat16'|'float16'|'float32', tokens,
//   adapters, rank, inDim, outDim, iterations?, coldL2? }) -> microseconds per call of the CUDA LoRA launcher on
// device 0 (lora_bench.h; blocks the calling thread while it allocates, times and frees).
Napi::Value CudaLoraKernelTime(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "cudaLoraKernelTime: the argument must be an object");
  const Napi::Object o = info[0].As<Napi::Object>();
  auto integer = [&](const char* key, double dflt, bool optional) {
    const double v = optional ? num_or(o, key, dflt) : num(o, key);
    if (!std::isfinite(v) || v != std::floor(v) || v < 0 || v > 9.0e15)
      throw Napi::TypeError::New(env, std::string("cudaLoraKernelTime: '") + key + "' must be an integer >= 0");
    return static_cast<int64_t>(v);
  };
  const std::string op = str(o, "op"), kind = str(o, "kind"), dtype = str(o, "dtype");
  const int64_t tokens = integer("tokens", 0, false), adapters = integer("adapters", 0, false),
                rank = integer("rank", 0, false), in = integer("inDim", 0, false), out = integer("outDim", 0, false),
                iterations = integer("iterations", 200, true);
  const Napi::Value cold = o.Get("coldL2");
  if (!cold.IsUndefined() && !cold.IsBoolean())
    throw Napi::TypeError::New(env, "cudaLoraKernelTime: 'coldL2' must be a boolean");
#ifdef WEFT_WITH_CUDA
  try {
    weft::cuda::LoraKernelSpec s;
    using Spec = weft::cuda::LoraKernelSpec;
    if (op == "shrink") s.op = Spec::Op::kShrink;
    else if (op == "expand") s.op = Spec::Op::kExpand;
    else throw std::invalid_argument("op must be shrink or expand, got '" + op + "'");
    if (kind == "sgmv") s.kind = Spec::Kind::kSgmv;
    else if (kind == "bgmv") s.kind = Spec::Kind::kBgmv;
    else throw std::invalid_argument("kind must be sgmv or bgmv, got '" + kind + "'");
    if (dtype == "bfloat16") s.dtype = weft::cuda::DType::kBF16;
    else if (dtype == "float16") s.dtype = weft::cuda::DType::kF16;
    else if (dtype == "float32") s.dtype = weft::cuda::DType::kF32;
    else throw std::invalid_argument("dtype must be float32, float16 or bfloat16, got '" + dtype + "'");
    if (iterations < 1 || iterations > 1000000) throw std::invalid_argument("iterations must be in [1, 1000000]");
    s.tokens = tokens;
    s.adapters = adapters;
    s.rank = rank;
    s.in = in;
    s.out = out;
    s.iterations = static_cast<int>(iterations);
    s.cold_l2 = cold.IsUndefined() || cold.As<Napi::Boolean>().Value();
    s.device = 0;
    return Napi::Number::New(env, weft::cuda::time_lora_kernel(s));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("cudaLoraKernelTime: ") + e.what());
  }
#else
  (void)tokens, (void)adapters, (void)rank, (void)in, (void)out, (void)iterations, (void)cold;
  throw Napi::Error::New(env, std::string("cudaLoraKernelTime: ") + kNotCompiled);
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
  exports.Set("cudaGemmRate", Napi::Function::New(env, CudaGemmRate, "cudaGemmRate"));
  exports.Set("cudaLoraKernelTime", Napi::Function::New(env, CudaLoraKernelTime, "cudaLoraKernelTime"));
}

}  // namespace weft::napi
