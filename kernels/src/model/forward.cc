// Model::forward — one step for a heterogeneous batch (prefill and decode rows mixed, one adapter per sequence).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>

#include "cpu/ops.h"
#include "model/deepstack.h"
#include "model/model.h"

namespace weft {

void Model::norm(const float* x, int64_t tokens, const std::string& prefix, float* out) const {
  if (!cfg_.pre_norms && prefix != "final_norm") {  // OLMo 2: a block's input is the residual stream as it is
    std::memcpy(out, x, sizeof(float) * tokens * cfg_.hidden);
    return;
  }
  if (cfg_.norm == NormKind::kRms) cpu::rms_norm(x, tokens, cfg_.hidden, w(prefix + ".weight"), cfg_.norm_eps, out);
  else cpu::layer_norm(x, tokens, cfg_.hidden, w(prefix + ".weight"), w(prefix + ".bias"), cfg_.norm_eps, out);
}

// A block's output (reduced over the ranks, bias added) before the residual add: Gemma's post norm (weights
// `post_norm`), then Granite's residual multiplier.
void Model::finish_block_output(float* y, int64_t tokens, const std::string& post_norm) const {
  if (cfg_.post_norms) cpu::rms_norm(y, tokens, cfg_.hidden, w(post_norm), cfg_.norm_eps, y);
  if (cfg_.residual_scale != 1.0f)
    for (int64_t i = 0; i < tokens * cfg_.hidden; ++i) y[i] *= cfg_.residual_scale;
}

void Model::qk_norm_full(float* q, float* k, int64_t T, const float* q_w, const float* k_w) const {
  const int64_t qd = cfg_.heads_local * cfg_.head_dim, kd = cfg_.kv_heads_local * cfg_.head_dim;
  const int world = coll_->world();
  std::vector<float> sums(static_cast<size_t>(2 * T));  // [token][q, k], in float as transformers' RMSNorm sums
  for (int64_t t = 0; t < T; ++t) {
    float sq = 0.0f, sk = 0.0f;
    for (int64_t i = 0; i < qd; ++i) sq += q[t * qd + i] * q[t * qd + i];
    for (int64_t i = 0; i < kd; ++i) sk += k[t * kd + i] * k[t * kd + i];
    sums[2 * t] = sq, sums[2 * t + 1] = sk;
  }
  if (world > 1) coll_->all_reduce_sum(sums.data(), 2 * T);
  const float q_width = static_cast<float>(qd * world);
  const float k_width = static_cast<float>(kd * world);  // a replicated kv head: counted alike in sum and width
  for (int64_t t = 0; t < T; ++t) {
    const float rq = 1.0f / std::sqrt(sums[2 * t] / q_width + cfg_.norm_eps);
    const float rk = 1.0f / std::sqrt(sums[2 * t + 1] / k_width + cfg_.norm_eps);
    for (int64_t i = 0; i < qd; ++i) q[t * qd + i] = q_w[i] * (q[t * qd + i] * rq);
    for (int64_t i = 0; i < kd; ++i) k[t * kd + i] = k_w[i] * (k[t * kd + i] * rk);
  }
}

// Adds every loaded adapter's LoRA delta for this module, over runs of consecutive rows with the same
// slot (segments, SGMV-style). Rows with slot -1 (base model) are skipped.
void Model::apply_lora(int layer, int module, const float* x, int64_t in, const std::vector<int32_t>& token_slots,
                       float* y, int64_t out, const float* bias, int expert) const {
  const int64_t n = static_cast<int64_t>(token_slots.size());
  for (int64_t t0 = 0; t0 < n;) {
    int64_t t1 = t0 + 1;
    while (t1 < n && token_slots[t1] == token_slots[t0]) ++t1;
    const int32_t slot = token_slots[t0];
    if (slot >= 0) {
      const AdapterSlot& s = slots_[slot];
      const std::vector<LoraPart>& parts = module == kLmHead ? s.lm_head : s.layers[layer][module];
      for (const LoraPart& p : parts) {
        if (p.expert != expert) continue;
        cpu::lora_shrink_expand(x, t0, t1, in, p.a.data(), p.b.data(), p.rank, p.out_len, p.scale, y, out,
                                p.out_offset);
        // Parts of one module cover disjoint outputs (q, k, v; gate, up), so each is complete here.
        if (!p.mag.empty())
          cpu::dora_scale(y, t0, t1, out, p.out_offset, p.out_len, p.mag.data(), bias ? bias + p.out_offset : nullptr);
      }
    }
    t0 = t1;
  }
}

namespace {

// A sequence's image spans: pairs [s, e), sorted and disjoint; one holding a query position of this step ends within
// the context (its later keys are in this step or the cache).
void check_image_spans(const BatchSeq& s) {
  const std::vector<int32_t>& sp = s.image_spans;
  if (sp.size() % 2 != 0) throw std::invalid_argument("batch: seq.imageSpans must hold [start, end) pairs");
  const int64_t first = s.context_len - s.num_tokens;
  for (size_t i = 0; i < sp.size(); i += 2) {
    if (sp[i] < 0 || sp[i + 1] <= sp[i] || (i > 0 && sp[i] < sp[i - 1]))
      throw std::invalid_argument("batch: image spans must be non-empty [start, end) pairs, sorted and disjoint");
    if (sp[i + 1] > s.context_len && sp[i + 1] - 1 >= first && sp[i] < s.context_len)
      throw std::invalid_argument("batch: the step's tokens end at position " + std::to_string(s.context_len) +
                                  ", inside the image at [" + std::to_string(sp[i]) + ", " + std::to_string(sp[i + 1]) +
                                  ") whose tokens attend to each other both ways: a chunk must hold the rest of an image");
  }
}

}  // namespace

void validate_batch(const ModelConfig& cfg, const Batch& b, const std::function<bool(int32_t)>& slot_loaded) {
  const int64_t T = static_cast<int64_t>(b.tokens.size());
  if (static_cast<int64_t>(b.positions.size()) != T || static_cast<int64_t>(b.slot_mapping.size()) != T)
    throw std::invalid_argument("batch: tokens, positions and slot_mapping must have the same length");
  if (!b.rope_long.empty() && (static_cast<int64_t>(b.rope_long.size()) != T || cfg.inv_freq_long.empty()))
    throw std::invalid_argument("batch: rope_long needs one entry per token and a model with long RoPE factors");
  if (!b.mrope_positions.empty() && (static_cast<int64_t>(b.mrope_positions.size()) != 3 * T || cfg.mrope_section.empty()))
    throw std::invalid_argument("batch: mropePositions needs 3 entries per token (t, h, w rows) and a model with "
                                "multimodal RoPE sections");
  const int64_t cache_slots = cfg.num_blocks * cfg.block_size;
  for (int64_t t = 0; t < T; ++t) {
    if (b.tokens[t] < 0 || b.tokens[t] >= cfg.vocab)
      throw std::invalid_argument("batch: token id " + std::to_string(b.tokens[t]) + " outside the vocabulary [0, " +
                                  std::to_string(cfg.vocab) + ")");
    if (b.slot_mapping[t] < 0 || b.slot_mapping[t] >= cache_slots) throw std::invalid_argument("batch: KV slot out of range");
    if (b.positions[t] < 0 || (cfg.learned_positions && b.positions[t] >= cfg.max_positions))
      throw std::invalid_argument("batch: position " + std::to_string(b.positions[t]) + " out of range");
  }
  int64_t next = 0;
  for (const BatchSeq& s : b.seqs) {
    if (s.token_start != next || s.num_tokens <= 0 || s.context_len < s.num_tokens)
      throw std::invalid_argument("batch: sequences must tile the token rows in order, with context_len >= num_tokens");
    next += s.num_tokens;
    if (static_cast<int64_t>(s.block_table.size()) * cfg.block_size < s.context_len)
      throw std::invalid_argument("batch: block table too short for context length " + std::to_string(s.context_len));
    for (int32_t blk : s.block_table)
      if (blk < 0 || blk >= cfg.num_blocks) throw std::invalid_argument("batch: block id out of range");
    if (s.adapter_slot >= cfg.adapter_slots || s.adapter_slot < -1 || (s.adapter_slot >= 0 && !slot_loaded(s.adapter_slot)))
      throw std::invalid_argument("batch: adapter slot " + std::to_string(s.adapter_slot) + " is not loaded");
    check_image_spans(s);
    if (has_mamba(cfg) && (s.state_slot < 0 || s.state_slot >= kMaxStateSlots))
      throw std::invalid_argument("batch: a hybrid Mamba model's sequence needs a state slot in [0, " +
                                  std::to_string(kMaxStateSlots) + "), got " + std::to_string(s.state_slot));
  }
  if (has_mamba(cfg)) {
    std::vector<int32_t> used;
    for (const BatchSeq& s : b.seqs) used.push_back(s.state_slot);
    std::sort(used.begin(), used.end());
    if (std::adjacent_find(used.begin(), used.end()) != used.end())
      throw std::invalid_argument("batch: two sequences share a state slot");
  }
  if (next != T) throw std::invalid_argument("batch: sequences do not cover all token rows");
  for (int32_t r : b.logit_rows)
    if (r < 0 || r >= T) throw std::invalid_argument("batch: logit row out of range");
  for (int32_t r : b.hidden_rows)
    if (r < 0 || r >= T) throw std::invalid_argument("batch: hidden row out of range");
  if (b.embed_values.size() != b.embed_rows.size() * static_cast<size_t>(cfg.hidden))
    throw std::invalid_argument("batch: embedValues must hold hidden (" + std::to_string(cfg.hidden) +
                                ") floats per embedRows entry");
  for (int32_t r : b.embed_rows)
    if (r < 0 || r >= T) throw std::invalid_argument("batch: embed row out of range");
  check_deepstack(cfg, b);
}

std::vector<float> assemble_logits(const ModelConfig& cfg, const float* gathered, int world, int64_t rows) {
  const int64_t chunk = cfg.vocab_chunk;
  std::vector<float> logits(rows * cfg.vocab);
  for (int rk = 0; rk < world; ++rk) {
    const int64_t v0 = rk * chunk;
    const int64_t len = v0 >= cfg.vocab ? 0 : (v0 + chunk > cfg.vocab ? cfg.vocab - v0 : chunk);
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(logits.data() + r * cfg.vocab + v0, gathered + (rk * rows + r) * chunk, sizeof(float) * len);
  }
  return logits;
}

void Model::validate_batch(const Batch& b) const {
  if (!finalized_) throw std::logic_error("model: forward before finalize()");
  weft::validate_batch(cfg_, b, [this](int32_t slot) { return slots_[slot].loaded; });
}

std::vector<float> Model::forward(const Batch& b) {
  std::lock_guard<std::mutex> lock(mu_);
  validate_batch(b);
  const int64_t T = static_cast<int64_t>(b.tokens.size());
  const int64_t H = cfg_.hidden, hd = cfg_.head_dim;
  const int64_t nq = cfg_.heads_local, nkv = cfg_.kv_heads_local;
  const int64_t q_dim = nq * hd, kv_dim = nkv * hd;
  const int64_t qkv_out = is_mla(cfg_) ? 0 : module_out(kQkv), up_out = module_out(kUp), I = cfg_.intermediate_local;

  std::vector<int32_t> token_slots(static_cast<size_t>(T));
  std::vector<cpu::AttentionSeq> att(b.seqs.size());
  for (size_t i = 0; i < b.seqs.size(); ++i) {
    const BatchSeq& s = b.seqs[i];
    for (int64_t t = 0; t < s.num_tokens; ++t) token_slots[s.token_start + t] = s.adapter_slot;
    att[i] = {s.token_start, s.num_tokens, s.context_len, s.block_table.data(),
              s.image_spans.empty() ? nullptr : s.image_spans.data(), static_cast<int64_t>(s.image_spans.size() / 2)};
  }
  // Op profile: LoRA ops are their own entries only in steps that have adapter rows.
  const bool lora = std::any_of(token_slots.begin(), token_slots.end(), [](int32_t s) { return s >= 0; });
  auto mark_lora = [&](const char* op) {
    if (lora) ops_.mark(op);
  };

  if (has_mamba(cfg_)) prepare_states(b);
  ops_.mark("embed");
  std::vector<float> h(T * H), x(T * H), qkv(T * qkv_out), q(T * q_dim), k(T * kv_dim), v(T * kv_dim),
      attn(T * q_dim), o(T * H), up(T * up_out), act(T * I), down(T * H), xm(cfg_.parallel_mlp_norm ? T * H : 0);
  cpu::embedding_gather(w("embed"), cfg_.vocab, H, b.tokens.data(), T, h.data());
  if (cfg_.embed_scale != 1.0f)  // Gemma's √hidden, Granite's embedding_multiplier
    for (float& v : h) v *= cfg_.embed_scale;
  // LoRA on the token embedding (PEFT adds it to the embedding's output, before position embeddings). A scaled
  // embedding scales the LoRA delta too: PEFT multiplies it by the layer's embed_scale (Gemma), and Granite
  // multiplies the whole embedding output.
  for (const BatchSeq& s : b.seqs) {
    if (s.adapter_slot < 0) continue;
    for (const LoraPart& p : slots_[s.adapter_slot].embed)
      cpu::lora_embedding_add(h.data(), H, b.tokens.data(), s.token_start, s.token_start + s.num_tokens, p.a.data(),
                              p.b.data(), p.rank, cfg_.vocab, p.scale * cfg_.embed_scale);
  }
  // Vision-language models: an image's projected features replace its placeholder tokens' embeddings, after
  // everything above (transformers scatters them into inputs_embeds, which the text model then uses as they are).
  for (size_t i = 0; i < b.embed_rows.size(); ++i)
    std::memcpy(h.data() + static_cast<int64_t>(b.embed_rows[i]) * H, b.embed_values.data() + i * H, sizeof(float) * H);
  if (cfg_.learned_positions) {
    std::vector<float> pe(T * H);
    cpu::embedding_gather(w("pos_embed"), cfg_.max_positions, H, b.positions.data(), T, pe.data());
    cpu::add_inplace(h.data(), pe.data(), T * H);
  }

  // A head's weightless norm parameters (Llama 4's q/k RMS norm; Command R+'s LayerNorm bias): once per step.
  const std::vector<float> ones(static_cast<size_t>(hd), 1.0f), zeros(static_cast<size_t>(hd), 0.0f);
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    // Attention block.
    ops_.mark("norm");
    norm(h.data(), T, p + "attn_norm", x.data());
    if (cfg_.parallel_mlp_norm) norm(h.data(), T, p + "mlp_norm", xm.data());  // GPT-NeoX: the MLP's own norm of h
    const bool mamba = layer_is_mamba(cfg_, l);
    if (mamba) {  // a hybrid model's Mamba-2 mixer in place of attention (mamba.cc)
      ops_.mark("mamba");
      mamba_mixer(l, x.data(), T, b, token_slots, o.data());
    } else {
      if (is_mla(cfg_)) {  // latent attention's projections (LoRA included), laid out as q, k, v per head
        ops_.mark("mla projections");
        mla_qkv(l, x.data(), T, token_slots, q.data(), k.data(), v.data());
      } else {
        ops_.mark("gemm qkv");
        cpu::gemm_xwt(x.data(), T, H, w(p + "qkv.weight"), qkv_out, w_opt(p + "qkv.bias"), qkv.data(), false);
        mark_lora("lora qkv");
        apply_lora(static_cast<int>(l), kQkv, x.data(), H, token_slots, qkv.data(), qkv_out, w_opt(p + "qkv.bias"));
        for (int64_t t = 0; t < T; ++t) {
          const float* row = qkv.data() + t * qkv_out;
          std::memcpy(q.data() + t * q_dim, row, sizeof(float) * q_dim);
          std::memcpy(k.data() + t * kv_dim, row + q_dim, sizeof(float) * kv_dim);
          std::memcpy(v.data() + t * kv_dim, row + q_dim + kv_dim, sizeof(float) * kv_dim);
        }
      }
      ops_.mark("rope + kv write");
      if (cfg_.qk_norm && !cfg_.qk_norm_post_rope) {  // per head: rows of head_dim (op profile: part of "rope + kv write")
        cpu::rms_norm(q.data(), T * nq, hd, w(p + "q_norm.weight"), cfg_.norm_eps, q.data());
        cpu::rms_norm(k.data(), T * nkv, hd, w(p + "k_norm.weight"), cfg_.norm_eps, k.data());
      } else if (cfg_.qk_norm_full) {
        qk_norm_full(q.data(), k.data(), T, w(p + "q_norm.weight"), w(p + "k_norm.weight"));
      } else if (cfg_.qk_layer_norm) {  // Command R+: each head its own LayerNorm weights, no bias
        const float* qw = w(p + "q_norm.weight");
        const float* kw = w(p + "k_norm.weight");
        for (int64_t t = 0; t < T; ++t) {
          for (int64_t h = 0; h < nq; ++h) {
            float* row = q.data() + (t * nq + h) * hd;
            cpu::layer_norm(row, 1, hd, qw + h * hd, zeros.data(), cfg_.norm_eps, row);
          }
          for (int64_t h = 0; h < nkv; ++h) {
            float* row = k.data() + (t * nkv + h) * hd;
            cpu::layer_norm(row, 1, hd, kw + h * hd, zeros.data(), cfg_.norm_eps, row);
          }
        }
      }
      if (cfg_.qkv_clip > 0.0f) {  // OLMo's clip_qkv
        const float c = cfg_.qkv_clip;
        for (std::vector<float>* a : {&q, &k, &v})
          for (float& x : *a) x = std::min(c, std::max(-c, x));
      }
      if (layer_has_rope(cfg_, l)) {
        const float* inv_freq = layer_inv_freq(cfg_, l).data();
        const uint8_t* use_long = b.rope_long.empty() ? nullptr : b.rope_long.data();
        if (!cfg_.mrope_section.empty()) {  // Qwen2-VL: each frequency section rotated by its own coordinate
          const int32_t* pos3 = b.mrope_positions.empty() ? nullptr : b.mrope_positions.data();
          cpu::rope_mrope(q.data(), T, nq, hd, cfg_.rotary_dim, b.positions.data(), pos3, cfg_.mrope_section.data(),
                          inv_freq, layer_rope_attention_factor(cfg_, l), cfg_.mrope_interleaved);
          cpu::rope_mrope(k.data(), T, nkv, hd, cfg_.rotary_dim, b.positions.data(), pos3, cfg_.mrope_section.data(),
                          inv_freq, layer_rope_attention_factor(cfg_, l), cfg_.mrope_interleaved);
        } else {
          cpu::rope_rotate_half(q.data(), T, nq, hd, cfg_.rotary_dim, b.positions.data(), inv_freq,
                                layer_rope_attention_factor(cfg_, l), use_long, cfg_.inv_freq_long.data(), cfg_.rope_interleaved);
          cpu::rope_rotate_half(k.data(), T, nkv, hd, cfg_.rotary_dim, b.positions.data(), inv_freq,
                                layer_rope_attention_factor(cfg_, l), use_long, cfg_.inv_freq_long.data(), cfg_.rope_interleaved);
        }
      }
      if (cfg_.qk_norm_after_rope && layer_has_rope(cfg_, l)) {  // Llama 4: weightless per-head RMS norm after RoPE
        cpu::rms_norm(q.data(), T * nq, hd, ones.data(), cfg_.norm_eps, q.data());
        cpu::rms_norm(k.data(), T * nkv, hd, ones.data(), cfg_.norm_eps, k.data());
      } else if (cfg_.qk_norm && cfg_.qk_norm_post_rope) {  // Hunyuan: the per-head norm, with its weights, after RoPE
        cpu::rms_norm(q.data(), T * nq, hd, w(p + "q_norm.weight"), cfg_.norm_eps, q.data());
        cpu::rms_norm(k.data(), T * nkv, hd, w(p + "k_norm.weight"), cfg_.norm_eps, k.data());
      }
      if (layer_query_scaled(cfg_, l)) {  // Ministral 3, Llama 4's NoPE layers: the query scaled by position (not the keys)
        for (int64_t t = 0; t < T; ++t) {
          const float s = llama4_query_scale(b.positions[t] + static_cast<int32_t>(cfg_.q_scale_offset), cfg_.q_scale_beta,
                                             cfg_.q_scale_period);
          for (int64_t i = 0; i < q_dim; ++i) q[t * q_dim + i] *= s;
        }
      }
      cpu::kv_cache_write(k.data(), v.data(), T, kv_dim, b.slot_mapping.data(), k_cache_[l].data(), v_cache_[l].data());
      ops_.mark("attention");
      cpu::paged_attention(q.data(), nq, nkv, hd, att.data(), static_cast<int64_t>(att.size()), k_cache_[l].data(),
                           v_cache_[l].data(), cfg_.block_size, cfg_.attn_scale, layer_window(cfg_, l), attn.data(),
                           cfg_.attn_softcap, cfg_.attn_sinks ? w(p + "attn_sinks") : nullptr, layer_chunk(cfg_, l),
                           !cfg_.bidirectional);
      // Row-parallel: partial product plus this rank's partial LoRA term, then one all-reduce (DESIGN.md §3). DoRA's
      // channel scale applies to each rank's partial sum (it distributes over the sum); the bias comes after.
      if (is_mla(cfg_)) {  // each head's first mla_v_dim outputs (its value width), packed: o reads [T, heads · v_dim]
        const int64_t vd = cfg_.mla_v_dim;
        for (int64_t r = 0; r < T * nq; ++r) std::memmove(attn.data() + r * vd, attn.data() + r * hd, sizeof(float) * vd);
      }
      const int64_t o_in = module_in(kO);
      ops_.mark("gemm o");
      cpu::gemm_xwt(attn.data(), T, o_in, w(p + "o.weight"), H, nullptr, o.data(), false);
      mark_lora("lora o");
      apply_lora(static_cast<int>(l), kO, attn.data(), o_in, token_slots, o.data(), H);
    }
    ops_.mark("residual");
    coll_->all_reduce_sum(o.data(), T * H);
    if (const float* ob = w_opt(p + (mamba ? "out_proj.bias" : "o.bias")))
      for (int64_t t = 0; t < T; ++t) cpu::add_inplace(o.data() + t * H, ob, H);
    finish_block_output(o.data(), T, p + "post_attn_norm.weight");
    cpu::add_inplace(h.data(), o.data(), T * H);

    // MLP block. A parallel block's MLP reads the attention's input x (h + attn(x) + mlp(x)), or GPT-NeoX's own norm
    // of the block input.
    if (!cfg_.parallel_block) {
      ops_.mark("norm");
      norm(h.data(), T, p + "mlp_norm", x.data());
    } else if (cfg_.parallel_mlp_norm) {
      std::swap(x, xm);
    }
    if (layer_is_moe(cfg_, l)) {
      ops_.mark("moe");
      moe_mlp(l, x.data(), T, token_slots, down.data());
      ops_.mark("residual");
      coll_->all_reduce_sum(down.data(), T * H);
      finish_block_output(down.data(), T, p + "post_mlp_norm.weight");
      cpu::add_inplace(h.data(), down.data(), T * H);
      add_deepstack(b, l, H, h.data());
      continue;
    }
    ops_.mark("gemm up");
    cpu::gemm_xwt(x.data(), T, H, w(p + "up.weight"), up_out, w_opt(p + "up.bias"), up.data(), false);
    mark_lora("lora up");
    apply_lora(static_cast<int>(l), kUp, x.data(), H, token_slots, up.data(), up_out, w_opt(p + "up.bias"));
    ops_.mark("activation");
    if (gated_mlp(cfg_)) {
      for (int64_t t = 0; t < T; ++t)
        gated_activation(cfg_, up.data() + t * up_out, up.data() + t * up_out + I, act.data() + t * I, I);
    } else {
      act = up;
      if (cfg_.mlp == MlpKind::kGeluTanh) cpu::gelu_tanh(act.data(), T * I);
      else if (cfg_.mlp == MlpKind::kReluSquared) cpu::relu_squared(act.data(), T * I);
      else if (cfg_.mlp == MlpKind::kXielu) {
        const float* a = w(p + "xielu");
        cpu::xielu(act.data(), T * I, a[0], a[1], a[2], a[3]);
      }
      else cpu::gelu_erf(act.data(), T * I);
    }
    ops_.mark("gemm down");
    cpu::gemm_xwt(act.data(), T, I, w(p + "down.weight"), H, nullptr, down.data(), false);
    mark_lora("lora down");
    apply_lora(static_cast<int>(l), kDown, act.data(), I, token_slots, down.data(), H);
    ops_.mark("residual");
    coll_->all_reduce_sum(down.data(), T * H);
    if (const float* db = w_opt(p + "down.bias"))
      for (int64_t t = 0; t < T; ++t) cpu::add_inplace(down.data() + t * H, db, H);
    finish_block_output(down.data(), T, p + "post_mlp_norm.weight");
    cpu::add_inplace(h.data(), down.data(), T * H);
    add_deepstack(b, l, H, h.data());
  }

