// Model::mla_qkv — multi-head latent attention's inputs on the CPU (DeepSeek-V2/V3, Kimi K2), as transformers'
// DeepseekV3Attention computes them, each projection with its LoRA parts:
//   first = x·W_qkv (replicated: [q_a | kv_a | k_rope], or [q | kv_a | k_rope] without a q rank)
//   q     = q_b(rms(q_a)) per head [nope | rope]            (or q itself)
//   kv    = kv_b(rms(kv_a)) per head [k_nope | v]
// then lays out the attention's q, k, v per head (model/mla_layout.h: q [q_rope | q_nope], k [k_rope | k_nope] with
// the one rotary key shared by every head, v [v | 0…] padded to head_dim) — so the usual RoPE (first rotary_dim dims
// of each head), KV cache and paged attention run unchanged; the caller keeps the first mla_v_dim of each head's output.
#include <algorithm>
#include <cstring>

#include "cpu/ops.h"
#include "model/mla_layout.h"
#include "model/model.h"

namespace weft {

void Model::mla_qkv(int64_t l, const float* x, int64_t T, const std::vector<int32_t>& token_slots, float* q, float* k,
                    float* v) const {
  const int64_t H = cfg_.hidden, nh = cfg_.heads_local, hd = cfg_.head_dim, rope = cfg_.rotary_dim;
  const int64_t nope = cfg_.mla_nope_dim, vd = cfg_.mla_v_dim, kvr = cfg_.mla_kv_rank, qr = cfg_.mla_q_rank;
  const int64_t first_out = module_out(kQkv), q_first = qr > 0 ? qr : nh * hd, kvb_out = nh * (nope + vd);
  const std::string p = "layers." + std::to_string(l) + ".";
  const int li = static_cast<int>(l);

  std::vector<float> first(static_cast<size_t>(T * first_out));
  cpu::gemm_xwt(x, T, H, w(p + "qkv.weight"), first_out, w_opt(p + "qkv.bias"), first.data(), false);
  apply_lora(li, kQkv, x, H, token_slots, first.data(), first_out, w_opt(p + "qkv.bias"));

  // The column block [at, at + width) of every row of `first`, as contiguous rows.
  auto columns = [&](int64_t at, int64_t width) {
    std::vector<float> out(static_cast<size_t>(T * width));
    for (int64_t t = 0; t < T; ++t)
      std::memcpy(out.data() + t * width, first.data() + t * first_out + at, sizeof(float) * width);
    return out;
  };
  std::vector<float> q_raw;
  if (qr > 0) {
    std::vector<float> qa = columns(0, qr);
    cpu::rms_norm(qa.data(), T, qr, w(p + "q_a_norm.weight"), cfg_.mla_norm_eps, qa.data());
    q_raw.resize(static_cast<size_t>(T * nh * hd));
    cpu::gemm_xwt(qa.data(), T, qr, w(p + "q_b.weight"), nh * hd, nullptr, q_raw.data(), false);
    apply_lora(li, kQb, qa.data(), qr, token_slots, q_raw.data(), nh * hd);
  } else {
    q_raw = columns(0, nh * hd);
  }
  std::vector<float> kva = columns(q_first, kvr);
  cpu::rms_norm(kva.data(), T, kvr, w(p + "kv_a_norm.weight"), cfg_.mla_norm_eps, kva.data());
  std::vector<float> kv(static_cast<size_t>(T * kvb_out));
  cpu::gemm_xwt(kva.data(), T, kvr, w(p + "kv_b.weight"), kvb_out, nullptr, kv.data(), false);
  apply_lora(li, kKvb, kva.data(), kvr, token_slots, kv.data(), kvb_out);

  // The layout the CUDA kernel uses too (model/mla_layout.h).
  const int64_t qd = nh * hd;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < qd; ++i)
      mla::assemble_element(static_cast<int>(i), static_cast<int>(nope), static_cast<int>(rope), static_cast<int>(vd),
                            q_raw.data() + t * qd, kv.data() + t * kvb_out, first.data() + t * first_out + q_first + kvr,
                            q + t * qd, k + t * qd, v + t * qd);
}

}  // namespace weft
