// weft CUDA kernels: plain launchers over raw device pointers (the first of punica's three binding layers).
// Every launcher takes sizes, a dtype and an explicit stream, enqueues its work and returns the launch
// status (cudaErrorInvalidValue for arguments it refuses). Nothing here allocates, synchronises, throws or
// exits; callers check shapes first (the CPU ops in cpu/ops.h are the oracle for every semantic below).
// Zero-sized work returns cudaSuccess without launching. Pointers used for vector loads must be 16-byte
// aligned (cudaMalloc gives 256): the launchers check and fall back or refuse, as noted per op.
//
// Kernel notes (file → algorithm; T = f32 | f16 | bf16 storage, math always fp32 unless noted):
// - norm.cu        RMSNorm / LayerNorm: one block per row, warp-shuffle + shared block reductions, two
//                  passes over the row (the second hits L1/L2): bandwidth-bound, ≈ read x + write out.
// - rope.cu        rotate-half RoPE in place on q and k (one launch for both, row strides so it runs on the
//                  fused qkv buffer): one block per token; angle = pos·inv_freq in fp32 as transformers does,
//                  cos/sin taken in double so --use_fast_math cannot change them.
// - activation.cu  silu(gate)·up (also GeGLU and gpt-oss's clamped SwiGLU) on the [T, 2I] gate|up layout, gelu
//                  tanh/erf, residual add (mixed dtypes, e.g. fp32 residual += bf16), bias add, embedding
//                  gather (+ learned positions), dtype conversion: grid-stride elementwise kernels, bandwidth-bound.
// - kv_cache.cu    K/V rows of new tokens → cache slots (slot < 0 = padding, skipped): a byte copy with the
//                  widest vector (16/8/4/2 B) every pointer and stride allows.
// - attention.cu   paged attention over the cache layout [num_blocks·block_size, kv_heads·head_dim]:
//                  decode = flash-decoding (one block per query row × kv head × 512-key partition (256 for GQA), up to 4 q
//                  heads of the GQA group per block so each K/V load serves all of them — 8 would need ~240
//                  registers a thread; lanes split head_dim into 8-element vectors; one online-softmax pass
//                  over K and V; rows longer than one partition write fp32 partials that a second kernel
//                  merges; rows within one partition are written directly). The partition is fixed in key
//                  index, not sized to the batch, so a row's result never depends on what else is in the
//                  batch. Bandwidth-bound: reads ≈ context·kv_dim·2·sizeof(T) per query row.
//                  prefill = tiled flash attention on CUDA cores: a block owns 16 (token, q head) rows of
//                  one kv head, streams 32-key K/V tiles through shared memory (gathered via the block
//                  table), online softmax in fp32, causal + sliding window + chunk masks. head_dim: multiple of 8,
//                  ≤ 256. For bf16/fp16 with head_dim % 16 == 0 (≤ 128) the tensor-core kernel replaces it:
// - attention_prefill_mma.cu + prefill_mma_body.h: flash-attention-2 on mma.sync m16n8k16 (64 query rows ×
//                  64-key tiles, P·V with P as a bf16 hi + lo pair); the body also runs under the host warp
//                  emulator in test/emulated/ (npm test), so it is tested where no GPU is. prefill_pipelined_body.h:
//                  the same algorithm with cp.async double-buffered K/V stages, ldmatrix fragments and causal
//                  column skipping (the default since measured on an H100; WEFT_PREFILL_ATTENTION=mma: the first).
//                  Every attention kernel takes gpt-oss's sinks (PagedAttention::sinks): folded into a row's max
//                  and sum once its keys are done (decode: as one more partition, sum 1 and no value), and
//                  Llama 4's chunked attention (PagedAttention::chunk): a row's first key is its chunk's or its
//                  window's, whichever is later (prefill_mma_body.h's first_key); no block loads keys before its
//                  rows' first.
// - lora.cu        LoRA shrink h = x·Aᵀ (fp32 [slices, T, max_rank]) and expand y[:, off:off+len] +=
//                  scale·h·Bᵀ. SGMV: work = segments of consecutive rows sharing an adapter (8-row tiles
//                  reuse each weight load); BGMV: one row per block, adapter picked per token from a slot
//                  table (decode). Any rank ≤ max_rank, any hidden size (vector path when aligned, scalar
//                  otherwise); null A/B or rank 0 = base only, skipped. Bandwidth-bound on A/B bytes.
//                  The SGMV shrink of 16-bit data runs on tensor cores (lora_shrink_mma_body.h: 16-row tiles,
//                  4 warps splitting `in`, x read once per 64 ranks) and the SGMV expand with 16-byte y/B
//                  accesses (lora_expand_vec_body.h: 8 consecutive outputs × 8 rows per thread); both are
//                  emulated in npm test like the attention.
// - sampling.cu    logits processing (repetition penalty, temperature), greedy argmax (ties → lowest id),
//                  and seeded sampling with the CPU's exact rules: a stable device radix sort by (row,
//                  value desc), then one block per row does top-k / top-p / the draw with double-precision
//                  scans, RNG = splitmix64(seed, draw index) as in cpu/sampling.cc. typical_p is not done
//                  here: rows that ask for it are sampled on the CPU.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "model/moe_route.h"
#include "mrope_body.h"

