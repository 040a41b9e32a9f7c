#include "napi/collective_wrap.h"

#include <cstdio>
#include <string>

#include "napi/util.h"

#ifdef WEFT_WITH_CUDA
#include "cuda/runtime/nccl.h"
#endif

namespace weft::napi {

namespace {

constexpr size_t kNcclUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES

int int_in(const Napi::Object& o, const char* key, int64_t lo, int64_t hi) {
  const double v = num(o, key);
  const bool in_range = v >= static_cast<double>(lo) && v <= static_cast<double>(hi);
  if (!in_range || v != static_cast<double>(static_cast<int64_t>(v))) {
    char got[32];
    std::snprintf(got, sizeof got, "%g", v);
    throw Napi::RangeError::New(o.Env(), std::string("'") + key + "' must be an integer in [" + std::to_string(lo) +
                                             ", " + std::to_string(hi) + "], got " + got);
  }
  return static_cast<int>(v);
}

std::shared_ptr<Collective> make_nccl(const Napi::Object& o) {
  Napi::Env env = o.Env();
  const int world = int_in(o, "world", 1, 1 << 16);
  const int rank = int_in(o, "rank", 0, world - 1);
  const int device = o.Get("device").IsUndefined() ? 0 : int_in(o, "device", 0, 1 << 10);
  Napi::Value idv = o.Get("uniqueId");
  if (!idv.IsTypedArray() || idv.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(env, "'uniqueId' must be a Uint8Array (the 128 bytes of rank 0's ncclUniqueId())");
  Napi::Uint8Array bytes = idv.As<Napi::Uint8Array>();
  if (bytes.ElementLength() != kNcclUniqueIdBytes)
    throw Napi::RangeError::New(env, "'uniqueId' must be " + std::to_string(kNcclUniqueIdBytes) + " bytes, got " +
                                         std::to_string(bytes.ElementLength()));
#ifdef WEFT_WITH_CUDA
  static_assert(sizeof(weft::cuda::NcclUniqueId) == kNcclUniqueIdBytes, "NCCL unique id size");
  weft::cuda::NcclUniqueId id{};
  for (size_t i = 0; i < id.size(); i++) id[i] = bytes[i];
  return weft::cuda::make_nccl_collective(id, rank, world, device);
#else
  (void)device;
  throw Napi::Error::New(env,
                         "Collective kind 'nccl' needs the CUDA backend: this build of the native addon has none (nvcc "
                         "was not found when it was built; install the CUDA toolkit and rerun npm run build:native), "
                         "use kind 'shm'");
#endif
}

}  // namespace

Napi::Function CollectiveWrap::Define(Napi::Env env) {
  return DefineClass(env, "Collective",
                     {InstanceMethod("allReduceSum", &CollectiveWrap::AllReduceSum),
                      InstanceMethod("allGather", &CollectiveWrap::AllGather),
                      InstanceMethod("dispose", &CollectiveWrap::Dispose)});
}

CollectiveWrap::CollectiveWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CollectiveWrap>(info) {
  if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "Collective options must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  const std::string kind = str(o, "kind");
  try {
    if (kind == "solo") coll_ = std::make_shared<SoloCollective>();
    else if (kind == "shm")
      coll_ = make_shm_collective(str(o, "name"), static_cast<int>(num(o, "rank")), static_cast<int>(num(o, "world")),
                                  static_cast<int64_t>(num(o, "maxFloats")),
                                  static_cast<int64_t>(num_or(o, "timeoutMs", 120000)));
    else if (kind == "nccl") coll_ = make_nccl(o);
    else throw Napi::TypeError::New(info.Env(), "Collective kind must be 'solo', 'shm' or 'nccl', got '" + kind + "'");
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

std::shared_ptr<Collective> CollectiveWrap::live(Napi::Env env) const {
  if (!coll_) throw Napi::Error::New(env, "Collective was disposed");
  return coll_;
}

std::shared_ptr<Collective> CollectiveWrap::live_host(Napi::Env env) const {
  auto c = live(env);
  if (c->device_pointers())
    throw Napi::Error::New(env,
                           "the nccl collective works on device memory inside a forward pass (pass it to a cuda "
                           "Model); allReduceSum/allGather on host Float32Arrays need a 'solo' or 'shm' collective");
  return c;
}

Napi::Value CollectiveWrap::AllReduceSum(const Napi::CallbackInfo& info) {
  auto c = live_host(info.Env());
  auto a = f32(info[0], "data");
  try {
    c->all_reduce_sum(a.Data(), static_cast<int64_t>(a.ElementLength()));
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return info.Env().Undefined();
}

Napi::Value CollectiveWrap::AllGather(const Napi::CallbackInfo& info) {
  auto c = live_host(info.Env());
  auto in = f32(info[0], "data");
  auto out = Napi::Float32Array::New(info.Env(), in.ElementLength() * c->world());
  try {
    c->all_gather(in.Data(), static_cast<int64_t>(in.ElementLength()), out.Data());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return out;
}

Napi::Value CollectiveWrap::Dispose(const Napi::CallbackInfo& info) {
  coll_.reset();
  return info.Env().Undefined();
}

}  // namespace weft::napi
