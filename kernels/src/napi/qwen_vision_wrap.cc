// JS handle to a QwenVisionModel (model/qwen_vision.h): Qwen2-VL / Qwen2.5-VL's dynamic-resolution vision tower on
// the CPU backend. encode() takes one image of any allowed size, runs on the libuv pool and returns a Promise.
#include <napi.h>

#include <memory>
#include <string>

#include "model/qwen_vision.h"
#include "napi/async_call.h"
#include "napi/util.h"

namespace weft::napi {

// vision_wrap.cc: [{target, rank, scale, a, b}] -> parts.
std::vector<VisionLoraPart> parse_vision_lora_parts(const Napi::Value& v);

namespace {

QwenVisionConfig parse_qwen_vision_config(const Napi::Object& o) {
  QwenVisionConfig c;
  c.windowed = o.Get("windowed").ToBoolean().Value();
  c.hidden = static_cast<int64_t>(num(o, "hidden"));
  c.heads = static_cast<int64_t>(num(o, "heads"));
  c.intermediate = static_cast<int64_t>(num(o, "intermediate"));
  c.depth = static_cast<int64_t>(num(o, "depth"));
  c.patch_size = static_cast<int64_t>(num(o, "patchSize"));
  c.merge_size = static_cast<int64_t>(num(o, "mergeSize"));
  c.temporal_patch_size = static_cast<int64_t>(num(o, "temporalPatchSize"));
  c.channels = static_cast<int64_t>(num_or(o, "channels", 3));
  c.out_hidden = static_cast<int64_t>(num(o, "outHidden"));
  const std::string a = str(o, "act");
  if (a == "quick_gelu") c.act = VisionAct::kQuickGelu;
  else if (a == "gelu") c.act = VisionAct::kGeluErf;
  else if (a == "gelu_tanh") c.act = VisionAct::kGeluTanh;
  else if (a == "relu") c.act = VisionAct::kRelu;
  else if (a == "silu") c.act = VisionAct::kSilu;
  else throw Napi::TypeError::New(o.Env(), "act must be 'quick_gelu', 'gelu', 'gelu_tanh', 'relu' or 'silu'");
  c.window_size = static_cast<int64_t>(num_or(o, "windowSize", 0));
  const Napi::Value fb = o.Get("fullBlocks");
  if (fb.IsArray()) {
    const Napi::Array arr = fb.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) c.full_blocks.push_back(num_int(arr.Get(i), "fullBlocks[i]"));
  }
  c.qwen3 = o.Get("qwen3").ToBoolean().Value();
  c.num_position_embeddings = static_cast<int64_t>(num_or(o, "numPositionEmbeddings", 0));
  const Napi::Value ds = o.Get("deepstack");
  if (ds.IsArray()) {
    const Napi::Array arr = ds.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) c.deepstack.push_back(num_int(arr.Get(i), "deepstack[i]"));
  }
  c.norm_eps = static_cast<float>(num_or(o, "normEps", 1e-6));
  c.rope_theta = static_cast<float>(num_or(o, "ropeTheta", 10000));
  return c;
}

}  // namespace

class QwenVisionWrap : public Napi::ObjectWrap<QwenVisionWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "QwenVisionModel",
                       {InstanceMethod("expectedSize", &QwenVisionWrap::ExpectedSize),
                        InstanceMethod("setWeight", &QwenVisionWrap::SetWeight),
                        InstanceMethod("finalize", &QwenVisionWrap::Finalize),
                        InstanceMethod("tokensFor", &QwenVisionWrap::TokensFor),
                        InstanceMethod("checkLora", &QwenVisionWrap::CheckLora),
                        InstanceMethod("encode", &QwenVisionWrap::Encode),
                        InstanceMethod("dispose", &QwenVisionWrap::Dispose)});
  }

  explicit QwenVisionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<QwenVisionWrap>(info) {
    if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "QwenVisionModel config must be an object");
    const QwenVisionConfig cfg = parse_qwen_vision_config(info[0].As<Napi::Object>());
    guard(info.Env(), [&] { model_ = std::make_shared<QwenVisionModel>(cfg); });
  }

 private:
  QwenVisionModel& live(Napi::Env env) {
    if (!model_) throw Napi::Error::New(env, "QwenVisionModel was disposed");
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
  // encode(pixels [channels, height, width], height, width, lora?) -> Promise<Float32Array [tokens, outHidden]>
  // (Qwen3-VL: then each deepstack set's [tokens, outHidden])
  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    QwenVisionModel& m = live(env);
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

  std::shared_ptr<QwenVisionModel> model_;
};

Napi::Function define_qwen_vision(Napi::Env env) { return QwenVisionWrap::Define(env); }

}  // namespace weft::napi
