// JS handle to a PixtralVisionModel (model/pixtral_vision.h): Mistral 3's Pixtral vision tower and projector on the
// CPU backend. encode() takes one image of any allowed size, runs on the libuv pool and returns a Promise.
#include <napi.h>

#include <string>

#include "model/pixtral_vision.h"
#include "napi/vision_wrap_base.h"

namespace weft::napi {

namespace {

PixtralVisionConfig parse_pixtral_config(const Napi::Object& o) {
  PixtralVisionConfig c;
  c.hidden = static_cast<int64_t>(num(o, "hidden"));
  c.heads = static_cast<int64_t>(num(o, "heads"));
  c.intermediate = static_cast<int64_t>(num(o, "intermediate"));
  c.layers = static_cast<int64_t>(num(o, "layers"));
  c.patch_size = static_cast<int64_t>(num(o, "patchSize"));
  c.image_size = static_cast<int64_t>(num(o, "imageSize"));
  c.channels = static_cast<int64_t>(num_or(o, "channels", 3));
  c.merge_size = static_cast<int64_t>(num(o, "mergeSize"));
  c.text_hidden = static_cast<int64_t>(num(o, "textHidden"));
  c.act = parse_vision_act(o, "act");
  c.projector_act = parse_vision_act(o, "projectorAct");
  c.projector_bias = o.Get("projectorBias").ToBoolean().Value();
  c.rope_theta = static_cast<float>(num_or(o, "ropeTheta", 10000));
  c.norm_eps = static_cast<float>(num_or(o, "normEps", 1e-5));
  return c;
}

}  // namespace

// encode(pixels [channels, height, width], height, width, lora?) -> Promise<Float32Array [tokens, textHidden]>
class PixtralVisionWrap : public VisionWrapBase<PixtralVisionWrap, PixtralVisionModel> {
 public:
  static constexpr const char* kName = "PixtralVisionModel";
  static Napi::Function Define(Napi::Env env) {
    return define(env, "tokensFor", &PixtralVisionWrap::TokensFor, &PixtralVisionWrap::EncodeImage);
  }
  explicit PixtralVisionWrap(const Napi::CallbackInfo& info) : VisionWrapBase(info, parse_pixtral_config) {}
};

Napi::Function define_pixtral_vision(Napi::Env env) { return PixtralVisionWrap::Define(env); }

}  // namespace weft::napi