namespace weft::cuda {

enum class DType : int32_t { kF32 = 0, kF16 = 1, kBF16 = 2 };

// Norms ---------------------------------------------------------------------------------------------
// out[t] = weight ⊙ x[t] / sqrt(mean(x[t]²) + eps). x and out may alias. weight and bias share w_dtype.
cudaError_t rms_norm(const void* x, DType x_dtype, int64_t tokens, int64_t hidden, const void* weight, DType w_dtype,
                     float eps, void* out, DType out_dtype, cudaStream_t stream);
// out[t] = (x[t] - mean) / sqrt(var + eps) ⊙ weight + bias (bias may be null).
cudaError_t layer_norm(const void* x, DType x_dtype, int64_t tokens, int64_t hidden, const void* weight,
                       const void* bias, DType w_dtype, float eps, void* out, DType out_dtype, cudaStream_t stream);
// The residual step and the next norm in one launch: h[t] += delta[t] (fp32 residual stream, written back), then
// out[t] = rms_norm (rms) or layer_norm of the new h[t]. Bitwise equal to add_inplace followed by the norm.
cudaError_t add_norm(float* h, const void* delta, DType delta_dtype, int64_t tokens, int64_t hidden, bool rms,
                     const void* weight, const void* bias, DType w_dtype, float eps, void* out, DType out_dtype,
                     cudaStream_t stream);

// Per-head RMSNorm in place (Qwen3's q_norm / k_norm): in each of `tokens` rows (`stride` elements apart), the first
// q_heads heads of head_dim elements are normalised with q_weight and the k_heads heads right after them with
// k_weight (the q|k|v projection output, v untouched). fp32 statistics, as rms_norm on each head's row.
// OLMo 2's full-width q/k RMS norm in two halves around a cross-rank sum (cuda_forward.cc): qk_sum_squares writes per
// row of x (q: q_dim values, k: kv_dim after them) the fp32 sums of squares [tokens][q, k]; qk_norm_apply scales q by
// q_weight / sqrt(sum_q / q_width + eps) and k likewise, in place.
cudaError_t qk_sum_squares(const void* x, DType dtype, int64_t tokens, int64_t stride, int64_t q_dim, int64_t kv_dim,
                           float* sums, cudaStream_t stream);
cudaError_t qk_norm_apply(void* x, DType dtype, int64_t tokens, int64_t stride, int64_t q_dim, int64_t kv_dim,
                          const float* sums, const void* q_weight, const void* k_weight, DType w_dtype, float q_width,
                          float k_width, float eps, cudaStream_t stream);
cudaError_t head_rms_norm(void* x, DType dtype, int64_t tokens, int64_t stride, int64_t q_heads, int64_t k_heads,
                          int64_t head_dim, const void* q_weight, const void* k_weight, DType w_dtype, float eps,
                          cudaStream_t stream);
// Command R+: the same heads LayerNorm-ed (mean subtracted, no bias), each head with its own weights — q_weight
// [q_heads, head_dim], k_weight [k_heads, head_dim].
cudaError_t head_layer_norm(void* x, DType dtype, int64_t tokens, int64_t stride, int64_t q_heads, int64_t k_heads,
                            int64_t head_dim, const void* q_weight, const void* k_weight, DType w_dtype, float eps,
                            cudaStream_t stream);

// RoPE ----------------------------------------------------------------------------------------------
// Rotate-half RoPE in place on the first rotary_dim dims of every head of q ([tokens, q_heads·head_dim] rows
// q_stride apart) and k (may be null). inv_freq: fp32 [rotary_dim/2]; cos/sin are scaled by attention_factor.
// cos_sin: rope_cos_sin_table's table for these tokens, or null to compute them here (the same values).
// rope_long (longrope, null = none): per token, 1 = rotate with the long factors' frequencies, stored in inv_freq
// after the short ones (inv_freq then holds rotary_dim frequencies). interleaved (GLM-4): frequency i rotates dims
// (2i, 2i+1) instead of (i, i + rotary_dim/2). mrope (Qwen2-VL; pos3 null = none): frequency i of token t rotates
// by rope_position (mrope_body.h) — not with rope_long or interleaved. The same in every RoPE launch below.
cudaError_t rope_rotate_half(void* q, int64_t q_heads, int64_t q_stride, void* k, int64_t k_heads, int64_t k_stride,
                             DType dtype, int64_t tokens, int64_t head_dim, int64_t rotary_dim,
                             const int32_t* positions, const float* inv_freq, float attention_factor,
                             cudaStream_t stream, const float* cos_sin = nullptr, const int32_t* rope_long = nullptr,
                             bool interleaved = false, const MRope& mrope = MRope{});

// Ministral 3, Llama 4's NoPE layers: q ([tokens, q_dim], rows q_stride apart) times
// llama4_query_scale(positions[t] + position_offset, beta, period). scale_in_dtype (Ministral 3): the scale is rounded
// to q's dtype before the product, as transformers casts it; false (Llama 4): the product of q and the fp32 scale is
// rounded once, as transformers' (q · scales).to(q.dtype).
cudaError_t query_position_scale(void* q, int64_t q_stride, int64_t q_dim, DType dtype, int64_t tokens,
                                 const int32_t* positions, float beta, int64_t period, cudaStream_t stream,
                                 int32_t position_offset = 0, bool scale_in_dtype = true);

// rope_rotate_half on q ([tokens, q_heads·head_dim] at the start of rows `stride` apart) and kv_cache_write of
// k and v (kv_heads·head_dim each, in the same rows) in one launch, k rotated on its way into the cache (the
// source k is not rotated). Bitwise the same cache rows and q as the two calls. rotary_dim ≥ 2.
cudaError_t rope_kv_cache_write(void* q, int64_t q_heads, const void* k, const void* v, int64_t kv_heads,
                                int64_t stride, DType dtype, int64_t tokens, int64_t head_dim, int64_t rotary_dim,
                                const int32_t* positions, const float* inv_freq, float attention_factor,
                                const int32_t* slot_mapping, void* k_cache, void* v_cache, cudaStream_t stream,
                                const float* cos_sin = nullptr, const int32_t* rope_long = nullptr,
                                bool interleaved = false, const MRope& mrope = MRope{});

// The (cos, sin) pairs every rotation of a step uses: table[t, i] for token t (position positions[t]) and
// frequency i < rotary_dim/2, fp32 [tokens, rotary_dim/2, 2], bitwise what the rotations compute themselves.
// One step's layers and heads all rotate at the same angles: without the table each element of q and k (64
// heads × 64 pairs × 32 layers for Llama-2-7B) evaluates its own double-precision sincos.
cudaError_t rope_cos_sin_table(const int32_t* positions, int64_t tokens, const float* inv_freq, int64_t rotary_dim,
                               float attention_factor, float* table, cudaStream_t stream,
                               const int32_t* rope_long = nullptr, const MRope& mrope = MRope{});

// Elementwise ---------------------------------------------------------------------------------------
// out[t, i] = silu(gate_up[t, i]) · gate_up[t, inter + i]; rows in_stride / out_stride elements apart.
// Mixture of experts (moe.cu; model/moe.cc on the CPU). moe_route: per token of logits [tokens, p.experts] (dtype),
// model/moe_route.h's choice: ids and weights [tokens, p.k (+1 with p.shared)]; bias: the float32 choice bias
// [p.experts] of sigmoid routing (null: none, Llama 4's router) or of ERNIE's softmax (required), else null.
// moe_gather: out[r] = x[rows[r]] for n rows of `width` elements. moe_combine: out[t] = Σ_j weights[src_w[t·k + j]] ·
// y[src_row[t·k + j]] over j < k in that order, fp32 sums, rows of `hidden`; null weights: every weight 1 (Llama 4,
// whose experts' inputs carry the weights: moe_scale_rows).
cudaError_t moe_route(const void* logits, DType dtype, const float* bias, int64_t tokens, const moe::RouteParams& p,
                      int32_t* ids, float* weights, cudaStream_t stream);
cudaError_t moe_gather(const void* x, DType dtype, int64_t width, const int32_t* rows, int64_t n, void* out,
                       cudaStream_t stream);
cudaError_t moe_combine(const void* y, DType dtype, const int32_t* src_row, const int32_t* src_w, const float* weights,
                        int64_t tokens, int64_t k, int64_t hidden, void* out, cudaStream_t stream);
// Llama 4 (ModelConfig::moe_scale_input): each gathered row x[src_row[t·k + j]] (`width` elements) times its routing
// weight weights[src_w[t·k + j]], the weight rounded to the dtype first (transformers casts the router's sigmoid scores
// to the hidden states' dtype), the product rounded once; in place. A shared expert's weight is 1: its rows keep
// their bits.
cudaError_t moe_scale_rows(void* x, DType dtype, int64_t width, const int32_t* src_row, const int32_t* src_w,
                           const float* weights, int64_t tokens, int64_t k, cudaStream_t stream);

// Qwen2-MoE's gated shared expert: weights[t·k + k − 1] = sigmoid(x[t] · gate) for each token (x [tokens, hidden],
// gate [hidden]; k: the experts each token runs, the shared one last).
cudaError_t moe_shared_gate(const void* x, const void* gate, DType dtype, int64_t tokens, int64_t hidden, int64_t k,
                            float* weights, cudaStream_t stream);

// Multi-head latent attention (mla.cu): writes out [tokens, 3·heads·(nope + rope)] = each token's q | k | v heads —
// q [q_rope | q_nope] from q (rows q_stride apart, each head [nope | rope]), k [k_rope | k_nope] with k_rope (rows
// rope_stride apart, one head's worth shared by all) and kv ([tokens, heads·(nope + v_dim)], each head [k_nope | v]),
// v [v | 0…] zero-padded to nope + rope.
cudaError_t mla_assemble(const void* q, int64_t q_stride, const void* kv, const void* k_rope, int64_t rope_stride,
                         DType dtype, int64_t tokens, int64_t heads, int64_t nope, int64_t rope, int64_t v_dim, void* out,
                         cudaStream_t stream);

cudaError_t silu_mul(const void* gate_up, int64_t in_stride, void* out, int64_t out_stride, int64_t tokens,
                     int64_t inter, DType dtype, cudaStream_t stream);
// silu_mul with 8 outputs a thread and 16-byte accesses (inter and both strides multiples of 8, 16-byte aligned
// buffers, else cudaErrorNotSupported): the same bits. silu_mul takes it with WEFT_SILU_MUL_VEC=1.
cudaError_t silu_mul_vec(const void* gate_up, int64_t in_stride, void* out, int64_t out_stride, int64_t tokens,
                         int64_t inter, DType dtype, cudaStream_t stream);
cudaError_t gelu_tanh(void* x, int64_t n, DType dtype, cudaStream_t stream);  // in place
// GeGLU (Gemma): out[t, i] = gelu_tanh(gate_up[t, i]) · gate_up[t, inter + i], silu_mul's layout.
cudaError_t gelu_tanh_mul(const void* gate_up, int64_t in_stride, void* out, int64_t out_stride, int64_t tokens,
                          int64_t inter, DType dtype, cudaStream_t stream);
// gpt-oss's clamped SwiGLU (cpu::clamped_swiglu), silu_mul's layout: g = min(gate, limit), u = clamp(up, -limit,
// limit), out[t, i] = g·σ(alpha·g)·(u + 1), fp32 math. limit > 0.
cudaError_t clamped_swiglu(const void* gate_up, int64_t in_stride, void* out, int64_t out_stride, int64_t tokens,
                           int64_t inter, float alpha, float limit, DType dtype, cudaStream_t stream);
cudaError_t gelu_erf(void* x, int64_t n, DType dtype, cudaStream_t stream);   // in place
cudaError_t clamp_inplace(void* x, int64_t n, float limit, DType dtype, cudaStream_t stream);  // to [-limit, limit]
cudaError_t relu_squared(void* x, int64_t n, DType dtype, cudaStream_t stream);  // max(x, 0)², in place (Arcee)
// xIELU (Apertus) in place, fp32 math as cpu::xielu; params: device float32 [alpha_p, alpha_n, beta, eps] (the layer's
// effective values, read by every thread, so a decode graph replays with whatever the buffer holds).
cudaError_t xielu(void* x, int64_t n, const float* params, DType dtype, cudaStream_t stream);
// x = cap·tanh(x / cap) in place (Gemma 2's final-logit softcap), fp32 math.
cudaError_t softcap_inplace(void* x, DType dtype, int64_t n, float cap, cudaStream_t stream);
// x = x·mul in place (Granite's residual multiplier and logits scaling), fp32 math.
cudaError_t scale_inplace(void* x, DType dtype, int64_t n, float mul, cudaStream_t stream);
cudaError_t add_inplace(void* y, DType y_dtype, const void* x, DType x_dtype, int64_t n, cudaStream_t stream);
// y[r, c] += bias[c] for a [rows, cols] matrix with row stride y_stride.
cudaError_t bias_add(void* y, DType y_dtype, int64_t rows, int64_t cols, int64_t y_stride, const void* bias,
                     DType bias_dtype, cudaStream_t stream);
// out[t] = table[ids[t]] (+ pos_table[positions[t]] when pos_table is set; same dtype as table).
// Ids (or positions) outside the table give a zero row, like the CPU op.
cudaError_t embedding_gather(const void* table, DType table_dtype, int64_t rows, int64_t dim, const int32_t* ids,
                             int64_t n, void* out, DType out_dtype, const void* pos_table, int64_t pos_rows,
                             const int32_t* positions, cudaStream_t stream, float scale = 1.0f);
cudaError_t convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n, cudaStream_t stream);
// Embedding-row overrides (Batch::embed_rows, vision-language models): `packed` is embed_override_body.h's layout on
// the device (n destination rows of h, then n fp32 feature rows; 16-byte aligned); each destination row of h (fp32
// [rows, hidden]) becomes its feature row rounded to round_to (the model's dtype) and back. embed_override.cu.
cudaError_t embed_override(const void* packed, int64_t n, int64_t hidden, float* h, DType round_to,
                           cudaStream_t stream);

