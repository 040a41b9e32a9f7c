// The CUDA model executor: the GPU twin of the CPU executor (model/model.h), same plan, same weight names,
// same batch and the same op sequence, on one device and one CUDA stream.
//
// Memory (all device memory is allocated up front or grows monotonically; nothing is freed during a step):
//  - weights: one buffer per canonical weight, in the model dtype (fp32 / fp16 / bf16), converted on upload
//    from the host float32 arrays; inv_freq, a MoE router's choice bias and gpt-oss's attention sinks stay fp32.
//  - KV cache: one buffer, [layer][k | v][num_blocks * block_size, kv_heads * head_dim] in the dtype.
//  - LoRA: lora_store.h (per slot A/B buffers, per module a fixed-address [sub-block][slot] table).
//  - step buffers (grow-only, capacity a power of two >= 128 rows): the fp32 residual stream h; normed x,
//    fused qkv, attention out, o/down out, gate|up, activation in the dtype; fp32 copies for the all-reduce and
//    the logits; the LoRA shrink scratch; the decode attention partials; one packed int32 arena with the
//    step's small arrays (step_plan.h), filled by one host-to-device copy from a pinned buffer.
// Precision: GEMMs accumulate in fp32 (cuBLASLt COMPUTE_32F), every kernel computes in fp32, the residual
// stream is fp32; activations between ops and the logits before their fp32 copy are stored in the dtype.
//
// Tensor parallelism (DESIGN.md §3): a Collective whose buffers are host floats (shm) gets the partial sums
// staged through pinned host memory: copy device -> host, all_reduce_sum on the host floats, copy back; the
// lm_head chunks likewise for all_gather. That is how TP=2 runs with two ranks on one GPU (NCCL refuses two
// ranks on one device), at the price of two stream synchronisations per layer. An NCCL collective
// (cuda/runtime/nccl.h) is called directly on device buffers, ordered after and before this executor's
// stream with events.
//
// CUDA graphs (options.cuda_graphs): decode-only steps of up to 128 sequences on a world of one rank replay a
// captured graph per (rows bucket, block-table width bucket, LoRA or not) — see decode_graphs.h. What a graph
// bakes in and must not move: every weight, the KV cache, the LoRA tables (their contents are re-sent before a
// replay, outside the graph), the step buffers and the packed arena; each capture is stamped with a
// generation that is bumped when any of them is reallocated or the LoRA rank cap grows, and stale graphs are
// captured again. Steps with prefill rows, more than 128 sequences, or a collective of several ranks run
// eagerly (the host-staged all-reduce cannot live inside a graph), and so does every step of a mixture-of-experts
// model (cuda_moe.cc: the experts' row counts are read back to size each expert's GEMM).
// A step with embedding overrides (image features, cuda_embed_override.cc) always runs eagerly too, even when all
// its sequences have one row (a prompt's last chunk of one image token).
#pragma once
#include <cuda_runtime_api.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "collectives/collective.h"
#include "cuda/kernels/kernels.h"
#include "cuda/model/buffers.h"
#include "cuda/model/decode_graphs.h"
#include "cuda/model/lora_store.h"
#include "cuda/model/op_events.h"
#include "cuda/model/step_plan.h"
#include "model/executor.h"

namespace weft::cuda {

class GemmContext;
class NcclCollective;

struct CudaModelOptions {
  DType dtype = DType::kBF16;
  bool cuda_graphs = true;
};

class CudaModel final : public ModelExecutor {
 public:
  // Throws (with the reason) when there is no usable GPU, or the plan is one the kernels cannot run.
  CudaModel(ModelConfig cfg, std::shared_ptr<Collective> coll, CudaModelOptions opts);
  ~CudaModel() override;
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  int64_t expected_size(const std::string& name) const override { return expected_weight_size(cfg_, name); }
  void set_weight(const std::string& name, const float* data, int64_t n) override;
  void finalize() override;
  // Uploads on a copy stream of its own (stage_mu_), beside steps on stream_.
  std::unique_ptr<StagedAdapter> stage_adapter(const std::vector<LoraPartRef>& parts) override;
  void install_adapter(int slot, std::unique_ptr<StagedAdapter> staged) override;
  void clear_adapter(int slot) override;
  int64_t adapter_bytes(int slot) const override;
  std::vector<std::vector<float>> lora_weight_norms_sq(const std::vector<LoraPartRef>& parts) override;
  std::vector<float> forward(const Batch& batch) override;
  // One rank, whole vocabulary: samples on the device (cuda_sample.cc) and copies back only tokens, logprobs
  // and top-n; rows asking for typical_p are sampled on the host. Otherwise ModelExecutor's host default.
  std::vector<cpu::SampleResult> forward_sample(const Batch& batch, const std::vector<RowSampling>& rows) override;
  const ModelConfig& config() const override { return cfg_; }
  void set_op_profile(bool on) override;
  std::vector<OpTime> take_op_profile() override;

