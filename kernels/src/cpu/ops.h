// CPU backend: fp32 reference implementations of every op the model executor uses.
// Raw pointers, no allocation, no JS: callers (model executor, N-API bindings) validate shapes.
// Every op computes each token's row independently, so a token's result never depends on what
// else is in the batch (a request served alone equals the same request in a batch, bit for bit).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace weft::cpu {

// y[t, o] = x[t, :] . W[o, :] (+ bias[o]); W is [out, in] row-major. accumulate: y += instead of y =.
void gemm_xwt(const float* x, int64_t tokens, int64_t in, const float* w, int64_t out,
              const float* bias, float* y, bool accumulate);
// Eight independent partial sums: lets the compiler vectorise without -ffast-math, and the summation order
// is fixed, so the same row always gives the same result. Inline: attention calls it per (head, position)
// on rows of head_dim floats, where a call per dot product showed in profiles.
inline float dot(const float* a, const float* b, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) s[k] += a[i + k] * b[i + k];
  }
  float tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + tail;
}

void rms_norm(const float* x, int64_t tokens, int64_t hidden, const float* weight, float eps, float* out);
void layer_norm(const float* x, int64_t tokens, int64_t hidden, const float* weight, const float* bias,
                float eps, float* out);

// Rotary embedding, "rotate half" (GPT-NeoX / HF Llama) layout, applied in place to the first
// rotary_dim dims of each head. inv_freq has rotary_dim/2 entries. attention_factor scales cos/sin.
// use_long (null, or [tokens]): tokens marked 1 are rotated with inv_freq_long (longrope's long factors).
// interleaved (GLM-4): frequency i rotates dims (2i, 2i+1) instead of (i, i + rotary_dim/2).
void rope_rotate_half(float* x, int64_t tokens, int64_t heads, int64_t head_dim, int64_t rotary_dim,
                      const int32_t* positions, const float* inv_freq, float attention_factor,
                      const uint8_t* use_long = nullptr, const float* inv_freq_long = nullptr, bool interleaved = false);

// Multimodal RoPE (Qwen2-VL's apply_multimodal_rotary_pos_emb), rotate-half layout: frequency i of the first
// section[0] ones turns by the token's temporal position, the next section[1] by its height, the last section[2] by
// its width. pos3: [3 · tokens] (all temporal positions, then heights, then widths), or null: `positions` for all.
// interleaved (Qwen3-VL's apply_interleaved_mrope): frequency i turns by the height when i mod 3 = 1 and
// i < 3 · section[1], by the width when i mod 3 = 2 and i < 3 · section[2], else by the temporal position.
void rope_mrope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, int64_t rotary_dim, const int32_t* positions,
                const int32_t* pos3, const int64_t* section, const float* inv_freq, float attention_factor,
                bool interleaved = false);

void silu_mul(const float* gate, const float* up, float* out, int64_t n);  // out = silu(gate) * up
void gelu_tanh(float* x, int64_t n);                                        // gelu_new / gelu_pytorch_tanh
void gelu_tanh_mul(const float* gate, const float* up, float* out, int64_t n);  // out = gelu_tanh(gate) * up (GeGLU)
void gelu_erf(float* x, int64_t n);                                         // exact gelu
void relu_squared(float* x, int64_t n);
// xIELU (Apertus, transformers' XIELUActivation), in place: x > 0: alpha_p·x·x + beta·x, else
// (expm1(min(x, eps)) − x)·alpha_n + beta·x. alpha_p and alpha_n are the effective values: softplus of the stored
// parameters, alpha_n plus beta (what load-weights.ts hands over).
void xielu(float* x, int64_t n, float alpha_p, float alpha_n, float beta, float eps);
// gpt-oss's expert activation: g = min(gate, limit), u = clamp(up, -limit, limit); out = g·σ(alpha·g)·(u + 1).
void clamped_swiglu(const float* gate, const float* up, float* out, int64_t n, float alpha, float limit);                                     // max(x, 0)², in place
void add_inplace(float* y, const float* x, int64_t n);

void embedding_gather(const float* table, int64_t rows, int64_t dim, const int32_t* ids, int64_t n, float* out);

// Paged KV cache write: for token t, copy k[t], v[t] ([kv_heads*head_dim]) into cache slot slot_mapping[t].
void kv_cache_write(const float* k, const float* v, int64_t tokens, int64_t kv_dim, const int32_t* slot_mapping,
                    float* k_cache, float* v_cache);