// Decode-sized GEMM ---------------------------------------------------------------------------------
// y[m, :] = x[m, :]·Wᵀ (+ bias) for M ≤ 32 rows: W [N, K] row-major as the model stores it, x [M, K] contiguous,
// y rows y_stride apart, bias [N] or null; bf16/fp16, fp32 accumulation (skinny_gemm_body.h). K a multiple of
// 32, x and W 16-byte aligned; otherwise cudaErrorNotSupported (use cuBLASLt). WEFT_SKINNY_GEMM=1 makes the
// model's decode GEMMs use it (opt-in until measured on a GPU).
struct SkinnyGemmArgs {
  DType dtype;
  int64_t m, n, k;
  const void* x;
  const void* w;
  const void* bias;
  void* y;
  int64_t y_stride;
};
bool skinny_gemm_supported(const SkinnyGemmArgs& a);
cudaError_t skinny_gemm(const SkinnyGemmArgs& a, cudaStream_t stream);

// KV cache ------------------------------------------------------------------------------------------
// k_cache[slot_mapping[t]] = k[t], likewise v; rows of k/v are src_stride elements apart (so k and v can
// point into the fused qkv buffer), cache rows kv_dim apart. slot < 0 skips the token.
cudaError_t kv_cache_write(const void* k, const void* v, int64_t src_stride, int64_t tokens, int64_t kv_dim,
                           const int32_t* slot_mapping, void* k_cache, void* v_cache, DType dtype, cudaStream_t stream);

