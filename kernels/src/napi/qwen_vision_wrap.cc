// JS handle to a QwenVisionModel (model/qwen_vision.h): Qwen2-VL / Qwen2.5-VL's dynamic-resolution vision tower on
// the CPU backend. encode() takes one image of any allowed size, runs on the libuv pool and returns a Promise.
#include <napi.h>

#include <string>

#include "model/qwen_vision.h"
#include "napi/vision_wrap_base.h"

namespace weft::napi {

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
  c.act = parse_vision_act(o, "act");
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

// encode(pixels [channels, height, width], height, width, lora?) -> Promise<Float32Array [tokens, outHidden]>
// (Qwen3-VL: then each deepstack set's [tokens, outHidden])
class QwenVisionWrap : public VisionWrapBase<QwenVisionWrap, QwenVisionModel> {
 public:
  static constexpr const char* kName = "QwenVisionModel";
  static Napi::Function Define(Napi::Env env) {
    return define(env, "tokensFor", &QwenVisionWrap::TokensFor, &QwenVisionWrap::EncodeImage);
  }
  explicit QwenVisionWrap(const Napi::CallbackInfo& info) : VisionWrapBase(info, parse_qwen_vision_config) {}
};

Napi::Function define_qwen_vision(Napi::Env env) { return QwenVisionWrap::Define(env); }

}  // namespace weft::napi