  // Final norm and lm_head only for the rows whose logits are wanted.
  ops_.mark("final norm");
  const int64_t R = static_cast<int64_t>(b.logit_rows.size());
  std::vector<float> hr(R * H), xr(R * H);
  std::vector<int32_t> row_slots(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) {
    std::memcpy(hr.data() + r * H, h.data() + b.logit_rows[r] * H, sizeof(float) * H);
    row_slots[r] = token_slots[b.logit_rows[r]];
  }
  norm(hr.data(), R, "final_norm", xr.data());
  const int64_t chunk = cfg_.vocab_chunk;
  std::vector<float> local(R * chunk, 0.0f), local_dense(R * cfg_.vocab_local);
  ops_.mark("gemm lm_head");
  cpu::gemm_xwt(xr.data(), R, H, w("lm_head"), cfg_.vocab_local, w_opt("lm_head.bias"), local_dense.data(), false);
  mark_lora("lora lm_head");
  apply_lora(-1, kLmHead, xr.data(), H, row_slots, local_dense.data(), cfg_.vocab_local);
  if (cfg_.logits_divisor != 1.0f)  // Granite's logits_scaling
    for (float& v : local_dense) v /= cfg_.logits_divisor;
  if (cfg_.final_softcap > 0.0f)  // Gemma 2: on the logits lm_head (and its LoRA) produced
    for (float& v : local_dense) v = std::tanh(v / cfg_.final_softcap) * cfg_.final_softcap;
  ops_.mark("logits");
  for (int64_t r = 0; r < R; ++r)
    std::memcpy(local.data() + r * chunk, local_dense.data() + r * cfg_.vocab_local, sizeof(float) * cfg_.vocab_local);
  const int world = coll_->world();
  std::vector<float> gathered(static_cast<size_t>(world) * R * chunk);
  coll_->all_gather(local.data(), R * chunk, gathered.data());
  std::vector<float> logits = assemble_logits(cfg_, gathered.data(), world, R);
  if (b.return_hidden) logits.insert(logits.end(), xr.begin(), xr.end());
  if (!b.hidden_rows.empty()) append_hidden_rows(h.data(), b.hidden_rows, logits);
  ops_.finish();
  return logits;
}

// The final-normed hidden states of `rows` of the residual stream h [T, hidden], appended to out (pooled embeddings).
void Model::append_hidden_rows(const float* h, const std::vector<int32_t>& rows, std::vector<float>& out) const {
  const int64_t H = cfg_.hidden, n = static_cast<int64_t>(rows.size());
  std::vector<float> gathered(static_cast<size_t>(n * H));
  for (int64_t r = 0; r < n; ++r) std::memcpy(gathered.data() + r * H, h + rows[r] * H, sizeof(float) * H);
  const size_t at = out.size();
  out.resize(at + static_cast<size_t>(n * H));
  norm(gathered.data(), n, "final_norm", out.data() + at);
}

void Model::set_op_profile(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  ops_.set(on);
}

std::vector<OpTime> Model::take_op_profile() {
  std::lock_guard<std::mutex> lock(mu_);
  return ops_.take();
}

}  // namespace weft