// Paged attention -----------------------------------------------------------------------------------
struct PagedAttention {
  DType dtype;                    // q, out, k_cache, v_cache
  const void* q;                  // [num_tokens, heads·head_dim], rows q_stride elements apart
  int64_t q_stride;
  void* out;                      // [num_tokens, heads·head_dim], rows out_stride apart
  int64_t out_stride;
  const void* k_cache;            // [num_blocks·block_size, kv_heads·head_dim]
  const void* v_cache;
  int32_t num_seqs, num_tokens;
  const int32_t* cu_seqlens_q;    // device [num_seqs+1]: query rows of sequence s are [cu[s], cu[s+1])
  const int32_t* context_lens;    // device [num_seqs]: tokens cached after this step; row i sits at
                                  // position context_len - rows + i
  const int32_t* block_tables;    // device [num_seqs, block_table_stride]
  int32_t block_table_stride;
  int32_t heads, kv_heads, head_dim, block_size;
  float scale;
  int32_t sliding_window;         // > 0: key j visible from position p when p - j < sliding_window
  float softcap = 0.0f;           // > 0 (Gemma 2): a scaled score x becomes softcap·tanh(x / softcap) before the mask
  const float* sinks = nullptr;   // device fp32 [heads] (gpt-oss; null: none): head h's logit joins its softmax as
                                  // one more score with no value (cpu::paged_attention's sinks)
  int32_t chunk = 0;              // > 0 (Llama 4's chunked layers): key j visible from position p only when
                                  // j >= p - p % chunk (p's own chunk), on top of the window
                                  // (cpu::paged_attention's chunk)
  // Gemma 3's images (prefill only; null: none): sequence s's image spans are the [start, end) position pairs
  // image_spans[2k], image_spans[2k + 1] for k in [span_offsets[s], span_offsets[s + 1]), sorted and disjoint. A row
  // at a position inside one also sees that span's later keys, up to end - 1 (< context_len); a window still bounds
  // the earlier keys (cpu::AttentionSeq::image_spans). Causal attention only (not with bidirectional).
  const int32_t* image_spans = nullptr;
  const int32_t* span_offsets = nullptr;
  bool bidirectional = false;     // prefill only (EmbeddingGemma): row at position p also sees the keys after it, up to
                                  // context_len - 1, or with a window those with |p - j| < sliding_window (not with
                                  // chunk; cpu::paged_attention's causal = false). The decode kernel stays causal: a
                                  // bidirectional model's one-row sequences are whole one-token prompts, the same.
  int32_t max_query_len;          // host: ≥ rows of every sequence (prefill grid)
  int32_t max_context_len;        // host: ≥ every context_len (decode partitions)
};
// Decode: any rows (one per sequence is what it is built for). Needs workspace when max_context_len exceeds
// one partition (512 keys; 256 for GQA).
size_t paged_attention_decode_workspace_bytes(const PagedAttention& a);
cudaError_t paged_attention_decode(const PagedAttention& a, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream);
// The same with a given number of K/V loads in flight per lane (1, 4 or 8; 0 = by grid size): every depth computes
// the same bits. paged_attention_decode takes WEFT_DECODE_ATTENTION_DEPTH (1 when unset). Tests and A/B runs.
cudaError_t paged_attention_decode_depth(const PagedAttention& a, void* workspace, size_t workspace_bytes, int depth,
                                         cudaStream_t stream);
