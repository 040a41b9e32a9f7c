// Dequantization of quantized checkpoints' weights (shard/models/quantized/dequantize.ts calls these; the kernels
// are kernels/src/cpu/dequant.cc). Every length is checked against the dimensions given, and every group index
// against the groups, so a caller's mistake is an error here, never a read out of bounds.
#include "napi/dequant_wrap.h"

#include "cpu/dequant.h"
#include "napi/util.h"

namespace weft::napi {
namespace {

using Napi::CallbackInfo;
using Napi::Value;

void need(Napi::Env env, bool ok, const char* msg) {
  if (!ok) throw Napi::RangeError::New(env, msg);
}

cpu::DequantWindow window_of(Napi::Env env, const Napi::Value& v, int64_t out_dim, int64_t in_dim) {
  need(env, v.IsObject(), "dequant: window must be {o0, o1, i0, i1}");
  auto o = v.As<Napi::Object>();
  cpu::DequantWindow w{static_cast<int64_t>(num(o, "o0")), static_cast<int64_t>(num(o, "o1")),
                       static_cast<int64_t>(num(o, "i0")), static_cast<int64_t>(num(o, "i1"))};
  need(env, 0 <= w.o0 && w.o0 <= w.o1 && w.o1 <= out_dim && 0 <= w.i0 && w.i0 <= w.i1 && w.i1 <= in_dim,
       "dequant: window outside the weight");
  return w;
}

void need_len(Napi::Env env, const Napi::TypedArray& a, int64_t n, const char* msg) {
  need(env, static_cast<int64_t>(a.ElementLength()) == n, msg);
}

void need_groups(Napi::Env env, const Napi::Int32Array& g_idx, int64_t groups, const char* msg) {
  for (size_t k = 0; k < g_idx.ElementLength(); ++k) need(env, g_idx[k] >= 0 && g_idx[k] < groups, msg);
}

// An optional g_idx (argument v: an Int32Array [in] or null): each column's group, checked against the groups.
const int32_t* group_index(Napi::Env env, const Napi::Value& v, int64_t in_dim, int64_t groups, const char* len_msg, const char* group_msg) {
  if (!v.IsTypedArray()) return nullptr;
  auto g = i32(v, "gIdx");
  need_len(env, g, in_dim, len_msg);
  need_groups(env, g, groups, group_msg);
  return g.Data();
}

Napi::Float32Array window_out(Napi::Env env, const cpu::DequantWindow& w) {
  return Napi::Float32Array::New(env, static_cast<size_t>((w.o1 - w.o0) * (w.i1 - w.i0)));
}

// dequantAwq(qweight, qzeros, scales, outDim, inDim, groupSize, window) -> [o1 - o0, i1 - i0]
Value DequantAwq(const CallbackInfo& info) {
  auto env = info.Env();
  auto qweight = i32(info[0], "qweight"), qzeros = i32(info[1], "qzeros");
  auto scales = f32(info[2], "scales");
  const int64_t out_dim = num_int(info[3], "outDim"), in_dim = num_int(info[4], "inDim"), group = num_int(info[5], "groupSize");
  need(env, out_dim > 0 && out_dim % 8 == 0 && in_dim > 0 && group > 0, "dequantAwq: outDim (a multiple of 8), inDim and groupSize must be positive");
  const int64_t words = out_dim / 8, groups = (in_dim + group - 1) / group;
  need_len(env, qweight, in_dim * words, "dequantAwq: qweight must be [in, out/8]");
  need_len(env, qzeros, groups * words, "dequantAwq: qzeros must be [groups, out/8]");
  need_len(env, scales, groups * out_dim, "dequantAwq: scales must be [groups, out]");
  const auto w = window_of(env, info[6], out_dim, in_dim);
  auto out = window_out(env, w);
  cpu::dequant_awq(qweight.Data(), qzeros.Data(), scales.Data(), out_dim, group, w, out.Data());
  return out;
}

// dequantGptq(qweight, qzeros, scales, gIdx|null, outDim, inDim, bits, groupSize, zeroOffset, window)
Value DequantGptq(const CallbackInfo& info) {
  auto env = info.Env();
  auto qweight = i32(info[0], "qweight"), qzeros = i32(info[1], "qzeros");
  auto scales = f32(info[2], "scales");
  const int64_t out_dim = num_int(info[4], "outDim"), in_dim = num_int(info[5], "inDim");
  const int64_t bits = num_int(info[6], "bits"), group = num_int(info[7], "groupSize"), zero_offset = num_int(info[8], "zeroOffset");
  need(env, bits == 2 || bits == 4 || bits == 8, "dequantGptq: bits must be 2, 4 or 8");
  const int64_t pack = 32 / bits;
  need(env, out_dim > 0 && in_dim > 0 && in_dim % pack == 0 && group > 0 && (zero_offset == 0 || zero_offset == 1),
       "dequantGptq: outDim, inDim (a multiple of 32/bits), groupSize must be positive, zeroOffset 0 or 1");
  need(env, scales.ElementLength() % out_dim == 0, "dequantGptq: scales must be [groups, out]");
  const int64_t groups = static_cast<int64_t>(scales.ElementLength()) / out_dim;
  need_len(env, qweight, (in_dim / pack) * out_dim, "dequantGptq: qweight must be [in/pack, out]");
  need_len(env, qzeros, groups * ((out_dim + pack - 1) / pack), "dequantGptq: qzeros must be [groups, ceil(out/pack)]");
  const int32_t* g_idx = group_index(env, info[3], in_dim, groups, "dequantGptq: gIdx must be [in]", "dequantGptq: gIdx names a group past the scales");
  if (!g_idx) need(env, (in_dim - 1) / group < groups, "dequantGptq: fewer groups in scales than groupSize needs");
  const auto w = window_of(env, info[9], out_dim, in_dim);
  auto out = window_out(env, w);
  cpu::dequant_gptq(qweight.Data(), qzeros.Data(), scales.Data(), g_idx, out_dim, static_cast<int>(bits), group,
                    static_cast<int>(zero_offset), w, out.Data());
  return out;
}

// dequantPacked(packed, scales, groups, colsPerGroup, gIdx|null, zeroPoint|null, outDim, inDim, bits, window)
Value DequantPacked(const CallbackInfo& info) {
  auto env = info.Env();
  auto packed = i32(info[0], "packed");
  auto scales = f32(info[1], "scales");
  const int64_t groups = num_int(info[2], "groups"), cols_per = num_int(info[3], "colsPerGroup");
  const int64_t out_dim = num_int(info[6], "outDim"), in_dim = num_int(info[7], "inDim"), bits = num_int(info[8], "bits");
  need(env, bits == 2 || bits == 4 || bits == 8, "dequantPacked: bits must be 2, 4 or 8");
  need(env, out_dim > 0 && in_dim > 0 && groups > 0 && cols_per > 0, "dequantPacked: dimensions must be positive");
  const int64_t pack = 32 / bits;
  need_len(env, packed, out_dim * ((in_dim + pack - 1) / pack), "dequantPacked: packed must be [out, ceil(in/pack)]");
  need_len(env, scales, out_dim * groups, "dequantPacked: scales must be [out, groups]");
  const int32_t* g_idx = group_index(env, info[4], in_dim, groups, "dequantPacked: gIdx must be [in]", "dequantPacked: gIdx names a group past the scales");
  if (!g_idx) need(env, (in_dim - 1) / cols_per < groups, "dequantPacked: fewer groups than the columns need");
  const int32_t* zp = nullptr;
  if (info[5].IsTypedArray()) {
    auto z = i32(info[5], "zeroPoint");
    need_len(env, z, ((out_dim + pack - 1) / pack) * groups, "dequantPacked: zeroPoint must be [ceil(out/pack), groups]");
    zp = z.Data();
  }
  const auto w = window_of(env, info[9], out_dim, in_dim);
  auto out = window_out(env, w);
  cpu::dequant_packed(packed.Data(), scales.Data(), groups, cols_per, g_idx, zp, in_dim, static_cast<int>(bits), w, out.Data());
  return out;
}

// dequantBnb4(packed Uint8Array, absmax, code, outDim, inDim, blocksize, window)
Value DequantBnb4(const CallbackInfo& info) {
  auto env = info.Env();
  need(env, info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array,
       "dequantBnb4: packed must be a Uint8Array");
  auto packed = info[0].As<Napi::Uint8Array>();
  auto absmax = f32(info[1], "absmax"), code = f32(info[2], "code");
  const int64_t out_dim = num_int(info[3], "outDim"), in_dim = num_int(info[4], "inDim"), blocksize = num_int(info[5], "blocksize");
  need(env, out_dim > 0 && in_dim > 0 && blocksize > 0, "dequantBnb4: dimensions and blocksize must be positive");
  const int64_t n = out_dim * in_dim;
  need_len(env, packed, (n + 1) / 2, "dequantBnb4: packed must hold ceil(out·in/2) bytes");
  need_len(env, absmax, (n + blocksize - 1) / blocksize, "dequantBnb4: absmax must hold one value per block");
  need_len(env, code, 16, "dequantBnb4: code must hold 16 values");
  const auto w = window_of(env, info[6], out_dim, in_dim);
  auto out = window_out(env, w);
  cpu::dequant_bnb4(packed.Data(), absmax.Data(), code.Data(), in_dim, blocksize, w, out.Data());
  return out;
}

bool is_u8(const Napi::Value& v) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
}

// dequantFp4(packed Uint8Array, scales, groups, groupSize, outDim, inDim, window): compressed-tensors NVFP4/MXFP4,
// packed [out, ceil(in/2)], scales [out, groups] already as float32 (NVFP4's divided by the global scale).
Value DequantFp4(const CallbackInfo& info) {
  auto env = info.Env();
  need(env, is_u8(info[0]), "dequantFp4: packed must be a Uint8Array");
  auto packed = info[0].As<Napi::Uint8Array>();
  auto scales = f32(info[1], "scales");
  const int64_t groups = num_int(info[2], "groups"), group = num_int(info[3], "groupSize");
  const int64_t out_dim = num_int(info[4], "outDim"), in_dim = num_int(info[5], "inDim");
  need(env, out_dim > 0 && in_dim > 0 && groups > 0 && group > 0, "dequantFp4: dimensions, groups and groupSize must be positive");
  need(env, (in_dim + group - 1) / group == groups, "dequantFp4: groups must be ceil(inDim / groupSize)");
  need_len(env, packed, out_dim * ((in_dim + 1) / 2), "dequantFp4: packed must be [out, ceil(in/2)] bytes");
  need_len(env, scales, out_dim * groups, "dequantFp4: scales must be [out, groups]");
  const auto w = window_of(env, info[6], out_dim, in_dim);
  auto out = window_out(env, w);
  cpu::dequant_fp4(packed.Data(), scales.Data(), groups, group, in_dim, w, out.Data());
  return out;
}

int64_t grid_field(Napi::Env env, const Napi::Object& o, const char* key) {
  const double v = num(o, key);
  need(env, v >= 1 && v <= 9.0e15 && v == static_cast<double>(static_cast<int64_t>(v)), "dequantUnpacked: a grid's rowsPer, cols and colsPer must be positive integers");
  return static_cast<int64_t>(v);
}

// A {data, rowsPer, cols, colsPer} grid over [out, in]: data holds ceil(out/rowsPer) rows of cols, enough for in.
cpu::DequantGrid grid_of(Napi::Env env, const Napi::Object& g, int64_t data_len, int64_t out_dim, int64_t in_dim, const char* msg) {
  const cpu::DequantGrid grid{grid_field(env, g, "rowsPer"), grid_field(env, g, "cols"), grid_field(env, g, "colsPer")};
  need(env, data_len == ((out_dim + grid.rows_per - 1) / grid.rows_per) * grid.cols &&
            (in_dim + grid.cols_per - 1) / grid.cols_per <= grid.cols, msg);
  return grid;
}

// dequantUnpacked(values Uint8Array|Float32Array, table Float32Array(256)|null, inDim, scale {data Float32Array,
// rowsPer, cols, colsPer}, zeroPoint {data Int32Array, ...}|null, post, outDim, window): the window's rows of an
// FP8/int8 weight (bytes decoded through the table) or of float values, ((v − zero) × scale) × post.
Value DequantUnpacked(const CallbackInfo& info) {
  auto env = info.Env();
  const int64_t in_dim = num_int(info[2], "inDim"), out_dim = num_int(info[6], "outDim");
  need(env, out_dim > 0 && in_dim > 0, "dequantUnpacked: outDim and inDim must be positive");
  const auto w = window_of(env, info[7], out_dim, in_dim);
  const int64_t n = (w.o1 - w.o0) * in_dim;
  const uint8_t* codes = nullptr;
  const float* table = nullptr;
  const float* values = nullptr;
  if (is_u8(info[0])) {
    auto c = info[0].As<Napi::Uint8Array>();
    need_len(env, c, n, "dequantUnpacked: values must hold the window's rows [o1 - o0, in]");
    auto t = f32(info[1], "table");
    need_len(env, t, 256, "dequantUnpacked: table must hold 256 values (one per byte)");
    codes = c.Data();
    table = t.Data();
  } else {
    auto v = f32(info[0], "values (a Uint8Array of codes or a Float32Array)");
    need_len(env, v, n, "dequantUnpacked: values must hold the window's rows [o1 - o0, in]");
    need(env, !info[1].IsTypedArray(), "dequantUnpacked: float values take no table");
    values = v.Data();
  }
  need(env, info[3].IsObject(), "dequantUnpacked: scale must be {data, rowsPer, cols, colsPer}");
  auto so = info[3].As<Napi::Object>();
  auto scale = f32(so.Get("data"), "scale.data");
  const auto sg = grid_of(env, so, static_cast<int64_t>(scale.ElementLength()), out_dim, in_dim,
                          "dequantUnpacked: scale.data must be [ceil(out/rowsPer), cols] with cols covering in/colsPer");
  const int32_t* zero = nullptr;
  cpu::DequantGrid zg{1, 1, 1};
  if (info[4].IsObject()) {
    auto zo = info[4].As<Napi::Object>();
    auto z = i32(zo.Get("data"), "zeroPoint.data");
    zg = grid_of(env, zo, static_cast<int64_t>(z.ElementLength()), out_dim, in_dim,
                 "dequantUnpacked: zeroPoint.data must be [ceil(out/rowsPer), cols] with cols covering in/colsPer");
    zero = z.Data();
  } else {
    need(env, info[4].IsNull() || info[4].IsUndefined(), "dequantUnpacked: zeroPoint must be a grid or null");
  }
  need(env, info[5].IsNumber(), "dequantUnpacked: post must be a number");
  const float post = static_cast<float>(info[5].As<Napi::Number>().DoubleValue());
  auto out = window_out(env, w);
  cpu::dequant_unpacked(codes, table, values, in_dim, scale.Data(), sg, zero, zg, post, w, out.Data());
  return out;
}

}  // namespace

void define_dequant_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("dequantAwq", Napi::Function::New(env, DequantAwq));
  ops.Set("dequantGptq", Napi::Function::New(env, DequantGptq));
  ops.Set("dequantPacked", Napi::Function::New(env, DequantPacked));
  ops.Set("dequantBnb4", Napi::Function::New(env, DequantBnb4));
  ops.Set("dequantFp4", Napi::Function::New(env, DequantFp4));
  ops.Set("dequantUnpacked", Napi::Function::New(env, DequantUnpacked));
}

}  // namespace weft::napi