struct AttentionSeq {
  int64_t token_start;   // first row of this sequence in q / out
  int64_t num_tokens;    // rows computed this step
  int64_t context_len;   // tokens in the cache after this step (positions 0 .. context_len-1)
  const int32_t* block_table;
  // Gemma 3's images (or null): num_spans position ranges [s, e), as pairs, sorted and disjoint. A query at a
  // position inside one also sees that span's later keys, up to e - 1 (which must be < context_len): an image's
  // tokens attend to each other both ways. Everything else stays causal; a window still bounds the earlier keys.
  const int32_t* image_spans = nullptr;
  int64_t num_spans = 0;
};
// Causal paged attention over the cache (K/V already written). Query row i of a sequence sits at
// position context_len - num_tokens + i. sliding_window > 0 keeps the last sliding_window keys
// (key j is visible when pos - j < sliding_window). GQA: q head h reads kv head h / (heads / kv_heads).
// softcap > 0 (Gemma 2): each scaled score x becomes softcap·tanh(x / softcap) before the mask and softmax.
// sinks (gpt-oss; null: none): head h's learned logit sinks[h] joins the softmax as one more score with no value,
// so the head's weights over the keys sum to less than 1. chunk > 0 (Llama 4's chunked attention): only the keys of
// the query's own chunk of `chunk` positions are visible (key j when ⌊j / chunk⌋ = ⌊pos / chunk⌋).
// image_spans (AttentionSeq): causal, but a query inside an image span sees the whole span (see there).
// causal false (bidirectional models: EmbeddingGemma): a query also sees the keys after it, up to the context's last,
// and a window is two-sided (key j visible when |pos - j| < sliding_window); chunk must then be 0.
void paged_attention(const float* q, int64_t heads, int64_t kv_heads, int64_t head_dim, const AttentionSeq* seqs,
                     int64_t num_seqs, const float* k_cache, const float* v_cache, int64_t block_size,
                     float scale, int64_t sliding_window, float* out, float softcap = 0.0f, const float* sinks = nullptr,
                     int64_t chunk = 0, bool causal = true);

// LoRA for one adapter segment: y[t, out_offset + o] += scale * (B[o, :] . (A x[t])) for tokens [t0, t1).
// A is [rank, in], B is [out_len, rank]; y has row stride y_stride.
void lora_shrink_expand(const float* x, int64_t t0, int64_t t1, int64_t in, const float* a, const float* b,
                        int64_t rank, int64_t out_len, float scale, float* y, int64_t y_stride, int64_t out_offset);

// LoRA on the token embedding for tokens [t0, t1): h[t, o] += scale · (B[o, :] · A[:, tokens[t]]), A [rank, vocab]
// (the token's column is the shrink of its one-hot row), B [hidden, rank]; h rows `hidden` apart.
void lora_embedding_add(float* h, int64_t hidden, const int32_t* tokens, int64_t t0, int64_t t1, const float* a,
                        const float* b, int64_t rank, int64_t vocab, float scale);

// DoRA on one segment, after its LoRA delta is in y: y[t, out_offset + o] = mag[o]·(y - bias[o]) + bias[o] for
// tokens [t0, t1) (bias null: none), so the base product and the delta are both scaled and the bias is not.
void dora_scale(float* y, int64_t t0, int64_t t1, int64_t y_stride, int64_t out_offset, int64_t out_len,
                const float* mag, const float* bias);

// DoRA weight norms: out[o] = sum over j < in of (w[o, j] + scale·(b[o, :]·a[:, j]))² for rows o < rows,
// accumulated in double. w [rows, in] (row stride in), a [rank, in], b [rows, rank].
void lora_weight_norms_sq(const float* w, int64_t rows, int64_t in, const float* a, const float* b, int64_t rank,
                          float scale, float* out);

// Sampling ----------------------------------------------------------------------------------------
struct SamplingParams {
  float temperature = 1.0f;
  int32_t top_k = 0;           // 0 = off
  float top_p = 1.0f;          // 1 = off
  float typical_p = 1.0f;      // 1 = off
  // Keep the tokens at least min_p times as likely as the most likely one (after top-k / top-p, before typical-p,
  // as transformers' MinPLogitsWarper). 0 = off.
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  // OpenAI's, on the generated tokens (the last draw_index of penalty_tokens): logit -= frequency_penalty *
  // count + presence_penalty * (count > 0). 0 = off.
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  // OpenAI logit_bias: (token, bias) added after the penalties, before temperature.
  std::vector<std::pair<int32_t, float>> logit_bias;
  // Structured output: bit t (byte t/8, bit t%8) set = token t may be drawn; every other token gets -inf.
  // Empty = no constraint.
  std::vector<uint8_t> allowed_mask;
  bool do_sample = false;
  uint64_t seed = 0;
  uint64_t draw_index = 0;     // which draw of this sequence (its generated-token count): RNG = f(seed, index)
};
struct SampleResult {
  int32_t token;
  float logprob;                                   // log-softmax of the processed logits at `token`
  std::vector<std::pair<int32_t, float>> top;      // top_n (token, logprob), most likely first
};
// logits: [vocab] for one sequence (not modified). penalty_tokens: tokens seen so far (prompt + generated; the
// last p.draw_index of them are the generated ones).
SampleResult sample_token(const float* logits, int64_t vocab, const SamplingParams& p, const int32_t* penalty_tokens,
                          int64_t num_penalty_tokens, int32_t top_n);
// log-softmax of logits [vocab] at index token.
float log_softmax_at(const float* logits, int64_t vocab, int32_t token);

// fp16 (bf16 = false) or bf16 bit patterns -> float32, exactly; split over the CPU pool's threads (convert.cc).
void half_to_float(const uint16_t* src, int64_t n, bool bf16, float* out);
// float32 -> fp16 (bf16 false) or bf16 bit patterns, round to nearest even (what the GPU's __float2half_rn /
// __float2bfloat16_rn give), on the CPU pool's threads: LoRA parts planned for a 16-bit GPU shard.
void float_to_half(const float* src, int64_t n, bool bf16, uint16_t* out);

}  // namespace weft::cpu
