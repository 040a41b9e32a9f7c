// JS handle to a VisionModel (model/vision.h): a vision-language model's image encoder on the CPU backend.
// encode() runs on the libuv thread pool and returns a Promise, like Model.forward.
#include <napi.h>

#include <string>

#include "model/vision.h"
#include "napi/vision_wrap_base.h"

namespace weft::napi {

namespace {

VisionConfig parse_vision_config(const Napi::Object& o) {
  VisionConfig c;
  const Napi::Value tower = o.Get("tower");
  if (!tower.IsUndefined() && !tower.IsNull()) {
    const std::string t = str(o, "tower");
    if (t == "siglip_gemma3") c.tower = VisionTower::kSiglipGemma3;
    else if (t == "siglip_idefics3") c.tower = VisionTower::kSiglipIdefics3;
    else if (t != "clip_llava")
      throw Napi::TypeError::New(o.Env(), "tower must be 'clip_llava', 'siglip_gemma3' or 'siglip_idefics3'");
  }
  c.pool_tokens = static_cast<int64_t>(num_or(o, "poolTokens", 0));
  c.scale_factor = static_cast<int64_t>(num_or(o, "scaleFactor", 0));
  c.hidden = static_cast<int64_t>(num(o, "hidden"));
  c.heads = static_cast<int64_t>(num(o, "heads"));
  c.intermediate = static_cast<int64_t>(num(o, "intermediate"));
  c.layers = static_cast<int64_t>(num(o, "layers"));
  c.image_size = static_cast<int64_t>(num(o, "imageSize"));
  c.patch_size = static_cast<int64_t>(num(o, "patchSize"));
  c.channels = static_cast<int64_t>(num_or(o, "channels", 3));
  c.norm_eps = static_cast<float>(num(o, "normEps"));
  c.act = parse_vision_act(o, "act");
  const Napi::Value fl = o.Get("featureLayers");
  if (!fl.IsArray()) throw Napi::TypeError::New(o.Env(), "featureLayers must be an array of hidden-state indices");
  const Napi::Array a = fl.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) c.feature_layers.push_back(num_int(a.Get(i), "featureLayers[i]"));
  c.drop_cls = o.Get("dropCls").ToBoolean().Value();
  c.text_hidden = static_cast<int64_t>(num(o, "textHidden"));
  c.projector_act = parse_vision_act(o, "projectorAct");
  c.projector_bias = o.Get("projectorBias").ToBoolean().Value();
  return c;
}

}  // namespace

class VisionWrap : public VisionWrapBase<VisionWrap, VisionModel> {
 public:
  static constexpr const char* kName = "VisionModel";
  static Napi::Function Define(Napi::Env env) {
    return define(env, "tokensPerImage", &VisionWrap::TokensPerImage, &VisionWrap::Encode);
  }
  explicit VisionWrap(const Napi::CallbackInfo& info) : VisionWrapBase(info, parse_vision_config) {}

 private:
  Napi::Value TokensPerImage(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env()).tokens_per_image()));
  }
  // encode(pixels, images, lora?) -> Promise<Float32Array [images · tokensPerImage, textHidden]>
  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    VisionModel& m = live(env);
    auto px = f32(info[0], "encode: pixels");
    const int64_t images = num_int(info[1], "encode: images");
    const VisionConfig& c = m.config();
    const int64_t per = c.channels * c.image_size * c.image_size;
    if (images <= 0 || static_cast<int64_t>(px.ElementLength()) != images * per)
      throw Napi::RangeError::New(env, "encode: pixels must hold images × " + std::to_string(c.channels) + " × " +
                                           std::to_string(c.image_size) + " × " + std::to_string(c.image_size) + " floats");
    return queue_encode(env, px, info[2], images);
  }
};

Napi::Function define_vision(Napi::Env env) { return VisionWrap::Define(env); }

}  // namespace weft::napi