  static constexpr int64_t kMaxStepRows = 65535;  // launch-grid limit of attention and LoRA kernels

 private:
  struct LayerWeights {
    const void *attn_norm_w, *attn_norm_b, *qkv_w, *qkv_b, *o_w, *o_b;
    const void *mlp_norm_w, *mlp_norm_b, *up_w, *up_b, *down_w, *down_b;
    const void *q_norm_w, *k_norm_w;  // per-head q/k RMSNorm (cfg_.qk_norm: Qwen3, Gemma 3), else null
    const void *post_attn_norm_w, *post_mlp_norm_w;  // Gemma 3's block-output norms (cfg_.post_norms), else null
    const void *q_a_norm_w, *kv_a_norm_w, *q_b_w, *kv_b_w;  // latent attention (cfg_.mla_kv_rank > 0), else null
    const float* sinks;  // gpt-oss's attention sinks, float32 [heads_local] (cfg_.attn_sinks), else null
    const float* xielu;  // Apertus's xIELU parameters, float32 [4] (MlpKind::kXielu), else null
  };
  // A MoE layer's router and experts (cfg_.num_experts > 0; empty for dense layers).
  struct MoeWeights {
    const void* router = nullptr;
    const float* router_bias = nullptr;  // sigmoid or ERNIE routing's choice bias (float32), else null (Llama 4: none)
    const void* router_logit_bias = nullptr;  // gpt-oss's router bias in the dtype (cfg_.moe_logit_bias), else null
    const void* shared_gate = nullptr;   // Qwen2-MoE's shared-expert gate [hidden], else null
    std::vector<const void*> up, down;  // per expert: [gate | up] [2·I, hidden], down [hidden, I]
    // Per expert, gpt-oss's biases in the dtype (cfg_.moe_expert_bias): up [2·I], down [hidden]; else nulls.
    std::vector<const void*> up_bias, down_bias;
  };
  // cuda_moe.cc's grow-only scratch: router logits, routing, the routed rows' copies and outputs, and the host side.
  struct MoeBuffers {
    DeviceBuffer logits, ids, weights, map, xg, up, act, y;
    PinnedBuffer host_ids, host_map;
  };
  struct StepBuffers {
    int64_t rows = 0, logit_rows = 0, lora_rows = 0;  // capacities
    int32_t rank_cap = 0;
    DeviceBuffer h, x, qkv, attn, o, o32, up, act;       // [rows, ...]
    DeviceBuffer hr, xr, lg, lg32, lgc, gathered;        // [logit_rows, ...]
    DeviceBuffer lora_h, attn_ws, arena;
    DeviceBuffer rope_cs;                                // [rows, rotary_dim/2] (cos, sin): WEFT_ROPE_TABLE=1
    DeviceBuffer qk_sums;                                // [rows, 2] fp32: OLMo 2's full-width q/k norm
    // Latent attention (cuda_mla.cc): the first projection, the two normalised latents, q_b's and kv_b's outputs,
    // and the attention output's packed values [rows, heads·v_dim].
    DeviceBuffer mla_first, mla_qa, mla_kva, mla_q, mla_kv, attn_v;
    DeviceBuffer xm;  // [rows, hidden]: GPT-NeoX's MLP input (cfg_.parallel_mlp_norm)
    // Embedding overrides (cuda_embed_override.cc), packed as embed_override_body.h lays them out. Not in the graph
    // generation: a step with overrides never runs in a captured graph, so these may move freely.
    DeviceBuffer overrides;
    PinnedBuffer overrides_host;
    PinnedBuffer arena_host, stage;
  };
  struct SampleBuffers {  // grow-only; `in`/`out` are packed [params | offsets | tokens] and [token | logprob | top]
    DeviceBuffer in, processed, workspace, out;
    PinnedBuffer host_in, host_out;
  };

