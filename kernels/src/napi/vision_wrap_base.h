// What the JS handles of the vision towers (vision_wrap.cc, qwen_vision_wrap.cc, pixtral_vision_wrap.cc) share: the
// activation and LoRA-part parsers, and a CRTP base holding the tower (expectedSize, setWeight, finalize, checkLora,
// encode on the libuv pool, dispose). The towers differ in their config, their token count and encode's arguments.
#pragma once
#include <napi.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/vision.h"
#include "napi/async_call.h"
#include "napi/util.h"

namespace weft::napi {

inline VisionAct parse_vision_act(const Napi::Object& o, const char* key) {
  const std::string a = str(o, key);
  if (a == "quick_gelu") return VisionAct::kQuickGelu;
  if (a == "gelu") return VisionAct::kGeluErf;
  if (a == "gelu_tanh") return VisionAct::kGeluTanh;
  if (a == "relu") return VisionAct::kRelu;
  if (a == "silu") return VisionAct::kSilu;
  throw Napi::TypeError::New(o.Env(), std::string(key) + " must be 'quick_gelu', 'gelu', 'gelu_tanh', 'relu' or 'silu'");
}

// [{target, rank, scale, a, b}] -> parts (copied: the encode runs on another thread); undefined or null: none.
inline std::vector<VisionLoraPart> parse_vision_lora(const Napi::Value& v) {
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

// The JS class Derived::kName over a Model (its constructor takes the config the parser returns). Derived adds its
// token count and its encode (EncodeImage for a tower that takes one image of any allowed size) and names them in
// define().
template <typename Derived, typename Model>
class VisionWrapBase : public Napi::ObjectWrap<Derived> {
 protected:
  using Wrap = Napi::ObjectWrap<Derived>;
  using Method = typename Wrap::InstanceMethodCallback;

  // The class: expectedSize, setWeight, finalize, `tokens_name` (tokens), checkLora, encode, dispose.
  static Napi::Function define(Napi::Env env, const char* tokens_name, Method tokens, Method encode) {
    return Wrap::DefineClass(env, Derived::kName,
                             {Wrap::InstanceMethod("expectedSize", static_cast<Method>(&VisionWrapBase::ExpectedSize)),
                              Wrap::InstanceMethod("setWeight", static_cast<Method>(&VisionWrapBase::SetWeight)),
                              Wrap::InstanceMethod("finalize", static_cast<Method>(&VisionWrapBase::Finalize)),
                              Wrap::InstanceMethod(tokens_name, tokens),
                              Wrap::InstanceMethod("checkLora", static_cast<Method>(&VisionWrapBase::CheckLora)),
                              Wrap::InstanceMethod("encode", encode),
                              Wrap::InstanceMethod("dispose", static_cast<Method>(&VisionWrapBase::Dispose))});
  }

  template <typename Parse>
  VisionWrapBase(const Napi::CallbackInfo& info, Parse parse) : Wrap(info) {
    if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), std::string(Derived::kName) + " config must be an object");
    const auto cfg = parse(info[0].As<Napi::Object>());
    guard(info.Env(), [&] { model_ = std::make_shared<Model>(cfg); });
  }

  Model& live(Napi::Env env) {
    if (!model_) throw Napi::Error::New(env, std::string(Derived::kName) + " was disposed");
    return *model_;
  }

  // Runs model.encode(pixels, dims..., lora) on the libuv pool: a Promise of its rows as a Float32Array.
  template <typename... Dims>
  Napi::Value queue_encode(Napi::Env env, const Napi::Float32Array& px, const Napi::Value& lora_arg, Dims... dims) {
    auto pixels = std::make_shared<std::vector<float>>(px.Data(), px.Data() + px.ElementLength());
    auto lora = std::make_shared<std::vector<VisionLoraPart>>(parse_vision_lora(lora_arg));
    return queue_call<std::vector<float>>(
        env, [model = model_, pixels, lora, dims...] { return model->encode(pixels->data(), dims..., *lora); },
        [](Napi::Env e, std::vector<float>& out) -> Napi::Value {
          auto arr = Napi::Float32Array::New(e, out.size());
          std::copy(out.begin(), out.end(), arr.Data());
          return arr;
        },
        "vision encode failed: ");
  }

  // tokensFor(height, width): the tokens of one image of that size.
  Napi::Value TokensFor(const Napi::CallbackInfo& info) {
    const int64_t h = num_int(info[0], "height"), w = num_int(info[1], "width");
    int64_t n = 0;
    guard(info.Env(), [&] { n = live(info.Env()).tokens_for(h, w); });
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }

  // encode(pixels [channels, height, width], height, width, lora?) -> Promise<Float32Array [tokens, hidden]>
  Napi::Value EncodeImage(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model& m = live(env);
    auto px = f32(info[0], "encode: pixels");
    const int64_t height = num_int(info[1], "encode: height"), width = num_int(info[2], "encode: width");
    const int64_t C = m.config().channels;
    if (height <= 0 || width <= 0 || static_cast<int64_t>(px.ElementLength()) != C * height * width)
      throw Napi::RangeError::New(env, "encode: pixels must hold " + std::to_string(C) + " × height × width floats");
    return queue_encode(env, px, info[3], height, width);
  }

 private:
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
  Napi::Value CheckLora(const Napi::CallbackInfo& info) {
    const std::vector<VisionLoraPart> parts = parse_vision_lora(info[0]);
    guard(info.Env(), [&] { live(info.Env()).check_lora(parts); });
    return info.Env().Undefined();
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    model_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<Model> model_;
};

}  // namespace weft::napi
