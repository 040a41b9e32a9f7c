// Registers the addon's surface; nothing else lives here.
#include <napi.h>

#include "napi/collective_wrap.h"

namespace weft::napi {
extern Napi::FunctionReference* g_collective_ctor;
Napi::Function define_model(Napi::Env env);
Napi::Object define_ops(Napi::Env env);
void define_cuda(Napi::Env env, Napi::Object exports);
bool cuda_compiled();
}  // namespace weft::napi

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace weft::napi;
  Napi::Function coll = CollectiveWrap::Define(env);
  g_collective_ctor = new Napi::FunctionReference(Napi::Persistent(coll));
  exports.Set("Collective", coll);
  exports.Set("Model", define_model(env));
  exports.Set("ops", define_ops(env));
  define_cuda(env, exports);
  exports.Set("backends", Napi::String::New(env, cuda_compiled() ? "cpu,cuda" : "cpu"));
  return exports;
}

NODE_API_MODULE(weft_kernels, Init)
