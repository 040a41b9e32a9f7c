// Op-level entry points of the CPU backend, for unit tests that compare each op with a naive TS
// reference (and, later, the CUDA backend with the CPU one). Inputs are copied; outputs are new arrays.
#include <napi.h>

#include <cstring>

#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "napi/dequant_wrap.h"
#include "napi/util.h"

namespace weft::napi {
namespace {

using Napi::CallbackInfo;
using Napi::Value;

Napi::Float32Array copy_of(Napi::Env env, const float* p, size_t n) {
  auto out = Napi::Float32Array::New(env, n);
  std::copy(p, p + n, out.Data());
  return out;
}

void need(Napi::Env env, bool ok, const char* msg) {
  if (!ok) throw Napi::RangeError::New(env, msg);
}

// gemm(x, tokens, in, w, out, bias|null) -> y [tokens, out]
Value Gemm(const CallbackInfo& info) {
  auto env = info.Env();
  auto x = f32(info[0], "x");
  const int64_t T = num_int(info[1], "tokens"), in = num_int(info[2], "in");
  auto w = f32(info[3], "w");
  const int64_t out = num_int(info[4], "out");
  need(env, T > 0 && in > 0 && out > 0 && T <= (int64_t(1) << 31) && out <= (int64_t(1) << 31),
       "gemm: tokens, in and out must be positive (and below 2^31)");
  need(env, static_cast<int64_t>(x.ElementLength()) == T * in && static_cast<int64_t>(w.ElementLength()) == out * in,
       "gemm: x must be [tokens, in] and w [out, in]");
  const float* bias = nullptr;
  if (info[5].IsTypedArray()) {
    auto b = f32(info[5], "bias");
    need(env, static_cast<int64_t>(b.ElementLength()) == out, "gemm: bias must be [out]");
    bias = b.Data();
  }
  auto y = Napi::Float32Array::New(env, T * out);
  cpu::gemm_xwt(x.Data(), T, in, w.Data(), out, bias, y.Data(), false);
  return y;
}

Value RmsNorm(const CallbackInfo& info) {
  auto env = info.Env();
  auto x = f32(info[0], "x");
  auto w = f32(info[1], "weight");
  const int64_t H = static_cast<int64_t>(w.ElementLength());
  need(env, H > 0 && x.ElementLength() % H == 0, "rmsNorm: x must be [tokens, hidden]");
  auto y = Napi::Float32Array::New(env, x.ElementLength());
  cpu::rms_norm(x.Data(), static_cast<int64_t>(x.ElementLength()) / H, H, w.Data(),
                static_cast<float>(info[2].ToNumber().DoubleValue()), y.Data());
  return y;
}

Value LayerNorm(const CallbackInfo& info) {
  auto env = info.Env();
  auto x = f32(info[0], "x");
  auto w = f32(info[1], "weight");
  auto b = f32(info[2], "bias");
  const int64_t H = static_cast<int64_t>(w.ElementLength());
  need(env, H > 0 && x.ElementLength() % H == 0 && b.ElementLength() == w.ElementLength(),
       "layerNorm: x must be [tokens, hidden], weight and bias [hidden]");
  auto y = Napi::Float32Array::New(env, x.ElementLength());
  cpu::layer_norm(x.Data(), static_cast<int64_t>(x.ElementLength()) / H, H, w.Data(), b.Data(),
                  static_cast<float>(info[3].ToNumber().DoubleValue()), y.Data());
  return y;
}

// rope(x [tokens, heads, headDim], heads, headDim, rotaryDim, positions, invFreq, attentionFactor) -> rotated copy
Value Rope(const CallbackInfo& info) {
  auto env = info.Env();
  auto x = f32(info[0], "x");
  const int64_t heads = num_int(info[1], "heads"), hd = num_int(info[2], "headDim"), rd = num_int(info[3], "rotaryDim");
  auto pos = i32(info[4], "positions");
  auto inv = f32(info[5], "invFreq");
  const int64_t T = static_cast<int64_t>(pos.ElementLength());
  need(env, static_cast<int64_t>(x.ElementLength()) == T * heads * hd && rd % 2 == 0 && rd <= hd &&
                static_cast<int64_t>(inv.ElementLength()) == rd / 2,
       "rope: x must be [tokens, heads, headDim], invFreq [rotaryDim/2]");
  auto y = copy_of(env, x.Data(), x.ElementLength());
  cpu::rope_rotate_half(y.Data(), T, heads, hd, rd, pos.Data(), inv.Data(),
                        static_cast<float>(info[6].ToNumber().DoubleValue()));
  return y;
}

Value SiluMul(const CallbackInfo& info) {
  auto g = f32(info[0], "gate");
  auto u = f32(info[1], "up");
  need(info.Env(), g.ElementLength() == u.ElementLength(), "siluMul: gate and up must have equal length");
  auto y = Napi::Float32Array::New(info.Env(), g.ElementLength());
  cpu::silu_mul(g.Data(), u.Data(), y.Data(), static_cast<int64_t>(g.ElementLength()));
  return y;
}

Value Gelu(const CallbackInfo& info) {
  auto x = f32(info[0], "x");
  auto y = copy_of(info.Env(), x.Data(), x.ElementLength());
  const std::string kind = info[1].ToString().Utf8Value();
  if (kind == "tanh") cpu::gelu_tanh(y.Data(), static_cast<int64_t>(y.ElementLength()));
  else cpu::gelu_erf(y.Data(), static_cast<int64_t>(y.ElementLength()));
  return y;
}

// pagedAttention(q [T, heads, hd], heads, kvHeads, hd, seqs[{tokenStart,numTokens,contextLen,blockTable}],
//                kCache, vCache, blockSize, scale, slidingWindow) -> out [T, heads, hd]
Value PagedAttention(const CallbackInfo& info) {
  auto env = info.Env();
  auto q = f32(info[0], "q");
  const int64_t heads = num_int(info[1], "heads"), kvh = num_int(info[2], "kvHeads"), hd = num_int(info[3], "headDim");
  Napi::Array seqs = info[4].As<Napi::Array>();
  auto kc = f32(info[5], "kCache");
  auto vc = f32(info[6], "vCache");
  const int64_t bs = num_int(info[7], "blockSize");
  need(env, heads > 0 && kvh > 0 && hd > 0 && bs > 0, "pagedAttention: heads, kvHeads, headDim and blockSize must be positive");
  const int64_t cache_slots = static_cast<int64_t>(kc.ElementLength()) / (kvh * hd);
  need(env, kc.ElementLength() == vc.ElementLength() && heads % kvh == 0, "pagedAttention: bad cache or head counts");
  std::vector<std::vector<int32_t>> tables;
  std::vector<cpu::AttentionSeq> att;
  const int64_t T = static_cast<int64_t>(q.ElementLength()) / (heads * hd);
  for (uint32_t i = 0; i < seqs.Length(); ++i) {
    Napi::Object s = seqs.Get(i).As<Napi::Object>();
    tables.push_back(i32vec(s.Get("blockTable"), "blockTable"));
    cpu::AttentionSeq a{static_cast<int64_t>(num(s, "tokenStart")), static_cast<int64_t>(num(s, "numTokens")),
                        static_cast<int64_t>(num(s, "contextLen")), nullptr};
    need(env, a.token_start >= 0 && a.num_tokens >= 0 && a.token_start + a.num_tokens <= T && a.context_len >= a.num_tokens &&
                  static_cast<int64_t>(tables.back().size()) * bs >= a.context_len,
         "pagedAttention: sequence rows/context out of range");
    for (int32_t b : tables.back())
      need(env, b >= 0 && (static_cast<int64_t>(b) + 1) * bs <= cache_slots, "pagedAttention: block out of range");
    att.push_back(a);
  }
  for (size_t i = 0; i < att.size(); ++i) att[i].block_table = tables[i].data();
  auto out = Napi::Float32Array::New(env, q.ElementLength());
  std::fill(out.Data(), out.Data() + out.ElementLength(), 0.0f);
  cpu::paged_attention(q.Data(), heads, kvh, hd, att.data(), static_cast<int64_t>(att.size()), kc.Data(), vc.Data(), bs,
                       static_cast<float>(info[8].ToNumber().DoubleValue()), num_int(info[9], "slidingWindow"),
                       out.Data());
  return out;
}

// lora(x [T, in], A [rank, in], B [outLen, rank], scale, y [T, yStride], outOffset) -> y + delta (copy)
Value Lora(const CallbackInfo& info) {
  auto env = info.Env();
  auto x = f32(info[0], "x");
  auto a = f32(info[1], "A");
  auto b = f32(info[2], "B");
  const float scale = static_cast<float>(info[3].ToNumber().DoubleValue());
  auto y0 = f32(info[4], "y");
  const int64_t stride = num_int(info[5], "yStride"), off = num_int(info[6], "outOffset"), rank = num_int(info[7], "rank");
  need(env, rank > 0 && a.ElementLength() % rank == 0 && b.ElementLength() % rank == 0, "lora: A/B not divisible by rank");
  const int64_t in = static_cast<int64_t>(a.ElementLength()) / rank, out_len = static_cast<int64_t>(b.ElementLength()) / rank;
  need(env, in > 0 && x.ElementLength() % in == 0, "lora: x must be [tokens, in]");
  const int64_t T = static_cast<int64_t>(x.ElementLength()) / in;
  need(env, static_cast<int64_t>(y0.ElementLength()) == T * stride && off >= 0 && off + out_len <= stride,
       "lora: y must be [tokens, yStride] with room for outOffset + outLen");
  auto y = copy_of(env, y0.Data(), y0.ElementLength());
  cpu::lora_shrink_expand(x.Data(), 0, T, in, a.Data(), b.Data(), rank, out_len, scale, y.Data(), stride, off);
  return y;
}


// loraWeightNormsSq(W [rows, in], A [rank, in], B [rows, rank], rank, scale) -> DoRA's squared row norms [rows]
Value LoraWeightNormsSq(const CallbackInfo& info) {
  auto env = info.Env();
  auto w = f32(info[0], "W");
  auto a = f32(info[1], "A");
  auto b = f32(info[2], "B");
  const int64_t rank = num_int(info[3], "rank");
  const float scale = static_cast<float>(info[4].ToNumber().DoubleValue());
  need(env, rank > 0 && a.ElementLength() % rank == 0 && b.ElementLength() % rank == 0, "loraWeightNormsSq: A/B not divisible by rank");
  const int64_t in = static_cast<int64_t>(a.ElementLength()) / rank, rows = static_cast<int64_t>(b.ElementLength()) / rank;
  need(env, static_cast<int64_t>(w.ElementLength()) == rows * in, "loraWeightNormsSq: W must be [rows, in]");
  auto out = Napi::Float32Array::New(env, static_cast<size_t>(rows));
  cpu::lora_weight_norms_sq(w.Data(), rows, in, a.Data(), b.Data(), rank, scale, out.Data());
  return out;
}

// doraScale(y [T, yStride], yStride, outOffset, mag [outLen], bias [outLen] | null) -> y scaled (copy)
Value DoraScale(const CallbackInfo& info) {
  auto env = info.Env();
  auto y0 = f32(info[0], "y");
  const int64_t stride = num_int(info[1], "yStride"), off = num_int(info[2], "outOffset");
  auto mag = f32(info[3], "mag");
  const int64_t len = static_cast<int64_t>(mag.ElementLength());
  const float* bias = nullptr;
  if (!info[4].IsNull() && !info[4].IsUndefined()) {
    auto b = f32(info[4], "bias");
    need(env, static_cast<int64_t>(b.ElementLength()) == len, "doraScale: bias must have mag's length");
    bias = b.Data();
  }
  need(env, stride > 0 && y0.ElementLength() % stride == 0 && off >= 0 && off + len <= stride,
       "doraScale: y must be [tokens, yStride] with room for outOffset + mag's length");
  auto y = copy_of(env, y0.Data(), y0.ElementLength());
  cpu::dora_scale(y.Data(), 0, static_cast<int64_t>(y0.ElementLength()) / stride, stride, off, len, mag.Data(), bias);
  return y;
}

}  // namespace

// sample(logits [vocab], params, penaltyTokens Int32Array, topN) -> {token, logprob, top: [[token, logprob], ...]}
// Exported for the shard's step loop as well as tests.
Value Sample(const CallbackInfo& info) {
  auto env = info.Env();
  auto logits = f32(info[0], "logits");
  if (!info[1].IsObject()) throw Napi::TypeError::New(env, "sample: params must be an object");
  auto pen = i32(info[2], "penaltyTokens");
  const int32_t top_n = static_cast<int32_t>(num_int(info[3], "topN"));
  need(env, logits.ElementLength() > 0, "sample: empty logits");
  auto r = cpu::sample_token(logits.Data(), static_cast<int64_t>(logits.ElementLength()),
                             sampling_params(info[1].As<Napi::Object>()), pen.Data(),
                             static_cast<int64_t>(pen.ElementLength()), top_n);
  return sample_result(env, r);
}

// logSoftmaxAt(logits [vocab], token) -> number
Value LogSoftmaxAt(const CallbackInfo& info) {
  auto logits = f32(info[0], "logits");
  const int64_t t = num_int(info[1], "token");
  need(info.Env(), t >= 0 && t < static_cast<int64_t>(logits.ElementLength()), "logSoftmaxAt: token out of range");
  return Napi::Number::New(info.Env(), cpu::log_softmax_at(logits.Data(), static_cast<int64_t>(logits.ElementLength()),
                                                           static_cast<int32_t>(t)));
}

// parallelCopy(dst Uint8Array, src Uint8Array): memcpy split over the CPU pool's threads, the copy rate the
// CPU backend's decode bound divides by (the pool reads weights with the same threads).
Value ParallelCopy(const CallbackInfo& info) {
  auto env = info.Env();
  need(env, info[0].IsTypedArray() && info[1].IsTypedArray(), "parallelCopy: dst and src must be Uint8Arrays");
  auto dst = info[0].As<Napi::Uint8Array>();
  auto src = info[1].As<Napi::Uint8Array>();
  need(env, dst.ElementLength() == src.ElementLength(), "parallelCopy: dst and src must have the same length");
  uint8_t* d = dst.Data();
  const uint8_t* s = src.Data();
  cpu::parallel_for(static_cast<int64_t>(src.ElementLength()), int64_t{1} << 20, [&](int64_t b, int64_t e) {
    std::memcpy(d + b, s + b, static_cast<size_t>(e - b));
  });
  return env.Undefined();
}

// decodeHalf(src Uint16Array, bf16 boolean, out Float32Array, outOffset) : src's fp16/bf16 bit patterns as
// float32 into out[outOffset ...], on the CPU pool's threads (the weight loader's bulk conversion).
Value DecodeHalf(const CallbackInfo& info) {
  auto env = info.Env();
  need(env, info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array,
       "decodeHalf: src must be a Uint16Array");
  auto src = info[0].As<Napi::Uint16Array>();
  auto out = f32(info[2], "out");
  const int64_t off = num_int(info[3], "outOffset");
  const int64_t n = static_cast<int64_t>(src.ElementLength());
  need(env, off >= 0 && off + n <= static_cast<int64_t>(out.ElementLength()), "decodeHalf: out is too short for src at outOffset");
  cpu::half_to_float(src.Data(), n, info[1].ToBoolean().Value(), out.Data() + off);
  return env.Undefined();
}

// encodeHalf(src Float32Array, bf16 boolean, out Uint16Array) : src rounded (nearest even) to fp16/bf16 bit
// patterns, on the CPU pool's threads (LoRA parts planned for a 16-bit GPU shard).
Value EncodeHalf(const CallbackInfo& info) {
  auto env = info.Env();
  auto src = f32(info[0], "src");
  need(env, info[2].IsTypedArray() && info[2].As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array,
       "encodeHalf: out must be a Uint16Array");
  auto out = info[2].As<Napi::Uint16Array>();
  need(env, out.ElementLength() == src.ElementLength(), "encodeHalf: out must have src's length");
  cpu::float_to_half(src.Data(), static_cast<int64_t>(src.ElementLength()), info[1].ToBoolean().Value(), out.Data());
  return env.Undefined();
}

// cpuThreads() -> the CPU pool's thread count (set by the last CPU model created; 1 before any).
Value CpuThreads(const CallbackInfo& info) { return Napi::Number::New(info.Env(), cpu::num_threads()); }

Napi::Object define_ops(Napi::Env env) {
  Napi::Object ops = Napi::Object::New(env);
  ops.Set("gemm", Napi::Function::New(env, Gemm));
  ops.Set("rmsNorm", Napi::Function::New(env, RmsNorm));
  ops.Set("layerNorm", Napi::Function::New(env, LayerNorm));
  ops.Set("rope", Napi::Function::New(env, Rope));
  ops.Set("siluMul", Napi::Function::New(env, SiluMul));
  ops.Set("gelu", Napi::Function::New(env, Gelu));
  ops.Set("pagedAttention", Napi::Function::New(env, PagedAttention));
  ops.Set("lora", Napi::Function::New(env, Lora));
  ops.Set("loraWeightNormsSq", Napi::Function::New(env, LoraWeightNormsSq));
  ops.Set("doraScale", Napi::Function::New(env, DoraScale));
  ops.Set("sample", Napi::Function::New(env, Sample));
  ops.Set("logSoftmaxAt", Napi::Function::New(env, LogSoftmaxAt));
  ops.Set("parallelCopy", Napi::Function::New(env, ParallelCopy));
  ops.Set("cpuThreads", Napi::Function::New(env, CpuThreads));
  ops.Set("decodeHalf", Napi::Function::New(env, DecodeHalf));
  ops.Set("encodeHalf", Napi::Function::New(env, EncodeHalf));
  define_dequant_ops(env, ops);
  return ops;
}

}  // namespace weft::napi