// Prefill (and mixed batches): causal over the cache, K/V of this step already written. Picks the tensor-core
// kernel where it applies (bf16/fp16, head_dim a multiple of 16 up to 128, sm_80+; WEFT_PREFILL_ATTENTION=simt
// turns it off, =mma picks the first tensor-core kernel instead of the pipelined one), else the CUDA-core one. The named kernels
// are callable directly (tests, benchmarks); the two tensor-core ones take the same shapes.
cudaError_t paged_attention_prefill(const PagedAttention& a, cudaStream_t stream);
cudaError_t paged_attention_prefill_simt(const PagedAttention& a, cudaStream_t stream);
bool paged_attention_prefill_mma_supported(const PagedAttention& a);
cudaError_t paged_attention_prefill_mma(const PagedAttention& a, cudaStream_t stream);  // NotSupported: use simt
cudaError_t paged_attention_prefill_pipelined(const PagedAttention& a, cudaStream_t stream);  // as _mma
bool paged_attention_valid(const PagedAttention& a);  // the argument checks every attention launcher applies

// LoRA ----------------------------------------------------------------------------------------------
// One module's adapters. "Entries" are SGMV segments or BGMV adapter slots; per-entry arrays are laid out
// [num_slices][num_entries] (slices = the parts of a fused module, e.g. q, k, v of qkv_proj).
struct LoraArgs {
  DType dtype;                    // x, y, A and B
  int64_t tokens, in;
  const void* x;                  // [tokens, in], rows x_stride apart
  int64_t x_stride;
  float* h;                       // fp32 scratch [num_slices, tokens, max_rank]: shrink writes, expand reads
  void* y;                        // [tokens, ...], rows y_stride apart; expand adds into it
  int64_t y_stride;
  int32_t num_slices;
  const int32_t* out_offset;      // device [num_slices]: first column of the slice in y
  const int32_t* out_len;         // device [num_slices]
  int32_t max_out_len;            // host: ≥ every out_len
  int32_t num_entries;
  const void* const* a;           // device [num_slices·num_entries]: A [rank, in], null = no adapter
  const void* const* b;           // device [num_slices·num_entries]: B [out_len, rank]
  const int32_t* rank;            // device [num_slices·num_entries]; 0 = skip; must be ≤ max_rank
  const float* scale;             // device [num_slices·num_entries]
  int32_t max_rank;               // host
  const int32_t* seg_starts;      // SGMV: device [segments+1], segment k covers rows [seg[k], seg[k+1])
  const int32_t* seg_entries;     // SGMV: device [num_segments], segment k's entry; null: segment e is entry e's
  int32_t num_segments;           // SGMV with seg_entries: segments (else num_entries)
  const int32_t* token_entry;     // BGMV: device [tokens], entry of each row, -1 = base model
};
// SGMV shrink picks the tensor-core kernel for 16-bit data with `in` a multiple of 16 on sm_80+, and SGMV
// expand the 16-byte-access kernel for 16-bit data with 16-byte aligned y rows (WEFT_LORA_KERNELS=simt turns
// both off); else the first, CUDA-core ones. Every variant is callable directly (tests, benchmarks).
cudaError_t lora_sgmv_shrink(const LoraArgs& a, cudaStream_t stream);
cudaError_t lora_sgmv_shrink_simt(const LoraArgs& a, cudaStream_t stream);
// cluster: blocks splitting `in` per row tile — 0 the default for the device (8 on sm_90+, 1 below; see
// WEFT_SGMV_SHRINK_CLUSTER in lora.cu), or 1, 4 or 8 (more than 1 needs sm_90+). NotSupported: use simt.
cudaError_t lora_sgmv_shrink_mma(const LoraArgs& a, cudaStream_t stream, int cluster = 0);
cudaError_t lora_sgmv_expand(const LoraArgs& a, cudaStream_t stream);
cudaError_t lora_sgmv_expand_simt(const LoraArgs& a, cudaStream_t stream);
cudaError_t lora_sgmv_expand_vec(const LoraArgs& a, cudaStream_t stream);  // NotSupported: use simt
// BGMV shrink: one warp per rank row walks `in`; with WEFT_BGMV_SHRINK=split (16-bit data) the split kernel
// (lora_shrink_split_body.h: a block of 128 threads splits `in`, 4 ranks per block) — measured no faster.
cudaError_t lora_bgmv_shrink(const LoraArgs& a, cudaStream_t stream);
cudaError_t lora_bgmv_shrink_warp(const LoraArgs& a, cudaStream_t stream);
cudaError_t lora_bgmv_shrink_split(const LoraArgs& a, cudaStream_t stream);  // NotSupported: use warp
// lora_bgmv_expand goes right after its shrink on the same stream: it may start early (programmatic dependent
// launch, sm_90+) and read y and B before it waits for h. _no_pdl: for an expand after other work (it reads y).
cudaError_t lora_bgmv_expand(const LoraArgs& a, cudaStream_t stream);
cudaError_t lora_bgmv_expand_no_pdl(const LoraArgs& a, cudaStream_t stream);
// A step's BGMV rows: shrink then expand, or with WEFT_LORA_FUSED=1 on sm_90+ (16-bit data, ranks <= 64) the
// fused kernel (lora_bgmv_fused_body.h: one thread-block cluster per token and slice, one launch). Opt-in until
// it is measured on a GPU; it writes no h (the fused kernel keeps h in shared memory).
cudaError_t lora_bgmv(const LoraArgs& a, cudaStream_t stream);
cudaError_t lora_bgmv_fused(const LoraArgs& a, cudaStream_t stream);  // NotSupported: use lora_bgmv

