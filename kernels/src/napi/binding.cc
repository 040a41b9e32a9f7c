// Registers the addon's surface; nothing else lives here.
#include <napi.h>

#include "napi/addon_data.h"
#include "napi/collective_wrap.h"
#include "napi/staged_adapter_wrap.h"

namespace weft::napi {
Napi::Function define_model(Napi::Env env);
Napi::Function define_vision(Napi::Env env);
Napi::Function define_qwen_vision(Napi::Env env);
Napi::Function define_pixtral_vision(Napi::Env env);
Napi::Object define_ops(Napi::Env env);
void define_cuda(Napi::Env env, Napi::Object exports);
bool cuda_compiled();
}  // namespace weft::napi

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace weft::napi;
  auto* data = new AddonData();  // owned by the environment (deleted at its teardown)
  env.SetInstanceData(data);
  Napi::Function coll = CollectiveWrap::Define(env);
  data->collective_ctor = Napi::Persistent(coll);
  data->staged_adapter_ctor = Napi::Persistent(StagedAdapterWrap::Define(env));
  exports.Set("Collective", coll);
  exports.Set("Model", define_model(env));
  exports.Set("VisionModel", define_vision(env));
  exports.Set("QwenVisionModel", define_qwen_vision(env));
  exports.Set("PixtralVisionModel", define_pixtral_vision(env));
  exports.Set("ops", define_ops(env));
  define_cuda(env, exports);
  exports.Set("backends", Napi::String::New(env, cuda_compiled() ? "cpu,cuda" : "cpu"));
  return exports;
}

NODE_API_MODULE(weft_kernels, Init)
