// Llama 4's kernels besides attention's chunks (test_attention.cu): the NoPE layers' query temperature
// (query_position_scale with a position offset and the fp32 scale, beside Ministral 3's scale rounded to the dtype),
// and the MoE pieces of its input-scaled experts — sigmoid routing without a choice bias, moe_scale_rows (each routed
// row times its weight, a shared expert's weight-1 rows left bit for bit) and moe_combine without weights.
#include <numeric>

#include "harness.h"
#include "model/query_scale.h"

namespace gt {
namespace {
namespace wc = weft::cuda;
const DType kDtypes[] = {DType::kF32, DType::kBF16, DType::kF16};

// q times llama4_query_scale(position + offset): Llama 4 (offset 1, fp32 scale) and Ministral 3 (offset 0, the scale
// rounded to the dtype first), on rows with a stride past q (the k|v columns must stay as they are).
void query_temperature(std::mt19937& rng) {
  const int64_t T = 40, q_dim = 96, stride = 160;
  const float beta = 0.1f;
  const int64_t period = 8;
  for (DType d : kDtypes) {
    for (bool llama4 : {true, false}) {
      const std::string name = std::string("query_position_scale ") + (llama4 ? "Llama 4 (offset 1, fp32 scale) " :
                                                                                  "Ministral 3 (scale in the dtype) ") + dname(d);
      guard(name, [&] {
        const auto x = randn(T * stride, rng, 1.0f, d);
        std::vector<int32_t> pos(T);
        for (int64_t t = 0; t < T; ++t) pos[t] = static_cast<int32_t>(t * 13 % 200);  // several floor steps
        const int32_t offset = llama4 ? 1 : 0;
        std::vector<float> ref = x;
        for (int64_t t = 0; t < T; ++t) {
          const float s = weft::llama4_query_scale(pos[t] + offset, beta, period);
          for (int64_t i = 0; i < q_dim; ++i)
            ref[t * stride + i] = round_to(d, x[t * stride + i] * (llama4 ? s : round_to(d, s)));
        }
        DevBuf dx = upload(x, d), dpos = upload_vec(pos);
        CK(wc::query_position_scale(dx.get(), stride, q_dim, d, T, dpos.as<int32_t>(), beta, period, nullptr, offset,
                                    !llama4));
        const std::vector<float> got = download(dx.get(), x.size(), d);
        for (int64_t t = 0; t < T; ++t)
          for (int64_t i = q_dim; i < stride; ++i)
            if (got[t * stride + i] != x[t * stride + i]) throw std::runtime_error("wrote past q");
        expect_close(name, got, ref, tol_for(d));
      });
    }
  }
}

// Llama 4's routing on the device: sigmoid with no bias (bias(e) = 0), top 1 and the shared expert — the largest
// logit's expert with weight sigmoid(logit), then expert E with weight 1.
void route_without_bias(std::mt19937& rng) {
  guard("moe_route sigmoid without a choice bias (Llama 4)", [&] {
    const int64_t T = 33;
    weft::moe::RouteParams p;
    p.experts = 16, p.k = 1, p.sigmoid = true, p.shared = true;
    const auto logits = randn(T * p.experts, rng, 2.0f);
    const int out = p.k + 1;
    std::vector<int32_t> ids(T * out);
    std::vector<float> w(T * out);
    for (int64_t t = 0; t < T; ++t) {
      const float* row = logits.data() + t * p.experts;
      const int best = static_cast<int>(std::max_element(row, row + p.experts) - row);  // the first of equals
      ids[t * out] = best, w[t * out] = 1.0f / (1.0f + std::exp(-row[best]));
      ids[t * out + 1] = p.experts, w[t * out + 1] = 1.0f;
    }
    DevBuf dl = upload(logits, DType::kF32), dids(ids.size() * sizeof(int32_t)), dw(w.size() * sizeof(float));
    CK(wc::moe_route(dl.get(), DType::kF32, nullptr, T, p, dids.as<int32_t>(), dw.as<float>(), nullptr));
    const auto got_ids = download_vec<int32_t>(dids.get(), ids.size());
    const auto got_w = download_vec<float>(dw.get(), w.size());
    expect("moe_route sigmoid without a choice bias (Llama 4): the host's experts", got_ids == ids);
    expect_close("moe_route sigmoid without a choice bias (Llama 4): the host's weights", got_w, w, 1e-6);
  });
}

// moe_scale_rows over routed rows grouped by expert (src_row a permutation of the rows, src_w the weights' indices),
// then moe_combine without weights: each token's rows added whole.
void scaled_experts(std::mt19937& rng) {
  for (DType d : kDtypes) {
    const std::string tag = dname(d);
    guard("moe_scale_rows + moe_combine without weights " + tag, [&] {
      const int64_t T = 9, k = 3, H = 200, N = T * k;  // k = 2 routed + a shared expert (weight 1, the last)
      std::vector<int32_t> src_row(N), src_w(N);
      std::iota(src_row.begin(), src_row.end(), 0);
      std::shuffle(src_row.begin(), src_row.end(), rng);
      for (int64_t i = 0; i < N; ++i) src_w[i] = static_cast<int32_t>(i);
      std::vector<float> weights = randn(N, rng, 0.5f);
      for (float& v : weights) v = 1.0f / (1.0f + std::exp(-v));  // sigmoid scores
      for (int64_t t = 0; t < T; ++t) weights[t * k + k - 1] = 1.0f;
      const auto x = randn(N * H, rng, 1.0f, d);
      std::vector<float> scaled = x, sum(T * H, 0.0f);
      for (int64_t i = 0; i < N; ++i)
        for (int64_t c = 0; c < H; ++c)
          scaled[src_row[i] * H + c] = round_to(d, x[src_row[i] * H + c] * round_to(d, weights[src_w[i]]));
      for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < k; ++j)
          for (int64_t c = 0; c < H; ++c) sum[t * H + c] += scaled[src_row[t * k + j] * H + c];
      quantize(sum, d);
      DevBuf dx = upload(x, d), drow = upload_vec(src_row), dsw = upload_vec(src_w), dw = upload(weights, DType::kF32);
      DevBuf out(T * H * dsize(d));
      CK(wc::moe_scale_rows(dx.get(), d, H, drow.as<int32_t>(), dsw.as<int32_t>(), dw.as<float>(), T, k, nullptr));
      const auto got = download(dx.get(), x.size(), d);
      bool shared_same = true;  // weight 1: the shared expert's rows keep their bits
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < H; ++c)
          shared_same = shared_same && got[src_row[t * k + k - 1] * H + c] == x[src_row[t * k + k - 1] * H + c];
      expect("moe_scale_rows " + tag + ": weight-1 rows unchanged", shared_same);
      expect_close("moe_scale_rows " + tag, got, scaled, tol_for(d));
      CK(wc::moe_combine(dx.get(), d, drow.as<int32_t>(), dsw.as<int32_t>(), nullptr, T, k, H, out.get(), nullptr));
      expect_close("moe_combine without weights " + tag, download(out.get(), T * H, d), sum, tol_for(d));
    });
  }
}

}  // namespace

void run_llama4_tests(std::mt19937& rng) {
  query_temperature(rng);
  route_without_bias(rng);
  scaled_experts(rng);
}

}  // namespace gt