// DoRA (PEFT use_dora; shard/models/dora.ts): after a module's LoRA expands, every row whose adapter entry has a
// channel scale in slice s gets y[out_offset[s] + o] = mag[o]·(y − bias) + bias there (bias null: mag·y), in fp32,
// rounded once to y's dtype. Rows of the base model (-1) and entries without a scale are left as they are.
struct DoraScaleArgs {
  DType dtype;                  // y and bias
  int64_t rows;
  void* y;                      // [rows, ...], rows y_stride apart
  int64_t y_stride;
  const void* bias;             // the module's bias that y holds [module out], or null
  int32_t num_slices, num_entries;
  const int32_t* out_offset;    // device [num_slices]
  const int32_t* out_len;       // device [num_slices]
  const float* const* mag;      // device [num_slices·num_entries]: float32 [out_len], null = not DoRA
  const int32_t* row_entry;     // device [rows]: each row's entry, -1 = base model
};
cudaError_t lora_dora_scale(const DoraScaleArgs& a, cudaStream_t stream);
// LoRA on the token embedding (cpu::lora_embedding_add): for each of a.tokens rows with an entry, h[t, o] +=
// scale·(B[o, :]·A[:, tokens[t]]) over o < hidden, h fp32 [tokens, hidden]. `a` is the embedding's table (one slice,
// out_len = hidden; A [rank, vocab], B [hidden, rank] in a.dtype) with token_entry the rows' entries. out_scale: the
// model's embedding scale (Gemma, Granite), which multiplies the delta as it does the embedding.
cudaError_t lora_embedding(const LoraArgs& a, const int32_t* tokens, int64_t vocab, float* h, int64_t hidden,
                           cudaStream_t stream, float out_scale = 1.0f);
