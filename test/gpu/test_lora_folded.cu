// The decode rows' LoRA expand folded into the op after the projection (WEFT_LORA_EXPAND_INTO_NEXT=1) against the
// two kernels it replaces: add_norm_lora (o, down) vs lora_bgmv_expand + add_norm, and silu_mul_lora (gate/up, two
// slices) vs lora_bgmv_expand + silu_mul. Prefill rows before the BGMV rows (no delta of theirs), rows without an
// adapter (entry -1) and an entry without weights keep the plain op's result bit for bit; ranks 16 (16-byte B
// path) and 12 (element path); RMS and LayerNorm; bf16, fp16, fp32. Results must agree within the dtype's
// tolerance (the sum is the expand's order; the compiler may contract differently in the two kernels).
#include "harness.h"

namespace gt {
namespace {
namespace wc = weft::cuda;

void norm_lora_case(DType d, bool rms, std::mt19937& rng) {
  const std::string name = std::string("add_norm_lora ") + (rms ? "rms " : "layer ") + dname(d);
  guard(name, [&] {
    const int64_t H = 1024, first = 2, T = 9, n = T - first;  // 2 prefill rows, 7 decode rows
    const int E = 3, max_rank = 16;
    const std::vector<int32_t> ranks = {16, 12, 16};  // entry 2 has no weights (null A/B)
    const std::vector<int32_t> entries = {0, 1, -1, 0, 2, 1, 0};
    const auto h = randn(T * H, rng, 2.0f), delta = randn(T * H, rng, 1.0f, d);
    const auto w = randn(H, rng, 1.0f, d), bias = randn(H, rng, 1.0f, d);
    const auto hl = randn(n * max_rank, rng, 1.0f);  // the shrink's h of the decode rows
    std::vector<DevBuf> keep;
    std::vector<const void*> ap(E, nullptr), bp(E, nullptr);
    std::vector<float> scales = {0.5f, 2.0f, 1.0f};
    for (int e = 0; e < 2; ++e) {
      keep.push_back(upload(randn(static_cast<size_t>(ranks[e]) * H, rng, 0.05f, d), d));
      ap[e] = keep.back().get();
      keep.push_back(upload(randn(static_cast<size_t>(H) * ranks[e], rng, 0.1f, d), d));
      bp[e] = keep.back().get();
    }
    const std::vector<int32_t> offs = {0}, lens = {static_cast<int32_t>(H)};
    DevBuf dap = upload_vec(ap), dbp = upload_vec(bp), dr = upload_vec(ranks), ds = upload_vec(scales),
           doff = upload_vec(offs), dlen = upload_vec(lens), dte = upload_vec(entries), dhl = upload(hl, DType::kF32);
    DevBuf h1 = upload(h, DType::kF32), h2 = upload(h, DType::kF32), d1 = upload(delta, d), d2 = upload(delta, d),
           dw = upload(w, d), db = upload(bias, d), o1(T * H * dsize(d)), o2(T * H * dsize(d)), dx(16);
    wc::LoraArgs a{};
    a.dtype = d;
    a.tokens = static_cast<int32_t>(n);
    a.in = 8;
    a.x = dx.get();  // not read: h is given
    a.x_stride = 8;
    a.h = dhl.as<float>();
    a.y = d1.as<char>() + first * H * dsize(d);
    a.y_stride = H;
    a.num_slices = 1;
    a.out_offset = doff.as<int32_t>();
    a.out_len = dlen.as<int32_t>();
    a.max_out_len = static_cast<int32_t>(H);
    a.num_entries = E;
    a.a = dap.as<const void*>();
    a.b = dbp.as<const void*>();
    a.rank = dr.as<int32_t>();
    a.scale = ds.as<float>();
    a.max_rank = max_rank;
    a.token_entry = dte.as<int32_t>();
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
    const int64_t I = 688, first = 2, T = 9, n = T - first;  // 2 prefill rows, 7 decode rows
    const int E = 3, S = 2, max_rank = 16;
    const std::vector<int32_t> entries = {0, 1, -1, 0, 2, 1, 0};
    const std::vector<int32_t> ranks = {16, 12, 16, 16, 12, 16};  // [slice][entry]; entry 2 has no weights
    const auto gu = randn(T * 2 * I, rng, 1.0f, d);
    const auto hl = randn(S * n * max_rank, rng, 1.0f);
    std::vector<DevBuf> keep;
    std::vector<const void*> ap(S * E, nullptr), bp(S * E, nullptr);
    std::vector<float> scales(S * E, 0.75f);
    for (int s = 0; s < S; ++s)
      for (int e = 0; e < 2; ++e) {
        const int i = s * E + e;
        keep.push_back(upload(randn(static_cast<size_t>(ranks[i]) * 8, rng, 0.05f, d), d));
        ap[i] = keep.back().get();
        keep.push_back(upload(randn(static_cast<size_t>(I) * ranks[i], rng, 0.1f, d), d));
        bp[i] = keep.back().get();
      }
    const std::vector<int32_t> offs = {0, static_cast<int32_t>(I)}, lens = {static_cast<int32_t>(I), static_cast<int32_t>(I)};
    DevBuf dap = upload_vec(ap), dbp = upload_vec(bp), dr = upload_vec(ranks), ds = upload_vec(scales),
           doff = upload_vec(offs), dlen = upload_vec(lens), dte = upload_vec(entries), dhl = upload(hl, DType::kF32);
    DevBuf g1 = upload(gu, d), g2 = upload(gu, d), o1(T * I * dsize(d)), o2(T * I * dsize(d)), dx(16);
    wc::LoraArgs a{};
    a.dtype = d;
    a.tokens = static_cast<int32_t>(n);
    a.in = 8;
    a.x = dx.get();  // not read: h is given
    a.x_stride = 8;
    a.h = dhl.as<float>();
    a.y = g1.as<char>() + first * 2 * I * dsize(d);
    a.y_stride = 2 * I;
    a.num_slices = S;
    a.out_offset = doff.as<int32_t>();
    a.out_len = dlen.as<int32_t>();
    a.max_out_len = static_cast<int32_t>(I);
    a.num_entries = E;
    a.a = dap.as<const void*>();
    a.b = dbp.as<const void*>();
    a.rank = dr.as<int32_t>();
    a.scale = ds.as<float>();
    a.max_rank = max_rank;
    a.token_entry = dte.as<int32_t>();
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

}  // namespace

void run_lora_folded_tests(std::mt19937& rng) {
  for (DType d : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (bool rms : {true, false}) norm_lora_case(d, rms, rng);
    silu_lora_case(d, rng);
  }
}

}  // namespace gt
