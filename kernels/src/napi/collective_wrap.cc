#include "napi/collective_wrap.h"

#include "napi/util.h"

namespace weft::napi {

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
    else throw Napi::TypeError::New(info.Env(), "Collective kind must be 'solo' or 'shm', got '" + kind + "'");
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

Napi::Value CollectiveWrap::AllReduceSum(const Napi::CallbackInfo& info) {
  auto a = f32(info[0], "data");
  try {
    live(info.Env())->all_reduce_sum(a.Data(), static_cast<int64_t>(a.ElementLength()));
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return info.Env().Undefined();
}

Napi::Value CollectiveWrap::AllGather(const Napi::CallbackInfo& info) {
  auto in = f32(info[0], "data");
  auto c = live(info.Env());
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