// DoRA's squared weight-row norms (cpu::lora_weight_norms_sq on the device): out[o] = Σ_j (w[o, j] +
// scale·(b[o, :]·a[:, j]))² for o < rows, in fp32, one block per row. w [rows, in] in w_dtype (the model's
// resident weights), a [rank, in] and b [rows, rank] float32; rank ≤ 1024.
cudaError_t lora_weight_norms_sq(const void* w, DType w_dtype, int64_t rows, int64_t in, const float* a, const float* b,
                                 int32_t rank, float scale, float* out, cudaStream_t stream);

// silu_mul with the LoRA expand of a step's decode rows folded in: `lora` are the gate/up module's BGMV args (two
// slices: gate at 0 and up at `inter`, each `inter` wide) for the last lora.tokens rows, h already computed.
cudaError_t silu_mul_lora(const void* gate_up, int64_t in_stride, void* out, int64_t out_stride, int64_t tokens,
                          int64_t inter, DType dtype, const LoraArgs& lora, cudaStream_t stream);

// add_norm with the LoRA expand of a step's decode rows folded in: `lora` are a single-slice module's BGMV args
// (out_len = hidden, offset 0) for the last lora.tokens rows, their h already computed by the shrink; each such
// row with an adapter adds delta + scale·h·Bᵀ (rounded to delta's type, as the expand would have written it)
// instead of delta. Used for the o and down projections with WEFT_LORA_EXPAND_INTO_NEXT=1 (cuda_lora.cc).
cudaError_t add_norm_lora(float* h, const void* delta, DType delta_dtype, int64_t tokens, int64_t hidden, bool rms,
                          const void* weight, const void* bias, DType w_dtype, float eps, void* out, DType out_dtype,
                          const LoraArgs& lora, cudaStream_t stream);

