#include "napi/staged_adapter_wrap.h"

#include <string>

#include "napi/addon_data.h"
#include "napi/async_call.h"
#include "napi/util.h"

namespace weft::napi {

Napi::Function StagedAdapterWrap::Define(Napi::Env env) {
  return DefineClass(env, "StagedAdapter",
                     {InstanceAccessor("bytes", &StagedAdapterWrap::Bytes, nullptr),
                      InstanceMethod("release", &StagedAdapterWrap::Release)});
}

Napi::Object StagedAdapterWrap::Make(Napi::Env env, std::shared_ptr<ModelExecutor> owner,
                                     std::unique_ptr<StagedAdapter> staged) {
  Napi::Object o = addon_data(env).staged_adapter_ctor.New({});
  StagedAdapterWrap* w = Unwrap(o);
  w->owner_ = std::move(owner);
  w->staged_ = std::move(staged);
  return o;
}

std::unique_ptr<StagedAdapter> StagedAdapterWrap::take(const Napi::Value& v, const ModelExecutor* owner) {
  Napi::Env env = v.Env();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(env).staged_adapter_ctor.Value()))
    throw Napi::TypeError::New(env, "installAdapter(slot, staged): staged must come from stageAdapter");
  StagedAdapterWrap* w = Unwrap(v.As<Napi::Object>());
  if (!w->staged_) throw Napi::Error::New(env, "installAdapter: this staged adapter was installed or released already");
  if (w->owner_.get() != owner) throw Napi::Error::New(env, "installAdapter: the adapter was staged by another Model");
  std::unique_ptr<StagedAdapter> out = std::move(w->staged_);
  w->owner_.reset();
  return out;
}

Napi::Value StagedAdapterWrap::Bytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), staged_ ? static_cast<double>(staged_->bytes()) : 0.0);
}

Napi::Value StagedAdapterWrap::Release(const Napi::CallbackInfo& info) {
  staged_.reset();
  owner_.reset();
  return info.Env().Undefined();
}

std::vector<LoraPartRef> parse_lora_parts(const Napi::Value& v) {
  Napi::Env env = v.Env();
  if (!v.IsArray()) throw Napi::TypeError::New(env, "stageAdapter(parts): parts must be an array");
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<LoraPartRef> parts(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    if (!arr.Get(i).IsObject()) throw Napi::TypeError::New(env, "stageAdapter: each part must be an object");
    Napi::Object o = arr.Get(i).As<Napi::Object>();
    LoraPartRef& p = parts[i];
    p.layer = static_cast<int>(num_int(o.Get("layer"), "part.layer"));
    p.module = static_cast<int>(num_int(o.Get("module"), "part.module"));
    p.out_offset = num_int(o.Get("outOffset"), "part.outOffset");
    const Napi::Value ev = o.Get("expert");  // a MoE layer's expert (absent: the layer's own module)
    p.expert = ev.IsUndefined() || ev.IsNull() ? -1 : static_cast<int>(num_int(ev, "part.expert"));
    p.rank = num_int(o.Get("rank"), "part.rank");
    p.scale = static_cast<float>(num(o, "scale"));
    if (p.rank <= 0) throw Napi::RangeError::New(env, "stageAdapter: part.rank must be positive");
    // float32 arrays, or Uint16Array bit patterns with `storage` naming their format ('bfloat16' | 'float16').
    const Napi::Value av = o.Get("a"), bv = o.Get("b");
    const auto is_u16 = [](const Napi::Value& v) {
      return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array;
    };
    if (is_u16(av) || is_u16(bv)) {
      if (!is_u16(av) || !is_u16(bv))
        throw Napi::TypeError::New(env, "stageAdapter: part.a and part.b must both be Float32Array or both Uint16Array");
      const std::string storage = o.Get("storage").IsString() ? o.Get("storage").As<Napi::String>().Utf8Value() : "";
      if (storage != "bfloat16" && storage != "float16")
        throw Napi::TypeError::New(env, "stageAdapter: 16-bit parts need storage 'bfloat16' or 'float16'");
      p.data = storage == "bfloat16" ? LoraData::kBF16 : LoraData::kF16;
      auto a = av.As<Napi::Uint16Array>(), b = bv.As<Napi::Uint16Array>();
      p.a = a.Data(), p.a_len = static_cast<int64_t>(a.ElementLength());
      p.b = b.Data(), p.b_len = static_cast<int64_t>(b.ElementLength());
    } else {
      auto a = f32(av, "part.a");
      auto b = f32(bv, "part.b");
      p.a = a.Data(), p.a_len = static_cast<int64_t>(a.ElementLength());
      p.b = b.Data(), p.b_len = static_cast<int64_t>(b.ElementLength());
    }
    p.in = p.a_len / p.rank;
    p.out_len = p.b_len / p.rank;
    const Napi::Value mv = o.Get("mag");  // DoRA's channel scale, float32 [outLen]
    if (!mv.IsUndefined() && !mv.IsNull()) {
      auto m = f32(mv, "part.mag");
      p.mag = m.Data(), p.mag_len = static_cast<int64_t>(m.ElementLength());
    }
  }
  return parts;
}

Napi::Value float_arrays(Napi::Env env, const std::vector<std::vector<float>>& rows) {
  Napi::Array out = Napi::Array::New(env, rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    auto a = Napi::Float32Array::New(env, rows[i].size());
    std::copy(rows[i].begin(), rows[i].end(), a.Data());
    out.Set(static_cast<uint32_t>(i), a);
  }
  return out;
}

Napi::Promise lora_weight_norms_sq_async(Napi::Env env, std::shared_ptr<ModelExecutor> model, const Napi::Value& parts) {
  auto refs = std::make_shared<std::vector<LoraPartRef>>(parse_lora_parts(parts));
  auto keep = std::make_shared<Napi::ObjectReference>(Napi::Persistent(parts.As<Napi::Object>()));
  return queue_call<std::vector<std::vector<float>>>(
      env, [model, refs, keep] { return model->lora_weight_norms_sq(*refs); },
      [](Napi::Env e, std::vector<std::vector<float>>& sums) -> Napi::Value { return float_arrays(e, sums); });
}

Napi::Promise stage_adapter_async(Napi::Env env, std::shared_ptr<ModelExecutor> model, const Napi::Value& parts) {
  auto refs = std::make_shared<std::vector<LoraPartRef>>(parse_lora_parts(parts));
  // The parts (and so their arrays) stay alive until the stage is done; released on the JS thread with the call.
  auto keep = std::make_shared<Napi::ObjectReference>(Napi::Persistent(parts.As<Napi::Object>()));
  return queue_call<std::unique_ptr<StagedAdapter>>(
      env, [model, refs, keep] { return model->stage_adapter(*refs); },
      [model](Napi::Env e, std::unique_ptr<StagedAdapter>& staged) -> Napi::Value {
        return StagedAdapterWrap::Make(e, model, std::move(staged));
      });
}

}  // namespace weft::napi
