// DoRA's two kernels (kernels/src/cuda/kernels/dora.cu) against the CPU backend: the weight-row norms an adapter
// load computes (cpu::lora_weight_norms_sq, double accumulation) for fp32/bf16/fp16 weights, ranks 1..64 and
// widths that are not multiples of the block, and the channel scale over a step's rows (cpu::dora_scale) with
// and without a bias, rows of the base model, entries without a scale and a fused module's slices.
#include "harness.h"

namespace gt {
namespace {
namespace wc = weft::cuda;
namespace cpu = weft::cpu;

void norms_case(const std::string& name, DType d, int64_t rows, int64_t in, int rank, std::mt19937& rng) {
  guard(name, [&] {
    std::vector<float> w = randn(static_cast<size_t>(rows * in), rng, 0.05f, d);
    const std::vector<float> a = randn(static_cast<size_t>(rank) * in, rng, 0.3f), b = randn(static_cast<size_t>(rows) * rank, rng, 0.3f);
    const float scale = 2.0f;
    std::vector<float> ref(static_cast<size_t>(rows));
    cpu::lora_weight_norms_sq(w.data(), rows, in, a.data(), b.data(), rank, scale, ref.data());
    DevBuf dw = upload(w, d), da = upload(a, DType::kF32), db = upload(b, DType::kF32), dout(sizeof(float) * rows);
    CK(wc::lora_weight_norms_sq(dw.get(), d, rows, in, da.as<float>(), db.as<float>(), rank, scale, dout.as<float>(), nullptr));
    // fp32 sums over `in` terms against double ones: a few ulps of the total per thousand terms.
    expect_close(name, download(dout.get(), static_cast<size_t>(rows), DType::kF32), ref, 1e-5);
  });
}

void scale_case(const std::string& name, DType d, bool with_bias, std::mt19937& rng) {
  guard(name, [&] {
    // A fused module of three slices (q|k|v-like), 4 entries: entry 0 DoRA on every slice, entry 1 plain LoRA,
    // entry 2 DoRA on slice 1 only, entry 3 empty. Rows: entries 0, -1, 1, 2, 0, -1, 2.
    const int S = 3, E = 4;
    const std::vector<int> off = {0, 300, 400}, len = {300, 100, 100};
    const int64_t width = 500, stride = 512;
    const std::vector<int> row_entry = {0, -1, 1, 2, 0, -1, 2};
    const int64_t rows = static_cast<int64_t>(row_entry.size());
    std::vector<float> y = randn(static_cast<size_t>(rows * stride), rng, 1.0f, d);
    const std::vector<float> bias = with_bias ? randn(static_cast<size_t>(width), rng, 0.5f, d) : std::vector<float>{};
    std::vector<std::vector<float>> mags(static_cast<size_t>(S * E));
    std::vector<DevBuf> mag_bufs;
    std::vector<const float*> mag_ptrs(static_cast<size_t>(S * E), nullptr);
    for (int s = 0; s < S; ++s)
      for (int e = 0; e < E; ++e) {
        if (!(e == 0 || (e == 2 && s == 1))) continue;
        std::vector<float>& m = mags[static_cast<size_t>(s * E + e)];
        m = randn(static_cast<size_t>(len[s]), rng, 0.3f);
        for (float& v : m) v += 1.0f;
        mag_bufs.push_back(upload(m, DType::kF32));
        mag_ptrs[static_cast<size_t>(s * E + e)] = mag_bufs.back().as<float>();
      }
    std::vector<float> ref = y;
    for (int64_t t = 0; t < rows; ++t) {
      const int e = row_entry[static_cast<size_t>(t)];
      if (e < 0) continue;
      for (int s = 0; s < S; ++s) {
        const std::vector<float>& m = mags[static_cast<size_t>(s * E + e)];
        if (m.empty()) continue;
        cpu::dora_scale(ref.data(), t, t + 1, stride, off[s], len[s], m.data(), with_bias ? bias.data() + off[s] : nullptr);
        for (int o = 0; o < len[s]; ++o) ref[t * stride + off[s] + o] = round_to(d, ref[t * stride + off[s] + o]);
      }
    }
    DevBuf dy = upload(y, d), dbias = with_bias ? upload(bias, d) : DevBuf(), doff = upload_vec(off), dlen = upload_vec(len),
           dmag = upload_vec(mag_ptrs), dent = upload_vec(row_entry);
    wc::DoraScaleArgs args{};
    args.dtype = d;
    args.rows = rows;
    args.y = dy.get();
    args.y_stride = stride;
    args.bias = with_bias ? dbias.get() : nullptr;
    args.num_slices = S;
    args.num_entries = E;
    args.out_offset = doff.as<int32_t>();
    args.out_len = dlen.as<int32_t>();
    args.mag = dmag.as<const float*>();
    args.row_entry = dent.as<int32_t>();
    CK(wc::lora_dora_scale(args, nullptr));
    // One fp32 product and sum, rounded once: the CPU's float math rounded to the dtype, within an ulp.
    expect_close(name, download(dy.get(), y.size(), d), ref, d == DType::kF32 ? 1e-6 : tol_for(d));
  });
}

}  // namespace

void run_dora_tests(std::mt19937& rng) {
  norms_case("dora norms f32 rows 37 in 1000 r16", DType::kF32, 37, 1000, 16, rng);
  norms_case("dora norms bf16 rows 64 in 4096 r16", DType::kBF16, 64, 4096, 16, rng);
  norms_case("dora norms f16 rows 9 in 11008 r64", DType::kF16, 9, 11008, 64, rng);
  norms_case("dora norms f32 rows 5 in 77 r1", DType::kF32, 5, 77, 1, rng);
  for (DType d : {DType::kF32, DType::kBF16, DType::kF16}) {
    scale_case(std::string("dora scale with bias ") + dname(d), d, true, rng);
    scale_case(std::string("dora scale no bias ") + dname(d), d, false, rng);
  }
}

}  // namespace gt
