// The decode rows' LoRA expand folded into the op after the projection (WEFT_LORA_EXPAND_INTO_NEXT=1) against the
// two kernels it replaces: add_norm_lora (o, down) vs lora_bgmv_expand + add_norm, silu_mul_lora (gate/up, two
// slices) vs lora_bgmv_expand + silu_mul, and rope_kv_cache_write_lora (qkv: three slices of two lengths, full and
// partial rotary) vs lora_bgmv_expand + rope_kv_cache_write. Prefill rows before the BGMV rows (no delta of theirs), rows without an
// adapter (entry -1) and an entry without weights keep the plain op's result bit for bit; ranks 16 (16-byte B
// path) and 12 (element path); RMS and LayerNorm; bf16, fp16, fp32. Results must agree within the dtype's
// tolerance (the sum is the expand's order; the compiler may contract differently in the two kernels).
#include <algorithm>
#include <cmath>

#include "harness.h"

namespace gt {
namespace {
namespace wc = weft::cuda;

// A module's BGMV args for the last `entries.size()` rows of a step: slices of lens[s] outputs, one after another,
// E entries whose ranks are ranks[s·E + e] (entries from `weighted` on have no weights), random A (unused: h is
// given) and B, scales 0.75, the decode rows' h random. y is set by the caller.
struct FoldedLora {
  std::vector<DevBuf> bufs;
  wc::LoraArgs args{};
};
FoldedLora folded_lora(DType d, const std::vector<int64_t>& slice_lens, int E, int weighted,
                       const std::vector<int32_t>& ranks, const std::vector<int32_t>& entries, int max_rank,
                       std::mt19937& rng) {
  FoldedLora f;
  const int S = static_cast<int>(slice_lens.size());
  const int64_t n = static_cast<int64_t>(entries.size());
  std::vector<const void*> ap(S * E, nullptr), bp(S * E, nullptr);
  for (int s = 0; s < S; ++s)
    for (int e = 0; e < weighted; ++e) {
      const int i = s * E + e;
      f.bufs.push_back(upload(randn(static_cast<size_t>(ranks[i]) * 8, rng, 0.05f, d), d));
      ap[i] = f.bufs.back().get();
      f.bufs.push_back(upload(randn(static_cast<size_t>(slice_lens[s]) * ranks[i], rng, 0.1f, d), d));
      bp[i] = f.bufs.back().get();
    }
  std::vector<int32_t> offs(S), lens(S);
  int64_t longest = 0;
  for (int s = 0, at = 0; s < S; at += static_cast<int>(slice_lens[s]), ++s) {
    offs[s] = at;
    lens[s] = static_cast<int32_t>(slice_lens[s]);
    longest = std::max(longest, slice_lens[s]);
  }
  auto keep = [&](DevBuf b) {
    f.bufs.push_back(std::move(b));
    return f.bufs.back().get();
  };
  wc::LoraArgs& a = f.args;
  a.dtype = d;
  a.tokens = static_cast<int32_t>(n);
  a.in = 8;
  a.x = keep(DevBuf(16));  // not read: h is given
  a.x_stride = 8;
  a.h = static_cast<float*>(keep(upload(randn(S * n * max_rank, rng, 1.0f), DType::kF32)));
  a.num_slices = S;
  a.out_offset = static_cast<const int32_t*>(keep(upload_vec(offs)));
  a.out_len = static_cast<const int32_t*>(keep(upload_vec(lens)));
  a.max_out_len = static_cast<int32_t>(longest);
  a.num_entries = E;
  a.a = static_cast<const void* const*>(keep(upload_vec(ap)));
  a.b = static_cast<const void* const*>(keep(upload_vec(bp)));
  a.rank = static_cast<const int32_t*>(keep(upload_vec(ranks)));
  a.scale = static_cast<const float*>(keep(upload_vec(std::vector<float>(S * E, 0.75f))));
  a.max_rank = max_rank;
  a.token_entry = static_cast<const int32_t*>(keep(upload_vec(entries)));
  return f;
}

void norm_lora_case(DType d, bool rms, std::mt19937& rng) {
  const std::string name = std::string("add_norm_lora ") + (rms ? "rms " : "layer ") + dname(d);
  guard(name, [&] {
    const int64_t H = 1024, first = 2, T = 9;  // 2 prefill rows, 7 decode rows
    const std::vector<int32_t> entries = {0, 1, -1, 0, 2, 1, 0};  // entry 2 has no weights
    const auto h = randn(T * H, rng, 2.0f), delta = randn(T * H, rng, 1.0f, d);
    const auto w = randn(H, rng, 1.0f, d), bias = randn(H, rng, 1.0f, d);
    FoldedLora f = folded_lora(d, {H}, 3, 2, {16, 12, 16}, entries, 16, rng);
    DevBuf h1 = upload(h, DType::kF32), h2 = upload(h, DType::kF32), d1 = upload(delta, d), d2 = upload(delta, d),
           dw = upload(w, d), db = upload(bias, d), o1(T * H * dsize(d)), o2(T * H * dsize(d));
    wc::LoraArgs& a = f.args;
    a.y = d1.as<char>() + first * H * dsize(d);
    a.y_stride = H;
    // The two kernels: expand into delta's decode rows, then add + norm.
    CK(wc::lora_bgmv_expand_no_pdl(a, nullptr));
    CK(wc::add_norm(h1.as<float>(), d1.get(), d, T, H, rms, dw.get(), rms ? nullptr : db.get(), d, 1e-5f, o1.get(), d,
                    nullptr));
    // The fused one, on an untouched delta.
    CK(wc::add_norm_lora(h2.as<float>(), d2.get(), d, T, H, rms, dw.get(), rms ? nullptr : db.get(), d, 1e-5f,
                         o2.get(), d, a, nullptr));
    const auto eh1 = download(h1.get(), h.size(), DType::kF32), eh2 = download(h2.get(), h.size(), DType::kF32);
    const auto eo1 = download(o1.get(), h.size(), d), eo2 = download(o2.get(), h.size(), d);
    expect_close(name + ": h", eh2, eh1, tol_for(d));
    expect_close(name + ": out", eo2, eo1, tol_for(d));
    // Rows the LoRA does not touch (prefill rows, entry -1, the entry without weights) are add_norm's bit for bit.
    bool same = true;
    for (int64_t t = 0; t < T; ++t) {
      const bool touched = t >= first && (entries[t - first] == 0 || entries[t - first] == 1);
      if (touched) continue;
      for (int64_t i = 0; i < H; ++i) same = same && eh1[t * H + i] == eh2[t * H + i] && eo1[t * H + i] == eo2[t * H + i];
    }
    expect(name + ": rows without an adapter", same, "differ from add_norm's");
  });
}

void silu_lora_case(DType d, std::mt19937& rng) {
  const std::string name = std::string("silu_mul_lora ") + dname(d);
  guard(name, [&] {
    const int64_t I = 688, first = 2, T = 9;  // 2 prefill rows, 7 decode rows
    const std::vector<int32_t> entries = {0, 1, -1, 0, 2, 1, 0};  // entry 2 has no weights
    const auto gu = randn(T * 2 * I, rng, 1.0f, d);
    FoldedLora f = folded_lora(d, {I, I}, 3, 2, {16, 12, 16, 16, 12, 16}, entries, 16, rng);
    DevBuf g1 = upload(gu, d), g2 = upload(gu, d), o1(T * I * dsize(d)), o2(T * I * dsize(d));
    wc::LoraArgs& a = f.args;
    a.y = g1.as<char>() + first * 2 * I * dsize(d);
    a.y_stride = 2 * I;
    CK(wc::lora_bgmv_expand_no_pdl(a, nullptr));
    CK(wc::silu_mul(g1.get(), 2 * I, o1.get(), I, T, I, d, nullptr));
    CK(wc::silu_mul_lora(g2.get(), 2 * I, o2.get(), I, T, I, d, a, nullptr));
    const auto e1 = download(o1.get(), T * I, d), e2 = download(o2.get(), T * I, d);
    expect_close(name, e2, e1, tol_for(d));
    bool same = true;
    for (int64_t t = 0; t < T; ++t) {
      if (t >= first && (entries[t - first] == 0 || entries[t - first] == 1)) continue;
      for (int64_t i = 0; i < I; ++i) same = same && e1[t * I + i] == e2[t * I + i];
    }
    expect(name + ": rows without an adapter", same, "differ from silu_mul's");
  });
}

void rope_kv_lora_case(DType d, int64_t rot, std::mt19937& rng) {
  const std::string name = std::string("rope_kv_cache_write_lora ") + dname(d) + " rotary " + std::to_string(rot);
  guard(name, [&] {
    const int64_t qh = 4, kh = 2, hd = 64, first = 2, T = 9, slots = 32;  // 2 prefill rows, 7 decode rows
    const int64_t q_dim = qh * hd, kv_dim = kh * hd, stride = q_dim + 2 * kv_dim;
    // entry 2 has no weights; row 4 (entry 0) has no cache slot (a padding row's slot): its q still takes the delta
    const std::vector<int32_t> entries = {0, 1, 0, -1, 2, 1, 0};
    const std::vector<int32_t> pos = {3, 4, 17, 600, 5, 2047, 9, 40, 1}, map = {0, 1, 5, 9, -1, 30, 12, 7, 20};
    std::vector<float> inv(rot / 2);
    for (int64_t i = 0; i < rot / 2; ++i) inv[i] = 1.0f / std::pow(10000.0f, static_cast<float>(2 * i) / rot);
    const auto src = randn(T * stride, rng, 1.0f, d);
    const auto kc = randn(slots * kv_dim, rng, 1.0f, d), vc = randn(slots * kv_dim, rng, 1.0f, d);
    FoldedLora f = folded_lora(d, {q_dim, kv_dim, kv_dim}, 3, 2, {16, 12, 16, 16, 12, 16, 8, 16, 16}, entries, 16, rng);
    DevBuf s1 = upload(src, d), s2 = upload(src, d), k1 = upload(kc, d), k2 = upload(kc, d), v1 = upload(vc, d),
           v2 = upload(vc, d), dpos = upload_vec(pos), dmap = upload_vec(map), dinv = upload(inv, DType::kF32);
    const size_t es = dsize(d);
    char* a1 = s1.as<char>();
    char* a2 = s2.as<char>();
    wc::LoraArgs& a = f.args;
    a.y = a1 + first * stride * es;
    a.y_stride = stride;
    // The two kernels: expand into the decode rows' q|k|v, then RoPE + KV write.
    CK(wc::lora_bgmv_expand_no_pdl(a, nullptr));
    CK(wc::rope_kv_cache_write(a1, qh, a1 + q_dim * es, a1 + (q_dim + kv_dim) * es, kh, stride, d, T, hd, rot,
                               dpos.as<int32_t>(), dinv.as<float>(), 1.0f, dmap.as<int32_t>(), k1.get(), v1.get(),
                               nullptr));
    // The fused one, on untouched rows.
    CK(wc::rope_kv_cache_write_lora(a2, qh, a2 + q_dim * es, a2 + (q_dim + kv_dim) * es, kh, stride, d, T, hd, rot,
                                    dpos.as<int32_t>(), dinv.as<float>(), 1.0f, dmap.as<int32_t>(), k2.get(), v2.get(),
                                    a, nullptr));
    const auto r1 = download(a1, src.size(), d), r2 = download(a2, src.size(), d);
    std::vector<float> q1, q2;  // the q part of every row (k and v in the rows are not outputs)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < q_dim; ++i) {
        q1.push_back(r1[t * stride + i]);
        q2.push_back(r2[t * stride + i]);
      }
    const auto ek1 = download(k1.get(), kc.size(), d), ek2 = download(k2.get(), kc.size(), d);
    const auto ev1 = download(v1.get(), vc.size(), d), ev2 = download(v2.get(), vc.size(), d);
    expect_close(name + ": q", q2, q1, tol_for(d));
    expect_close(name + ": k cache", ek2, ek1, tol_for(d));
    expect_close(name + ": v cache", ev2, ev1, tol_for(d));
    // Rows the LoRA does not touch (prefill rows, entry -1, the entry without weights): rope_kv_cache_write's bits.
    bool same = true;
    for (int64_t t = 0; t < T; ++t) {
      if (t >= first && (entries[t - first] == 0 || entries[t - first] == 1)) continue;
      for (int64_t i = 0; i < q_dim; ++i) same = same && q1[t * q_dim + i] == q2[t * q_dim + i];
      if (map[t] < 0) continue;
      for (int64_t i = 0; i < kv_dim; ++i)
        same = same && ek1[map[t] * kv_dim + i] == ek2[map[t] * kv_dim + i] && ev1[map[t] * kv_dim + i] == ev2[map[t] * kv_dim + i];
    }
    expect(name + ": rows without an adapter", same, "differ from rope_kv_cache_write's");
  });
}

}  // namespace

void run_lora_folded_tests(std::mt19937& rng) {
  for (DType d : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (bool rms : {true, false}) norm_lora_case(d, rms, rng);
    silu_lora_case(d, rng);
    for (int64_t rot : {64, 32}) rope_kv_lora_case(d, rot, rng);  // full and partial rotary
  }
}

}  // namespace gt
