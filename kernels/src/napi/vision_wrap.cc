// JS handle to a VisionModel (model/vision.h): a vision-language model's image encoder on the CPU backend.
// encode() runs on the libuv thread pool and returns a Promise, like Model.forward.
#include <napi.h>

#include <memory>
#include <string>

#include "model/vision.h"
#include "napi/async_call.h"
#include "napi/util.h"

namespace weft::napi {

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
  c.act = parse_act(o, "act");
  const Napi::Value fl = o.Get("featureLayers");
  if (!fl.IsArray()) throw Napi::TypeError::New(o.Env(), "featureLayers must be an array of hidden-state indices");
  const Napi::Array a = fl.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) c.feature_layers.push_back(num_int(a.Get(i), "featureLayers[i]"));
  c.drop_cls = o.Get("dropCls").ToBoolean().Value();
  c.text_hidden = static_cast<int64_t>(num(o, "textHidden"));
  c.projector_act = parse_act(o, "projectorAct");
  c.projector_bias = o.Get("projectorBias").ToBoolean().Value();
  return c;
}

// [{target, rank, scale, a, b}] -> parts (copied: the encode runs on another thread).
std::vector<VisionLoraPart> parse_vision_lora(const Napi::Value& v) {
  std::vector<VisionLoraPart> parts;
  if (v.IsUndefined() || v.IsNull()) return parts;
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), "encode: lora must be an array of parts");
  const Napi::Array arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    if (!arr.Get(i).IsObject()) throw Napi::TypeError::New(v.Env(), "encode: each lora part must be an object");
    const Napi::Object o = arr.Get(i).As<Napi::Object>();
    VisionLoraPart p;
    p.target = str(o, "target");
    p.rank = static_cast<int64_t>(num(o, "rank"));
    p.scale = static_cast<float>(num(o, "scale"));
    auto a = f32(o.Get("a"), "lora part a");
    auto b = f32(o.Get("b"), "lora part b");
    p.a.assign(a.Data(), a.Data() + a.ElementLength());
    p.b.assign(b.Data(), b.Data() + b.ElementLength());
    parts.push_back(std::move(p));
  }
  return parts;
}

}  // namespace

std::vector<VisionLoraPart> parse_vision_lora_parts(const Napi::Value& v) { return parse_vision_lora(v); }

class VisionWrap : public Napi::ObjectWrap<VisionWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "VisionModel",
                       {InstanceMethod("expectedSize", &VisionWrap::ExpectedSize),
                        InstanceMethod("setWeight", &VisionWrap::SetWeight),
                        InstanceMethod("finalize", &VisionWrap::Finalize),
                        InstanceMethod("tokensPerImage", &VisionWrap::TokensPerImage),
                        InstanceMethod("checkLora", &VisionWrap::CheckLora),
                        InstanceMethod("encode", &VisionWrap::Encode),
                        InstanceMethod("dispose", &VisionWrap::Dispose)});
  }

  explicit VisionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VisionWrap>(info) {
    if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "VisionModel config must be an object");
    const VisionConfig cfg = parse_vision_config(info[0].As<Napi::Object>());
    guard(info.Env(), [&] { model_ = std::make_shared<VisionModel>(cfg); });
  }

 private:
  VisionModel& live(Napi::Env env) {
    if (!model_) throw Napi::Error::New(env, "VisionModel was disposed");
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
  Napi::Value TokensPerImage(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env()).tokens_per_image()));
  }
  Napi::Value CheckLora(const Napi::CallbackInfo& info) {
    const std::vector<VisionLoraPart> parts = parse_vision_lora(info[0]);
    guard(info.Env(), [&] { live(info.Env()).check_lora(parts); });
    return info.Env().Undefined();
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
    auto pixels = std::make_shared<std::vector<float>>(px.Data(), px.Data() + px.ElementLength());
    auto lora = std::make_shared<std::vector<VisionLoraPart>>(parse_vision_lora(info[2]));
    return queue_call<std::vector<float>>(
        env, [model = model_, pixels, lora, images] { return model->encode(pixels->data(), images, *lora); },
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

  std::shared_ptr<VisionModel> model_;
};

Napi::Function define_vision(Napi::Env env) { return VisionWrap::Define(env); }

}  // namespace weft::napi
