// Small helpers for reading validated arguments out of N-API values. These checks are what keeps the
// C++ safe: callers from JS get a thrown Error naming the argument, never a crash.
#pragma once
#include <napi.h>

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

}  // namespace weft::napi