  // cuda_model.cc: setup and adapters.
  void release() noexcept;
  const void* weight_opt(const std::string& name) const;
  const void* weight(const std::string& name) const;
  void bind_weights();
  bool use_graph(const Batch& b, PaddedShape* shape) const;
  void ensure_buffers(const StepPlan& p);
  void upload_plan(const StepPlan& p);
  // cuda_embed_override.cc: Batch::embed_rows (vision-language models' image features). check_overrides refuses what
  // the CUDA path cannot do; upload_overrides packs and copies them (one H2D copy) and sets p.embed_overrides;
  // apply_overrides scatters them into h after the embedding lookup (enqueue_step).
  void check_overrides(const Batch& b) const;
  void upload_overrides(const Batch& b, StepPlan& p, bool graph);
  void apply_overrides(const StepPlan& p);
  // cuda_forward.cc: the step.
  // Checks the batch (false: nothing to run), then plans, uploads and enqueues the step (graph or eager).
  bool check_step(const Batch& b);
  StepPlan launch_step(const Batch& b);
  // Runs f; should it throw, waits for the stream so nothing of the failed step runs on into the next.
  template <class F> auto guarded(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (...) {
      cudaStreamSynchronize(stream_);
      cudaStreamSynchronize(lora_stream_);  // a step that failed between a LoRA fork and its join
      cudaGetLastError();
      throw;
    }
  }
  // cuda_sample.cc
  std::vector<cpu::SampleResult> sample_on_device(const StepPlan& p, const std::vector<RowSampling>& rows);
  void enqueue_step(const StepPlan& p);
  void enqueue_layer(int64_t layer, const StepPlan& p);
  void rope_kv_write(int64_t layer, const StepPlan& p);  // RoPE (+ Llama 4's q/k norm after it), K/V into the cache
  void attention(int64_t layer, const StepPlan& p);
  // The width of a step's q|k|v rows in buf_.qkv: the qkv module's output, or latent attention's assembled heads.
  int64_t qkv_stride() const;
  // Latent attention (cuda_mla.cc): x -> buf_.qkv as [q | k | v] heads; then the attention output's values packed.
  void mla_qkv(int64_t layer, const StepPlan& p);
  const void* mla_values(int64_t rows);
  void dense_mlp(int64_t layer, const StepPlan& p);  // a dense MLP from x into o (cuda_forward.cc)
  // out = the gated MLP's activation (cfg_.mlp: SwiGLU, GeGLU or gpt-oss's clamped SwiGLU) of `rows` [gate | up] rows,
  // each `inter` wide (cuda_forward.cc; the dense MLP and the experts).
  void gated_mlp_activation(const void* gate_up, int64_t in_stride, void* out, int64_t out_stride, int64_t rows,
                            int64_t inter);
  // cuda_moe.cc: a MoE layer's MLP from x into o (this rank's partial sum), experts' LoRA included.
  void moe_mlp(int64_t layer, const StepPlan& p);
  void expert_lora(int layer, int module, int expert, const void* x, int64_t in, void* y, int64_t y_stride,
                   int64_t rows, const int32_t* row_entry);
  // cuda_lora.cc
  void lora(int layer, int module, const void* x, int64_t in, void* y, int64_t y_stride, const StepPlan& p);
  void project(const char* op, int layer, int module, const void* x, int64_t in, const void* w, void* y, int64_t out,
               const void* bias, const StepPlan& p);
  bool lora_overlap() const;
  bool expand_into_next(int layer, int module, const LoraArgs& decode) const;
  bool lora_args(int layer, int module, int64_t in, int64_t y_stride, LoraArgs* a) const;
  bool table_args(const LoraTable& t, int64_t in, int64_t y_stride, LoraArgs* a) const;
  bool lora_prefill_rows(const StepPlan& p, const void* x, void* y, LoraArgs* a) const;
  bool lora_decode_rows(const StepPlan& p, int64_t in, const void* x, void* y, int64_t y_stride, LoraArgs* a) const;
  // DoRA's channel scale on the module's output rows of DoRA adapters, after every expand (when one is loaded).
  void dora_scale(int layer, int module, void* y, int64_t y_stride, const void* bias, const StepPlan& p);
  // post_w (Gemma's post norms): out, reduced over the ranks and with its bias, is finished by finish_block_output
  // before the add.
  void residual(void* out, const void* bias, int64_t rows, const void* post_w = nullptr);
  void finish_block_output(void* out, DType dtype, int64_t rows, const void* post_w);
  // residual(), then x = the next norm (weights w, b) of h; one add_norm launch when fused_residual_norm().
  void residual_norm(void* out, const void* bias, int64_t rows, const void* w, const void* b,
                     const void* post_w = nullptr);
  bool fused_small_ops() const;
  bool fused_residual_norm() const;
  bool rope_table() const;  // WEFT_ROPE_TABLE=1: one (cos, sin) table per step for every layer's RoPE
  void all_reduce(float* data, int64_t n);
  void norm(const void* x, DType x_dtype, int64_t rows, const void* w, const void* b, void* out);
  void gemm(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k, const void* bias);
  std::vector<float> collect_logits(const StepPlan& p);
  void append_hidden_rows(const StepPlan& p, const std::vector<int32_t>& rows, std::vector<float>& out);
  const int32_t* ints(int64_t offset) const { return buf_.arena.as<const int32_t>() + offset; }
  // A packed field the step may not have (offset -1): null.
  const int32_t* ints_opt(int64_t offset) const { return offset < 0 ? nullptr : ints(offset); }
  void* kv(int64_t layer, int which) const;  // which: 0 = K, 1 = V
  float* logits_f32() const { return opts_.dtype == DType::kF32 ? buf_.lg.as<float>() : buf_.lg32.as<float>(); }

