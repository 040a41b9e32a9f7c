// Registers the addon's surface; nothing else lives here.
#include <napi.h>

#include "napi/collective_wrap.h"

namespace weft::napi {
extern Napi::FunctionReference* g_collective_ctor;
Napi::Function define_model(Napi::Env env);
Napi::Object define_ops(Napi::Env env);
}  // namespace weft::napi

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace weft::napi;
  Napi::Function coll = CollectiveWrap::Define(env);
  g_collective_ctor = new Napi::FunctionReference(Napi::Persistent(coll));
  exports.Set("Collective", coll);
  exports.Set("Model", define_model(env));
  exports.Set("ops", define_ops(env));
  exports.Set("backends", Napi::String::New(env, "cpu"));
  return exports;
}

NODE_API_MODULE(weft_kernels, Init)
