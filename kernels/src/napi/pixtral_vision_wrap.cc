// JS handle to a PixtralVisionModel (model/pixtral_vision.h): Mistral 3's Pixtral vision tower and projector on the
// CPU backend. encode() takes one image of any allowed size, runs on the libuv pool and returns a Promise.
#include <napi.h>

#include <memory>
#include <string>

#include "model/pixtral_vision.h"
#include "napi/async_call.h"
#include "napi/util.h"

namespace weft::napi {

// vision_wrap.cc: [{target, rank, scale, a, b}] -> parts.
std::vector<VisionLoraPart> parse_vision_lora_parts(const Napi::Value& v);

namespace {

VisionAct parse_act(const Napi::Object& o, const char* key) {
  const std::string a = str(o, key);
  if (a == "quick_gelu") return VisionAct::kQuickGelu;
  if (a == "gelu") return VisionAct::kGeluErf;
  if (a == "gelu_tanh") return VisionAct::kGeluTanh;
  if (a == "relu") return VisionAct::kRelu;
  if (a == "silu") return VisionAct::kSilu;
  throw Napi::TypeError::New(o.Env(), std::string(key) + " must be 'quick_gelu', 'gelu', 'gelu_tanh', 'relu' or 'silu'");
}

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
  c.act = parse_act(o, "act");
  c.projector_act = parse_act(o, "projectorAct");
  c.projector_bias = o.Get("projectorBias").ToBoolean().Value();
  c.rope_theta = static_cast<float>(num_or(o, "ropeTheta", 10000));
  c.norm_eps = static_cast<float>(num_or(o, "normEps", 1e-5));
  return c;
}

}  // namespace

class PixtralVisionWrap : public Napi::ObjectWrap<PixtralVisionWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PixtralVisionModel",
                       {InstanceMethod("expectedSize", &PixtralVisionWrap::ExpectedSize),
                        InstanceMethod("setWeight", &PixtralVisionWrap::SetWeight),
                        InstanceMethod("finalize", &PixtralVisionWrap::Finalize),
                        InstanceMethod("tokensFor", &PixtralVisionWrap::TokensFor),
                        InstanceMethod("checkLora", &PixtralVisionWrap::CheckLora),
                        InstanceMethod("encode", &PixtralVisionWrap::Encode),
                        InstanceMethod("dispose", &PixtralVisionWrap::Dispose)});
  }

  explicit PixtralVisionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PixtralVisionWrap>(info) {
    if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "PixtralVisionModel config must be an object");
    const PixtralVisionConfig cfg = parse_pixtral_config(info[0].As<Napi::Object>());
    guard(info.Env(), [&] { model_ = std::make_shared<PixtralVisionModel>(cfg); });
  }

 private:
  PixtralVisionModel& live(Napi::Env env) {
    if (!model_) throw Napi::Error::New(env, "PixtralVisionModel was disposed");
    return *model_;
  }
  Napi::Value ExpectedSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env()).expected_size(info[0].ToString().Utf8Value())));
  }
  Napi::Value SetWeight(const Napi::CallbackInfo& info) {
    const std::string name = info[0].ToString().Utf8Value();
    auto a = f32(info[1], "weight");
    guard(info.Env(), [&] { live(info.Env()).set_weight(name, a.Data(), static_cast<int64_t>(a.ElementLength())); });
    return info.Env().Undefined();
  }
  Napi::Value Finalize(const Napi::CallbackInfo& info) {
    guard(info.Env(), [&] { live(info.Env()).finalize(); });
    return info.Env().Undefined();
  }
  Napi::Value TokensFor(const Napi::CallbackInfo& info) {
    const int64_t h = num_int(info[0], "height"), w = num_int(info[1], "width");
    int64_t n = 0;
    guard(info.Env(), [&] { n = live(info.Env()).tokens_for(h, w); });
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }
  Napi::Value CheckLora(const Napi::CallbackInfo& info) {
    const std::vector<VisionLoraPart> parts = parse_vision_lora_parts(info[0]);
    guard(info.Env(), [&] { live(info.Env()).check_lora(parts); });
    return info.Env().Undefined();
  }
  // encode(pixels [channels, height, width], height, width, lora?) -> Promise<Float32Array [tokens, textHidden]>
  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    PixtralVisionModel& m = live(env);
    auto px = f32(info[0], "encode: pixels");
    const int64_t height = num_int(info[1], "encode: height"), width = num_int(info[2], "encode: width");
    const int64_t C = m.config().channels;
    if (height <= 0 || width <= 0 || static_cast<int64_t>(px.ElementLength()) != C * height * width)
      throw Napi::RangeError::New(env, "encode: pixels must hold " + std::to_string(C) + " × height × width floats");
    auto pixels = std::make_shared<std::vector<float>>(px.Data(), px.Data() + px.ElementLength());
    auto lora = std::make_shared<std::vector<VisionLoraPart>>(parse_vision_lora_parts(info[3]));
    return queue_call<std::vector<float>>(
        env, [model = model_, pixels, lora, height, width] { return model->encode(pixels->data(), height, width, *lora); },
        [](Napi::Env e, std::vector<float>& out) -> Napi::Value {
          auto arr = Napi::Float32Array::New(e, out.size());
          std::copy(out.begin(), out.end(), arr.Data());
          return arr;
        },
        "vision encode failed: ");
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    model_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<PixtralVisionModel> model_;
};

Napi::Function define_pixtral_vision(Napi::Env env) { return PixtralVisionWrap::Define(env); }

}  // namespace weft::napi