  ModelConfig cfg_;
  std::shared_ptr<Collective> coll_;
  NcclCollective* nccl_ = nullptr;  // coll_ when it is an NCCL collective
  CudaModelOptions opts_;
  size_t ds_ = 2;                    // bytes per element of the dtype
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cudaStream_t copy_stream_ = nullptr;  // adapter uploads (stage_adapter), under stage_mu_
  cudaEvent_t fork_ = nullptr, join_ = nullptr;
  cudaStream_t lora_stream_ = nullptr;  // LoRA shrinks beside the base GEMM (cuda_lora.cc)
  cudaEvent_t lora_fork_ = nullptr, lora_join_ = nullptr;
  LoraArgs deferred_expand_{};  // a decode-row LoRA expand the next op adds (WEFT_LORA_EXPAND_INTO_NEXT=1)
  bool has_deferred_expand_ = false;
  std::unique_ptr<GemmContext> gemm_;
  std::unordered_map<std::string, DeviceBuffer> weights_;
  std::vector<LayerWeights> layer_w_;
  std::vector<MoeWeights> moe_w_;      // per layer (MoE models)
  MoeBuffers moe_;
  DeviceBuffer inv_freq_, inv_freq_local_, kv_cache_;  // inv_freq_local_: sliding layers' (cfg_.inv_freq_local)
  DeviceBuffer head_ones_;  // [head_dim] ones in the dtype: Llama 4's weightless q/k norm's (qk_norm_after_rope)
  const float* layer_inv_freq_dev(int64_t layer) const;
  MRope mrope(const StepPlan& p) const;  // multimodal RoPE args of the step (cuda_forward.cc), or none
  std::unique_ptr<LoraStore> lora_;
  Uploader uploader_;
  Uploader stage_uploader_;             // stage_adapter's, under stage_mu_
  std::mutex stage_mu_;
  StepBuffers buf_;
  SampleBuffers sbuf_;
  std::vector<int32_t> packed_;
  DecodeGraphs graphs_;
  EventOpClock ops_;                  // op profile (set_op_profile), under mu_
  uint64_t generation_ = 1;           // bumped when anything a captured graph points at moves
  bool finalized_ = false;
  mutable std::mutex mu_;
};

std::shared_ptr<ModelExecutor> make_cuda_model(ModelConfig cfg, std::shared_ptr<Collective> coll,
                                               const CudaModelOptions& opts);

}  // namespace weft::cuda
