// Small helpers for reading validated arguments out of N-API values. These checks are what keeps the
// C++ safe: callers from JS get a thrown Error naming the argument, never a crash.
#pragma once
#include "cpu/ops.h"
#include <napi.h>

#include <exception>
#include <string>
#include <vector>

namespace weft::napi {

inline Napi::Float32Array f32(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Float32Array");
  return v.As<Napi::Float32Array>();
}

inline Napi::Int32Array i32(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an Int32Array");
  return v.As<Napi::Int32Array>();
}

inline std::vector<int32_t> i32vec(const Napi::Value& v, const char* what) {
  auto a = i32(v, what);
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

inline double num(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("'") + key + "' must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline double num_or(const Napi::Object& o, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() || v.IsNull() ? dflt : num(o, key);
}

inline std::string str(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string("'") + key + "' must be a string");
  return v.As<Napi::String>().Utf8Value();
}

inline int64_t num_int(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a number");
  return v.As<Napi::Number>().Int64Value();
}

// SamplingOptions (kernels/index.ts) -> cpu::SamplingParams.
inline cpu::SamplingParams sampling_params(const Napi::Object& o) {
  cpu::SamplingParams p;
  p.temperature = static_cast<float>(num_or(o, "temperature", 1.0));
  // Clamped before the cast (a double past int32's range cast to it is undefined behaviour); any k at least the
  // vocabulary keeps every token, so the clamp changes nothing the HTTP layer lets through.
  const double top_k = num_or(o, "topK", 0);
  p.top_k = top_k >= 2147483647.0 ? 2147483647 : top_k > 0 ? static_cast<int32_t>(top_k) : 0;  // NaN: 0 (off)
  p.top_p = static_cast<float>(num_or(o, "topP", 1.0));
  p.typical_p = static_cast<float>(num_or(o, "typicalP", 1.0));
  p.min_p = static_cast<float>(num_or(o, "minP", 0.0));
  p.repetition_penalty = static_cast<float>(num_or(o, "repetitionPenalty", 1.0));
  p.frequency_penalty = static_cast<float>(num_or(o, "frequencyPenalty", 0.0));
  p.presence_penalty = static_cast<float>(num_or(o, "presencePenalty", 0.0));
  const Napi::Value bias = o.Get("logitBias");
  if (bias.IsArray()) {
    const Napi::Array a = bias.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      const Napi::Value e = a.Get(i);
      if (!e.IsObject()) throw Napi::TypeError::New(o.Env(), "logitBias entries must be {token, bias} objects");
      const Napi::Object eo = e.As<Napi::Object>();
      p.logit_bias.emplace_back(static_cast<int32_t>(num_or(eo, "token", -1)), static_cast<float>(num_or(eo, "bias", 0.0)));
    }
  }
  const Napi::Value mask = o.Get("allowedMask");
  if (mask.IsTypedArray()) {
    const Napi::Uint8Array m = mask.As<Napi::Uint8Array>();
    p.allowed_mask.assign(m.Data(), m.Data() + m.ElementLength());
  } else if (!mask.IsUndefined() && !mask.IsNull()) {
    throw Napi::TypeError::New(o.Env(), "allowedMask must be a Uint8Array");
  }
  p.do_sample = o.Get("doSample").ToBoolean().Value();
  p.seed = static_cast<uint64_t>(num_or(o, "seed", 0));
  p.draw_index = static_cast<uint64_t>(num_or(o, "drawIndex", 0));
  return p;
}

// cpu::SampleResult -> {token, logprob, top: [[token, logprob], ...]} (SampleResult in kernels/index.ts).
inline Napi::Object sample_result(Napi::Env env, const cpu::SampleResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("token", r.token);
  o.Set("logprob", r.logprob);
  Napi::Array top = Napi::Array::New(env, r.top.size());
  for (size_t i = 0; i < r.top.size(); ++i) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, r.top[i].first);
    pair.Set(1u, r.top[i].second);
    top.Set(static_cast<uint32_t>(i), pair);
  }
  o.Set("top", top);
  return o;
}

// Runs f, turning a C++ exception into a JS Error with its message (a Napi::Error passes through as it is).
template <typename F>
void guard(Napi::Env env, F&& f) {
  try {
    f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace weft::napi