// rope_kv_cache_write with the LoRA expand of a step's decode rows folded in: `lora` are the qkv module's BGMV args
// (three slices: q at 0, k at q_heads·head_dim, v after it) for the last lora.tokens rows, h already computed; each
// value of such a row with an adapter takes its delta (rounded as the expand would have written it) before it is
// rotated or written to the cache, and q's dims past rotary_dim take theirs in place. With
// WEFT_LORA_EXPAND_INTO_NEXT=1 (cuda_lora.cc): the qkv projection's decode expand, one launch fewer per layer.
cudaError_t rope_kv_cache_write_lora(void* q, int64_t q_heads, const void* k, const void* v, int64_t kv_heads,
                                     int64_t stride, DType dtype, int64_t tokens, int64_t head_dim, int64_t rotary_dim,
                                     const int32_t* positions, const float* inv_freq, float attention_factor,
                                     const int32_t* slot_mapping, void* k_cache, void* v_cache, const LoraArgs& lora,
                                     cudaStream_t stream, const float* cos_sin = nullptr,
                                     const int32_t* rope_long = nullptr, bool interleaved = false,
                                     const MRope& mrope = MRope{});

// Sampling ------------------------------------------------------------------------------------------
struct SampleRow {                // one per logits row, in device memory; mirrors cpu::SamplingParams
  float temperature;
  int32_t top_k;                  // 0 = off
  float top_p;                    // 1 = off
  float repetition_penalty;       // 1 = off
  int32_t do_sample;              // 0 = greedy
  int32_t mask_index;             // structured output: -1 none, else the row's allowed-token bitmask is masks[k]
  uint64_t seed;
  uint64_t draw_index;
  float frequency_penalty;        // OpenAI's, with the counts of LogitAdjust (0 = off)
  float presence_penalty;
};
// One token of a row whose logit the additive rules change (frequency / presence penalty, logit bias), each
// token once per row: its final value is computed from the raw logit in cpu::sample_token's order.
struct LogitAdjust {
  int32_t token;
  int32_t count;                  // times generated (frequency / presence penalty when > 0)
  float bias;                     // logit bias (flags & kAdjustBias)
  int32_t flags;                  // kAdjustRepetition: also repetition-penalised; kAdjustBias: bias applies
};
constexpr int32_t kAdjustRepetition = 1, kAdjustBias = 2;
// Optional per-row additions to logits_process (null / 0: none).
struct LogitsExtras {
  const uint8_t* masks = nullptr;             // structured output: a row with mask_index k reads masks + k * mask_bytes
  int64_t mask_bytes = 0;
  const int32_t* adjust_offsets = nullptr;    // [rows + 1]: row r's entries are adjustments[offsets[r] .. offsets[r+1])
  const LogitAdjust* adjustments = nullptr;
};
// processed[r] = logits[r] after repetition penalty (tokens penalty_tokens[offsets[r] .. offsets[r+1]),
// each applied once) and temperature (only when sampling). With extras: tokens with a LogitAdjust get
// (repetition penalty) - frequency * count - presence (count > 0) + bias, then temperature, exactly as
// cpu::sample_token; a row with mask_index k >= 0 gets -inf for every token whose bit is clear in
// masks + k * mask_bytes (bit t: byte t/8, bit t%8), as cpu::sample_token applies allowed_mask.
// fp32 out, [rows, vocab] contiguous.
cudaError_t logits_process(const void* logits, DType dtype, int64_t rows, int64_t vocab, int64_t stride,
                           const SampleRow* params, const int32_t* penalty_offsets, const int32_t* penalty_tokens,
                           float* processed, cudaStream_t stream, const LogitsExtras* extras = nullptr);
// token[r] = argmax (lowest id on ties); logprob[r] (may be null) = log-softmax of the row at token.
cudaError_t argmax_rows(const void* logits, DType dtype, int64_t rows, int64_t vocab, int64_t stride, int32_t* token,
                        float* logprob, cudaStream_t stream);
// Workspace of sample_rows (queries the device: fails where there is none).
cudaError_t sample_workspace_bytes(int64_t rows, int64_t vocab, size_t* bytes);
// Full CPU semantics on processed logits: greedy rows take the top token, sampling rows apply top-k, top-p
// and draw with splitmix64(seed, draw_index). top_n (≥ 0) most likely (id, logprob) per row when requested.
cudaError_t sample_rows(const float* processed, int64_t rows, int64_t vocab, const SampleRow* params, void* workspace,
                        size_t workspace_bytes, int32_t* token, float* logprob, int32_t top_n, int32_t* top_ids,
                        float* top_logprobs, cudaStream_t stream);

}  // namespace weft::cuda
