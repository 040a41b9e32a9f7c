// Norms, RoPE, elementwise ops, embedding, conversion and the KV cache write against the CPU backend.
#include "harness.h"

namespace gt {
namespace {
namespace wc = weft::cuda;
namespace cpu = weft::cpu;
const DType kDtypes[] = {DType::kF32, DType::kBF16, DType::kF16};

void norms(std::mt19937& rng) {
  const std::pair<int64_t, int64_t> shapes[] = {{5, 4096}, {3, 1000}, {1, 33}};
  for (DType d : kDtypes) {
    for (const auto& shape : shapes) {
      const int64_t T = shape.first, H = shape.second;
      const std::string tag = std::string(dname(d)) + " " + std::to_string(T) + "x" + std::to_string(H);
      guard("rms_norm " + tag, [&] {
        const auto x = randn(T * H, rng, 2.0f, d), w = randn(H, rng, 1.0f, d);
        std::vector<float> ref(x.size());
        cpu::rms_norm(x.data(), T, H, w.data(), 1e-5f, ref.data());
        DevBuf dx = upload(x, d), dw = upload(w, d), out(x.size() * dsize(d));
        CK(wc::rms_norm(dx.get(), d, T, H, dw.get(), d, 1e-5f, out.get(), d, nullptr));
        expect_close("rms_norm " + tag, download(out.get(), x.size(), d), ref, tol_for(d));
      });
      guard("layer_norm " + tag, [&] {
        auto x = randn(T * H, rng, 2.0f);
        for (float& v : x) v = round_to(d, v + 3.0f);  // a mean to subtract
        const auto w = randn(H, rng, 1.0f, d), b = randn(H, rng, 1.0f, d);
        std::vector<float> ref(x.size());
        cpu::layer_norm(x.data(), T, H, w.data(), b.data(), 1e-5f, ref.data());
        DevBuf dx = upload(x, d), dw = upload(w, d), db = upload(b, d), out(x.size() * dsize(d));
        CK(wc::layer_norm(dx.get(), d, T, H, dw.get(), db.get(), d, 1e-5f, out.get(), d, nullptr));
        expect_close("layer_norm " + tag, download(out.get(), x.size(), d), ref, tol_for(d));
      });
    }
  }
  guard("rms_norm mixed f32 x / bf16 w, out in place", [&] {
    const int64_t T = 4, H = 2048;
    const auto x = randn(T * H, rng, 1.0f), w = randn(H, rng, 1.0f, DType::kBF16);
    std::vector<float> ref(x.size());
    cpu::rms_norm(x.data(), T, H, w.data(), 1e-6f, ref.data());
    DevBuf dx = upload(x, DType::kF32), dw = upload(w, DType::kBF16);
    CK(wc::rms_norm(dx.get(), DType::kF32, T, H, dw.get(), DType::kBF16, 1e-6f, dx.get(), DType::kF32, nullptr));
    expect_close("rms_norm mixed f32 x / bf16 w, out in place", download(dx.get(), x.size(), DType::kF32), ref,
                 tol_for(DType::kF32));
  });
}

// Qwen3's per-head q/k norm in place on a q|k|v row: each q head with the q weight, each k head with the k weight
// (the CPU normalises them as rows of head_dim), v untouched.
void head_norms(std::mt19937& rng) {
  for (DType d : kDtypes) {
    const int64_t T = 5, nq = 4, nkv = 2, hd = 128, stride = (nq + 2 * nkv) * hd;
    guard(std::string("head_rms_norm ") + dname(d), [&] {
      const auto x = randn(T * stride, rng, 2.0f, d), qw = randn(hd, rng, 1.0f, d), kw = randn(hd, rng, 1.0f, d);
      std::vector<float> ref = x;
      for (int64_t t = 0; t < T; ++t) {
        float* row = ref.data() + t * stride;
        cpu::rms_norm(row, nq, hd, qw.data(), 1e-6f, row);
        cpu::rms_norm(row + nq * hd, nkv, hd, kw.data(), 1e-6f, row + nq * hd);
      }
      DevBuf dx = upload(x, d), dq = upload(qw, d), dk = upload(kw, d);
      CK(wc::head_rms_norm(dx.get(), d, T, stride, nq, nkv, hd, dq.get(), dk.get(), d, 1e-6f, nullptr));
      std::vector<float> got = download(dx.get(), x.size(), d);
      for (int64_t t = 0; t < T; ++t)  // v bit for bit: never written
        for (int64_t i = (nq + nkv) * hd; i < stride; ++i)
          if (got[t * stride + i] != x[t * stride + i]) throw std::runtime_error("head_rms_norm wrote into v");
      expect_close(std::string("head_rms_norm ") + dname(d), got, ref, tol_for(d));
    });
  }
}

// add_norm must equal add_inplace followed by the norm bit for bit (the step switches between the two with the
// rank count and WEFT_FUSED_SMALL_OPS): h written back, and the normed output.
void add_norms(std::mt19937& rng) {
  const std::pair<int64_t, int64_t> shapes[] = {{32, 4096}, {3, 1000}, {1, 33}};
  for (DType d : kDtypes) {
    for (const auto& shape : shapes) {
      for (bool rms : {true, false}) {
        const int64_t T = shape.first, H = shape.second;
        const std::string name = std::string("add_norm ") + (rms ? "rms " : "layer ") + dname(d) + " " +
                                 std::to_string(T) + "x" + std::to_string(H);
        guard(name, [&] {
          const auto h = randn(T * H, rng, 2.0f), delta = randn(T * H, rng, 1.0f, d);
          const auto w = randn(H, rng, 1.0f, d), b = randn(H, rng, 1.0f, d);
          DevBuf h1 = upload(h, DType::kF32), h2 = upload(h, DType::kF32), dd = upload(delta, d), dw = upload(w, d),
                 db = upload(b, d), o1(T * H * dsize(d)), o2(T * H * dsize(d));
          CK(wc::add_inplace(h1.get(), DType::kF32, dd.get(), d, T * H, nullptr));
          if (rms) CK(wc::rms_norm(h1.get(), DType::kF32, T, H, dw.get(), d, 1e-5f, o1.get(), d, nullptr));
          else CK(wc::layer_norm(h1.get(), DType::kF32, T, H, dw.get(), db.get(), d, 1e-5f, o1.get(), d, nullptr));
          CK(wc::add_norm(h2.as<float>(), dd.get(), d, T, H, rms, dw.get(), rms ? nullptr : db.get(), d, 1e-5f,
                          o2.get(), d, nullptr));
          const auto eh1 = download(h1.get(), h.size(), DType::kF32), eh2 = download(h2.get(), h.size(), DType::kF32);
          const auto eo1 = download(o1.get(), h.size(), d), eo2 = download(o2.get(), h.size(), d);
          expect(name + ": h", eh1 == eh2, "the residual stream differs from add_inplace's");
          expect(name + ": out", eo1 == eo2, "the normed rows differ from add_inplace + norm's");
          std::vector<float> ref(h.size());  // and against the CPU, as the plain norm is
          for (size_t i = 0; i < h.size(); ++i) ref[i] = h[i] + delta[i];
          expect_close(name + ": h vs cpu", eh2, ref, 1e-6);
        });
      }
    }
  }
}

void rope(std::mt19937& rng) {
  const int64_t T = 7, qh = 4, kh = 2, hd = 128, stride = (qh + 2 * kh) * hd;
  const std::vector<int32_t> pos = {0, 1, 17, 4095, 32768, 100000, 7};
  struct Variant {
    int64_t rot;
    float factor;
    bool longrope;  // the long factors' frequencies after the short ones, for the tokens rope_long marks
    bool interleaved = false;  // GLM-4: pairs (2i, 2i+1)
  };
  // full; partial rotary + attention factor; longrope (Phi-3.5) with a per-token choice of factors; GLM-4's
  // interleaved partial rotary
  const Variant variants[] = {{128, 1.0f, false}, {64, 1.3f, false}, {96, 1.19f, true}, {64, 1.0f, false, true}};
  const std::vector<int32_t> marks = {0, 1, 1, 0, 1, 0, 1};
  const std::vector<uint8_t> marks8(marks.begin(), marks.end());
  for (DType d : kDtypes) {
    for (const auto& variant : variants) {
      const int64_t rot = variant.rot;
      const float factor = variant.factor;
      const std::string name = std::string("rope ") + dname(d) + " rotary " + std::to_string(rot) +
                               (variant.longrope ? " longrope" : "") + (variant.interleaved ? " interleaved" : "");
      guard(name, [&] {
        std::vector<float> inv(variant.longrope ? rot : rot / 2);
        for (int64_t i = 0; i < rot / 2; ++i) {
          inv[i] = 1.0f / std::pow(10000.0f, static_cast<float>(2 * i) / static_cast<float>(rot));
          if (variant.longrope) inv[rot / 2 + i] = inv[i] / (1.0f + 0.5f * static_cast<float>(i));
        }
        const uint8_t* use_long = variant.longrope ? marks8.data() : nullptr;
        const float* inv_long = variant.longrope ? inv.data() + rot / 2 : nullptr;
        const auto qkv = randn(T * stride, rng, 1.0f, d);
        std::vector<float> q(T * qh * hd), k(T * kh * hd), ref = qkv;
        for (int64_t t = 0; t < T; ++t) {
          std::copy_n(&qkv[t * stride], qh * hd, &q[t * qh * hd]);
          std::copy_n(&qkv[t * stride + qh * hd], kh * hd, &k[t * kh * hd]);
        }
        cpu::rope_rotate_half(q.data(), T, qh, hd, rot, pos.data(), inv.data(), factor, use_long, inv_long, variant.interleaved);
        cpu::rope_rotate_half(k.data(), T, kh, hd, rot, pos.data(), inv.data(), factor, use_long, inv_long, variant.interleaved);
        for (int64_t t = 0; t < T; ++t) {
          std::copy_n(&q[t * qh * hd], qh * hd, &ref[t * stride]);
          std::copy_n(&k[t * kh * hd], kh * hd, &ref[t * stride + qh * hd]);
        }
        DevBuf dqkv = upload(qkv, d), dpos = upload_vec(pos), dinv = upload_vec(inv), dmarks = upload_vec(marks);
        const int32_t* rope_long = variant.longrope ? dmarks.as<int32_t>() : nullptr;
        char* base = dqkv.as<char>();
        CK(wc::rope_rotate_half(base, qh, stride, base + qh * hd * dsize(d), kh, stride, d, T, hd, rot,
                                dpos.as<int32_t>(), dinv.as<float>(), factor, nullptr, nullptr, rope_long, variant.interleaved));
        const auto got = download(dqkv.get(), qkv.size(), d);
        expect_close(name, got, ref, tol_for(d));
        // With the step's (cos, sin) table (WEFT_ROPE_TABLE=1): the same bits.
        DevBuf again = upload(qkv, d), table(sizeof(float) * T * rot);
        CK(wc::rope_cos_sin_table(dpos.as<int32_t>(), T, dinv.as<float>(), rot, factor, table.as<float>(), nullptr,
                                  rope_long));
        char* b2 = again.as<char>();
        CK(wc::rope_rotate_half(b2, qh, stride, b2 + qh * hd * dsize(d), kh, stride, d, T, hd, rot, dpos.as<int32_t>(),
                                dinv.as<float>(), factor, nullptr, table.as<float>(), rope_long, variant.interleaved));
        expect(name + " [cos/sin table == computed, bit for bit]", download(again.get(), qkv.size(), d) == got);
      });
    }
  }
}

void elementwise(std::mt19937& rng) {
  for (DType d : kDtypes) {
    const std::string dn = dname(d);
    guard("silu_mul " + dn, [&] {
      const int64_t T = 6, I = 1000;
      const auto gu = randn(T * 2 * I, rng, 2.0f, d);
      std::vector<float> ref(T * I);
      for (int64_t t = 0; t < T; ++t) cpu::silu_mul(&gu[t * 2 * I], &gu[t * 2 * I + I], &ref[t * I], I);
      DevBuf dgu = upload(gu, d), out(T * I * dsize(d));
      CK(wc::silu_mul(dgu.get(), 2 * I, out.get(), I, T, I, d, nullptr));
      const auto got = download(out.get(), ref.size(), d);
      expect_close("silu_mul " + dn, got, ref, tol_for(d));
      // The 16-byte kernel (WEFT_SILU_MUL_VEC=1): the same bits; shapes it does not take are refused.
      DevBuf out2(T * I * dsize(d));
      CK(wc::silu_mul_vec(dgu.get(), 2 * I, out2.get(), I, T, I, d, nullptr));
      expect("silu_mul " + dn + " [16-byte kernel == scalar, bit for bit]", download(out2.get(), ref.size(), d) == got);
      expect("silu_mul " + dn + " [16-byte kernel refuses inter % 8 != 0]",
             wc::silu_mul_vec(dgu.get(), 2 * I, out2.get(), I, T, I - 4, d, nullptr) == cudaErrorNotSupported);
    });
    guard("scale_inplace " + dn, [&] {  // Granite's multipliers
      auto x = randn(3000, rng, 2.0f, d), ref = x;
      for (float& v : ref) v = round_to(d, v * 0.22f);
      DevBuf dx = upload(x, d);
      CK(wc::scale_inplace(dx.get(), d, x.size(), 0.22f, nullptr));
      expect_close("scale_inplace " + dn, download(dx.get(), x.size(), d), ref, tol_for(d));
    });
    guard("softcap_inplace " + dn, [&] {  // Gemma 2's final-logit cap
      auto x = randn(5000, rng, 20.0f, d), ref = x;
      for (float& v : ref) v = round_to(d, std::tanh(v / 30.0f) * 30.0f);
      DevBuf dx = upload(x, d);
      CK(wc::softcap_inplace(dx.get(), d, x.size(), 30.0f, nullptr));
      expect_close("softcap_inplace " + dn, download(dx.get(), x.size(), d), ref, tol_for(d));
    });
    guard("gelu_tanh_mul " + dn, [&] {  // Gemma's GeGLU
      const int64_t T = 5, I = 999;
      const auto gu = randn(T * 2 * I, rng, 2.0f, d);
      std::vector<float> ref(T * I);
      for (int64_t t = 0; t < T; ++t) cpu::gelu_tanh_mul(&gu[t * 2 * I], &gu[t * 2 * I + I], &ref[t * I], I);
      DevBuf dgu = upload(gu, d), out(T * I * dsize(d));
      CK(wc::gelu_tanh_mul(dgu.get(), 2 * I, out.get(), I, T, I, d, nullptr));
      expect_close("gelu_tanh_mul " + dn, download(out.get(), ref.size(), d), ref, tol_for(d));
    });
    guard("clamped_swiglu " + dn, [&] {  // gpt-oss's experts: values of N(0, 6²), so many pass the limit of 7
      const int64_t T = 5, I = 999;
      const auto gu = randn(T * 2 * I, rng, 6.0f, d);
      std::vector<float> ref(T * I);
      for (int64_t t = 0; t < T; ++t) cpu::clamped_swiglu(&gu[t * 2 * I], &gu[t * 2 * I + I], &ref[t * I], I, 1.702f, 7.0f);
      DevBuf dgu = upload(gu, d), out(T * I * dsize(d));
      CK(wc::clamped_swiglu(dgu.get(), 2 * I, out.get(), I, T, I, 1.702f, 7.0f, d, nullptr));
      expect_close("clamped_swiglu " + dn, download(out.get(), ref.size(), d), ref, tol_for(d));
    });
    guard("xielu " + dn, [&] {  // Apertus: both branches, and x in (eps, 0] where min(x, eps) takes eps
      auto x = randn(10000, rng, 3.0f, d);
      x[0] = 0.0f, x[1] = round_to(d, -1e-3f), x[2] = round_to(d, -2e-3f);
      auto ref = x;
      const std::vector<float> params = {0.7f, 1.3f, 0.4f, -2e-3f};  // alpha_p, alpha_n, beta, eps
      cpu::xielu(ref.data(), ref.size(), params[0], params[1], params[2], params[3]);
      for (float& v : ref) v = round_to(d, v);
      DevBuf dx = upload(x, d), dp = upload(params, DType::kF32);
      CK(wc::xielu(dx.get(), x.size(), static_cast<const float*>(dp.get()), d, nullptr));
      expect_close("xielu " + dn, download(dx.get(), x.size(), d), ref, tol_for(d));
    });
    for (bool tanh_form : {true, false}) {
      const std::string name = std::string(tanh_form ? "gelu_tanh " : "gelu_erf ") + dn;
      guard(name, [&] {
        auto x = randn(10000, rng, 3.0f, d), ref = x;
        DevBuf dx = upload(x, d);
        if (tanh_form) {
          cpu::gelu_tanh(ref.data(), ref.size());
          CK(wc::gelu_tanh(dx.get(), x.size(), d, nullptr));
        } else {
          cpu::gelu_erf(ref.data(), ref.size());
          CK(wc::gelu_erf(dx.get(), x.size(), d, nullptr));
        }
        expect_close(name, download(dx.get(), x.size(), d), ref, tol_for(d));
      });
    }
    guard("add_inplace f32 += " + dn, [&] {
      auto y = randn(5000, rng), ref = y;
      const auto x = randn(5000, rng, 1.0f, d);
      cpu::add_inplace(ref.data(), x.data(), ref.size());
      DevBuf dy = upload(y, DType::kF32), dx = upload(x, d);
      CK(wc::add_inplace(dy.get(), DType::kF32, dx.get(), d, y.size(), nullptr));
      expect_close("add_inplace f32 += " + dn, download(dy.get(), y.size(), DType::kF32), ref, 1e-6);
    });
    guard("bias_add strided " + dn, [&] {
      const int64_t R = 5, C = 300, S = 320;
      auto y = randn(R * S, rng, 1.0f, d), ref = y;
      const auto b = randn(C, rng, 1.0f, d);
      for (int64_t r = 0; r < R; ++r) cpu::add_inplace(&ref[r * S], b.data(), C);
      DevBuf dy = upload(y, d), db = upload(b, d);
      CK(wc::bias_add(dy.get(), d, R, C, S, db.get(), d, nullptr));
      expect_close("bias_add strided " + dn, download(dy.get(), y.size(), d), ref, tol_for(d));
    });
    guard("embedding + positions " + dn, [&] {
      const int64_t rows = 100, dim = 64, prow = 50;
      const std::vector<int32_t> ids = {3, -1, 99, 100, 0}, pos = {0, 1, 49, 50, 2};
      const auto table = randn(rows * dim, rng, 1.0f, d), ptab = randn(prow * dim, rng, 1.0f, d);
      std::vector<float> ref(ids.size() * dim), pe(ids.size() * dim);
      cpu::embedding_gather(table.data(), rows, dim, ids.data(), ids.size(), ref.data());
      cpu::embedding_gather(ptab.data(), prow, dim, pos.data(), pos.size(), pe.data());
      cpu::add_inplace(ref.data(), pe.data(), ref.size());
      DevBuf dt = upload(table, d), dp = upload(ptab, d), di = upload_vec(ids), dpos = upload_vec(pos);
      DevBuf out(ref.size() * 4);
      CK(wc::embedding_gather(dt.get(), d, rows, dim, di.as<int32_t>(), ids.size(), out.get(), DType::kF32, dp.get(),
                              prow, dpos.as<int32_t>(), nullptr));
      expect_close("embedding + positions " + dn, download(out.get(), ref.size(), DType::kF32), ref, 1e-6);
    });
    guard("embedding scaled (Gemma) " + dn, [&] {  // the product rounded to the table's dtype, as transformers does
      const int64_t rows = 100, dim = 64;
      const std::vector<int32_t> ids = {3, 99, 0, 3};
      const auto table = randn(rows * dim, rng, 1.0f, d);
      const float scale = round_to(d, 33.941124f);
      std::vector<float> ref(ids.size() * dim);
      cpu::embedding_gather(table.data(), rows, dim, ids.data(), ids.size(), ref.data());
      for (float& v : ref) v = round_to(d, v * scale);
      DevBuf dt = upload(table, d), di = upload_vec(ids), out(ref.size() * 4);
      CK(wc::embedding_gather(dt.get(), d, rows, dim, di.as<int32_t>(), ids.size(), out.get(), DType::kF32, nullptr, 0,
                              nullptr, nullptr, scale));
      expect_close("embedding scaled (Gemma) " + dn, download(out.get(), ref.size(), DType::kF32), ref, 0.0);
    });
    guard("convert f32 -> " + dn + " (exact)", [&] {
      auto x = randn(4099, rng, 10.0f), ref = x;
      quantize(ref, d);
      DevBuf dx = upload(x, DType::kF32), out(x.size() * dsize(d));
      CK(wc::convert(dx.get(), DType::kF32, out.get(), d, x.size(), nullptr));
      expect_close("convert f32 -> " + dn + " (exact)", download(out.get(), x.size(), d), ref, 0.0);
    });
  }
}

// K/V rows taken from a fused [T, stride] buffer; one padding token (slot -1) must leave the cache alone.
// rope_kv_cache_write must equal rope_rotate_half followed by kv_cache_write bit for bit (q and both caches),
// with full and partial rotary, GQA, and a padding token (slot -1) whose q is still rotated.
void rope_kv_write(std::mt19937& rng) {
  struct Case { DType d; int64_t qh, kh, hd, rot; float factor; };
  for (Case c : {Case{DType::kBF16, 8, 2, 128, 128, 1.0f}, Case{DType::kF16, 4, 4, 64, 32, 1.3f},
                 Case{DType::kF32, 6, 2, 80, 40, 1.0f}}) {
    const std::string name = std::string("rope_kv_cache_write ") + dname(c.d) + " " + std::to_string(c.qh) + "/" +
                             std::to_string(c.kh) + " hd" + std::to_string(c.hd) + " rotary " + std::to_string(c.rot);
    guard(name, [&] {
      const int64_t T = 6, slots = 64, stride = (c.qh + 2 * c.kh) * c.hd, kv_dim = c.kh * c.hd;
      const std::vector<int32_t> pos = {0, 5, 300, 4095, 7, 100000}, map = {3, 60, -1, 0, 17, 33};
      std::vector<float> inv(c.rot / 2);
      for (int64_t i = 0; i < c.rot / 2; ++i)
        inv[i] = 1.0f / std::pow(10000.0f, static_cast<float>(2 * i) / static_cast<float>(c.rot));
      const auto src = randn(T * stride, rng, 1.0f, c.d);
      const auto kc = randn(slots * kv_dim, rng, 1.0f, c.d), vc = randn(slots * kv_dim, rng, 1.0f, c.d);
      DevBuf s1 = upload(src, c.d), s2 = upload(src, c.d), k1 = upload(kc, c.d), k2 = upload(kc, c.d),
             v1 = upload(vc, c.d), v2 = upload(vc, c.d), dpos = upload_vec(pos), dmap = upload_vec(map),
             dinv = upload(inv, DType::kF32);
      const size_t es = dsize(c.d);
      char* a = s1.as<char>();
      char* b = s2.as<char>();
      CK(wc::rope_rotate_half(a, c.qh, stride, a + c.qh * c.hd * es, c.kh, stride, c.d, T, c.hd, c.rot,
                              dpos.as<int32_t>(), dinv.as<float>(), c.factor, nullptr));
      CK(wc::kv_cache_write(a + c.qh * c.hd * es, a + (c.qh * c.hd + kv_dim) * es, stride, T, kv_dim,
                            dmap.as<int32_t>(), k1.get(), v1.get(), c.d, nullptr));
      CK(wc::rope_kv_cache_write(b, c.qh, b + c.qh * c.hd * es, b + (c.qh * c.hd + kv_dim) * es, c.kh, stride, c.d, T,
                                 c.hd, c.rot, dpos.as<int32_t>(), dinv.as<float>(), c.factor, dmap.as<int32_t>(),
                                 k2.get(), v2.get(), nullptr));
      // And with the step's (cos, sin) table (WEFT_ROPE_TABLE=1): the fused kernel's bits again.
      DevBuf s3 = upload(src, c.d), k3 = upload(kc, c.d), v3 = upload(vc, c.d), table(sizeof(float) * T * c.rot);
      char* e = s3.as<char>();
      CK(wc::rope_cos_sin_table(dpos.as<int32_t>(), T, dinv.as<float>(), c.rot, c.factor, table.as<float>(), nullptr));
      CK(wc::rope_kv_cache_write(e, c.qh, e + c.qh * c.hd * es, e + (c.qh * c.hd + kv_dim) * es, c.kh, stride, c.d, T,
                                 c.hd, c.rot, dpos.as<int32_t>(), dinv.as<float>(), c.factor, dmap.as<int32_t>(),
                                 k3.get(), v3.get(), nullptr, table.as<float>()));
      expect(name + " [cos/sin table]: q, k and v caches bit for bit",
             download(e, src.size(), c.d) == download(b, src.size(), c.d) &&
                 download(k3.get(), kc.size(), c.d) == download(k2.get(), kc.size(), c.d) &&
                 download(v3.get(), vc.size(), c.d) == download(v2.get(), vc.size(), c.d));
      const auto q1 = download(a, src.size(), c.d), q2 = download(b, src.size(), c.d);
      bool q_same = true;  // the q part of every row (the fused kernel leaves the source k unrotated)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < c.qh * c.hd; ++i) q_same = q_same && q1[t * stride + i] == q2[t * stride + i];
      expect(name + ": q", q_same, "rotated q differs from rope_rotate_half's");
      expect(name + ": k cache", download(k1.get(), kc.size(), c.d) == download(k2.get(), kc.size(), c.d),
             "k cache differs from rope + kv_cache_write's");
      expect(name + ": v cache", download(v1.get(), vc.size(), c.d) == download(v2.get(), vc.size(), c.d),
             "v cache differs from kv_cache_write's");
    });
  }
}

// The decode-sized tensor-core GEMM (skinny_gemm_body.h) against the CPU, and batch invariance: the first rows
// of an M = 32 product equal bit for bit the same rows computed alone.
void skinny_gemm(std::mt19937& rng) {
  struct Case { DType d; int64_t m, n, k; bool bias; };
  for (Case c : {Case{DType::kBF16, 1, 4096, 4096, false}, Case{DType::kBF16, 7, 100, 11008, true},
                 Case{DType::kF16, 32, 4096, 4096, true}, Case{DType::kBF16, 17, 12288, 4096, false}}) {
    const std::string name = std::string("skinny_gemm ") + dname(c.d) + " M " + std::to_string(c.m) + " N " +
                             std::to_string(c.n) + " K " + std::to_string(c.k) + (c.bias ? " +bias" : "");
    guard(name, [&] {
      const auto x = randn(c.m * c.k, rng, 1.0f, c.d), w = randn(c.n * c.k, rng, 0.05f, c.d), b = randn(c.n, rng, 1.0f, c.d);
      std::vector<float> ref(c.m * c.n);
      for (int64_t i = 0; i < c.m; ++i)
        for (int64_t o = 0; o < c.n; ++o) {
          double acc = c.bias ? b[o] : 0.0;
          for (int64_t kk = 0; kk < c.k; ++kk) acc += static_cast<double>(x[i * c.k + kk]) * w[o * c.k + kk];
          ref[i * c.n + o] = static_cast<float>(acc);
        }
      DevBuf dx = upload(x, c.d), dw = upload(w, c.d), db = upload(b, c.d), dy(c.m * c.n * dsize(c.d)),
             dy1(c.n * 3 * dsize(c.d));
      wc::SkinnyGemmArgs a{c.d, c.m, c.n, c.k, dx.get(), dw.get(), c.bias ? db.get() : nullptr, dy.get(), c.n};
      CK(wc::skinny_gemm(a, nullptr));  // NotSupported here is a failure: the shape qualifies
      const auto got = download(dy.get(), ref.size(), c.d);
      expect_close(name, got, ref, tol_for(c.d));
      const int64_t few = c.m < 3 ? c.m : 3;
      a.m = few;
      a.y = dy1.get();
      CK(wc::skinny_gemm(a, nullptr));
      const auto alone = download(dy1.get(), few * c.n, c.d);
      expect(name + ": rows batch-invariant", std::equal(alone.begin(), alone.end(), got.begin()),
             "the first rows differ when computed with fewer rows");
    });
  }
}

void kv_write(std::mt19937& rng) {
  struct Case { DType d; int64_t kv_dim, stride, voff; };  // voff: where v starts in a row (1 = misaligned)
  for (Case c : {Case{DType::kF32, 256, 1024, 256}, Case{DType::kBF16, 256, 768, 1}, Case{DType::kF16, 3, 5, 1}}) {
    const std::string name = std::string("kv_cache_write ") + dname(c.d) + " kv_dim " + std::to_string(c.kv_dim);
    guard(name, [&] {
      const int64_t T = 9, slots = 128;
      std::vector<int32_t> map = {5, 77, 0, 127, -1, 16, 17, 64, 3};
      const auto src = randn(T * c.stride, rng, 1.0f, c.d);
      auto kc = randn(slots * c.kv_dim, rng, 1.0f, c.d), vc = randn(slots * c.kv_dim, rng, 1.0f, c.d);
      std::vector<float> rk = kc, rv = vc, k, v;
      std::vector<int32_t> live;
      for (int64_t t = 0; t < T; ++t) {
        if (map[t] < 0) continue;
        live.push_back(map[t]);
        k.insert(k.end(), &src[t * c.stride], &src[t * c.stride] + c.kv_dim);
        v.insert(v.end(), &src[t * c.stride + c.voff], &src[t * c.stride + c.voff] + c.kv_dim);
      }
      cpu::kv_cache_write(k.data(), v.data(), live.size(), c.kv_dim, live.data(), rk.data(), rv.data());
      DevBuf ds = upload(src, c.d), dk = upload(kc, c.d), dv = upload(vc, c.d), dm = upload_vec(map);
      const char* s = ds.as<char>();
      CK(wc::kv_cache_write(s, s + c.voff * dsize(c.d), c.stride, T, c.kv_dim, dm.as<int32_t>(), dk.get(), dv.get(),
                            c.d, nullptr));
      auto got = download(dk.get(), kc.size(), c.d), gv = download(dv.get(), vc.size(), c.d);
      got.insert(got.end(), gv.begin(), gv.end());
      rk.insert(rk.end(), rv.begin(), rv.end());
      expect_close(name + " (exact)", got, rk, 0.0);
    });
  }
}

}  // namespace

void run_basic_tests(std::mt19937& rng) {
  norms(rng);
  head_norms(rng);
  add_norms(rng);
  rope(rng);
  elementwise(rng);
  kv_write(rng);
  rope_kv_write(rng);
  skinny_gemm(rng);
}

}  // namespace gt
