// CudaModel setup: device, stream and cuBLASLt context; weights and KV cache; adapters; step buffers.
// The step itself is in cuda_forward.cc.
#include "cuda/model/cuda_model.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/gemm.h"
#include "cuda/runtime/nccl.h"

namespace weft::cuda {

namespace {

std::string layer_name(int64_t i, const char* suffix) { return "layers." + std::to_string(i) + "." + suffix; }

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Weights kept in float32 instead of the dtype: a MoE router's choice bias, as transformers keeps
// e_score_correction_bias (it shifts a ranking), and gpt-oss's attention sinks (the attention kernels read them
// as fp32). gpt-oss's router bias is a linear layer's, in the dtype like every other bias (the GEMM adds it).
bool stays_f32(const ModelConfig& c, const std::string& name) {
  return (ends_with(name, ".router.bias") && !c.moe_logit_bias) || ends_with(name, ".attn_sinks") ||
         ends_with(name, ".xielu");
}

int64_t pow2_at_least(int64_t n, int64_t floor) {
  int64_t c = floor;
  while (c < n) c *= 2;
  return c;
}

}  // namespace

CudaModel::CudaModel(ModelConfig cfg, std::shared_ptr<Collective> coll, CudaModelOptions opts)
    : cfg_(std::move(cfg)), coll_(std::move(coll)), opts_(opts), ds_(dtype_bytes(opts.dtype)) {
  if (!coll_) coll_ = std::make_shared<SoloCollective>();
  check_model_config(cfg_);
  if (!cfg_.mrope_section.empty() && is_mla(cfg_))  // Qwen2-VL's M-RoPE runs in the rope kernels MLA does not use
    throw std::invalid_argument("device 'cuda': multimodal RoPE (mrope_section) with latent attention (MLA) is not "
                                "supported by the CUDA backend");
  if (cfg_.mrope_interleaved)  // the rope kernels rotate sections (mrope_body.h), not Qwen3-VL's interleaved layout
    throw std::invalid_argument("device 'cuda': Qwen3-VL's interleaved multimodal RoPE (mrope_interleaved) is not "
                                "supported by the CUDA backend yet; serve its images with --device cpu");
  std::string why;
  if (!cuda_available(&why)) throw std::runtime_error("device 'cuda': " + why);
  if (cfg_.head_dim % 8 != 0 || cfg_.head_dim > 256)
    throw std::invalid_argument("device 'cuda': head_dim " + std::to_string(cfg_.head_dim) +
                                " is not supported (the attention kernels need a multiple of 8, at most 256)");
  nccl_ = dynamic_cast<NcclCollective*>(coll_.get());
  if (coll_->device_pointers() && !nccl_)
    throw std::invalid_argument("device 'cuda': the collective works on device pointers but is not an NCCL one");
  if (nccl_) device_ = nccl_->device();
  else WEFT_CUDA_CHECK(cudaGetDevice(&device_));
  DeviceScope scope(device_);
  try {
    WEFT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    WEFT_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
    WEFT_CUDA_CHECK(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
    WEFT_CUDA_CHECK(cudaEventCreateWithFlags(&join_, cudaEventDisableTiming));
    WEFT_CUDA_CHECK(cudaStreamCreateWithFlags(&lora_stream_, cudaStreamNonBlocking));
    WEFT_CUDA_CHECK(cudaEventCreateWithFlags(&lora_fork_, cudaEventDisableTiming));
    WEFT_CUDA_CHECK(cudaEventCreateWithFlags(&lora_join_, cudaEventDisableTiming));
    gemm_ = std::make_unique<GemmContext>();
    lora_ = std::make_unique<LoraStore>(cfg_, opts_.dtype);
    if (cfg_.rotary_dim > 0) {  // longrope: the long factors' frequencies after the short ones (rope.cu)
      std::vector<float> freqs(cfg_.inv_freq);
      freqs.insert(freqs.end(), cfg_.inv_freq_long.begin(), cfg_.inv_freq_long.end());
      inv_freq_.allocate(sizeof(float) * freqs.size());
      uploader_.upload(freqs.data(), static_cast<int64_t>(freqs.size()), inv_freq_.get(), DType::kF32, stream_);
    }
    if (cfg_.rotary_dim > 0 && !cfg_.inv_freq_local.empty()) {
      inv_freq_local_.allocate(sizeof(float) * cfg_.inv_freq_local.size());
      uploader_.upload(cfg_.inv_freq_local.data(), static_cast<int64_t>(cfg_.inv_freq_local.size()),
                       inv_freq_local_.get(), DType::kF32, stream_);
    }
    if (cfg_.qk_norm_after_rope) {  // Llama 4's q/k norm has no weight: head_rms_norm's is ones (exact in every dtype)
      const std::vector<float> ones(static_cast<size_t>(cfg_.head_dim), 1.0f);
      head_ones_.allocate(static_cast<size_t>(cfg_.head_dim) * ds_);
      uploader_.upload(ones.data(), cfg_.head_dim, head_ones_.get(), opts_.dtype, stream_);
    }
  } catch (...) {
    release();
    throw;
  }
}

CudaModel::~CudaModel() { release(); }

void CudaModel::release() noexcept {
  // No one is left to hear about errors here: best effort, in an order that never frees memory in use.
  int prev = device_;
  cudaGetDevice(&prev);
  cudaSetDevice(device_);
  if (stream_) cudaStreamSynchronize(stream_);
  {
    std::lock_guard<std::mutex> lock(stage_mu_);  // no stage is uploading
    if (copy_stream_) cudaStreamSynchronize(copy_stream_);
  }
  graphs_.clear();
  gemm_.reset();
  if (fork_) cudaEventDestroy(fork_);
  if (join_) cudaEventDestroy(join_);
  if (lora_fork_) cudaEventDestroy(lora_fork_);
  if (lora_join_) cudaEventDestroy(lora_join_);
  lora_.reset();  // its memory is freed on stream_
  if (stream_) cudaStreamSynchronize(stream_);
  if (stream_) cudaStreamDestroy(stream_);
  if (copy_stream_) cudaStreamDestroy(copy_stream_);
  if (lora_stream_) cudaStreamDestroy(lora_stream_);  // every step joined it before it ended
  fork_ = join_ = lora_fork_ = lora_join_ = nullptr;
  stream_ = copy_stream_ = lora_stream_ = nullptr;
  cudaSetDevice(prev);
}

void CudaModel::set_weight(const std::string& name, const float* data, int64_t n) {
  const int64_t want = expected_weight_size(cfg_, name);
  if (want < 0) throw std::invalid_argument("model: '" + name + "' is not a weight of this model plan");
  if (want != n)
    throw std::invalid_argument("model: weight '" + name + "' has " + std::to_string(n) + " elements, expected " +
                                std::to_string(want));
  std::lock_guard<std::mutex> lock(mu_);
  DeviceScope scope(device_);
  DeviceBuffer& buf = weights_[name];
  const bool f32 = stays_f32(cfg_, name);
  const size_t bytes = static_cast<size_t>(n) * (f32 ? sizeof(float) : ds_);
  if (buf.bytes() != bytes) {
    buf.allocate(bytes);
    generation_++;
  }
  uploader_.upload(data, n, buf.get(), f32 ? DType::kF32 : opts_.dtype, stream_);
  if (finalized_) bind_weights();
}

const void* CudaModel::weight_opt(const std::string& name) const {
  auto it = weights_.find(name);
  return it == weights_.end() ? nullptr : it->second.get();
}

const void* CudaModel::weight(const std::string& name) const {
  const void* p = weight_opt(name);
  if (!p) throw std::logic_error("model: missing weight " + name);
  return p;
}

void CudaModel::bind_weights() {
  layer_w_.resize(static_cast<size_t>(cfg_.layers));
  for (int64_t i = 0; i < cfg_.layers; ++i) {
    auto w = [&](const char* s) { return weight(layer_name(i, s)); };
    auto opt = [&](const char* s) { return weight_opt(layer_name(i, s)); };
    const bool moe = layer_is_moe(cfg_, i);  // no dense up/down: a router and experts (moe_w_)
    // No pre-norms (OLMo 2): null norm weights, which norm() reads as "the input as it is".
    layer_w_[i] = {cfg_.pre_norms ? w("attn_norm.weight") : nullptr, opt("attn_norm.bias"), w("qkv.weight"), opt("qkv.bias"),
                   w("o.weight"), opt("o.bias"), has_mlp_norm(cfg_) ? w("mlp_norm.weight") : nullptr,
                   opt("mlp_norm.bias"),
                   moe ? nullptr : w("up.weight"), opt("up.bias"), moe ? nullptr : w("down.weight"), opt("down.bias"),
                   opt("q_norm.weight"), opt("k_norm.weight"), opt("post_attn_norm.weight"),
                   opt("post_mlp_norm.weight"), opt("q_a_norm.weight"), opt("kv_a_norm.weight"), opt("q_b.weight"),
                   opt("kv_b.weight"), static_cast<const float*>(opt("attn_sinks")),
                   static_cast<const float*>(opt("xielu"))};
  }
  moe_w_.assign(cfg_.num_experts > 0 ? static_cast<size_t>(cfg_.layers) : 0, MoeWeights{});
  for (int64_t i = 0; i < static_cast<int64_t>(moe_w_.size()); ++i) {
    if (!layer_is_moe(cfg_, i)) continue;
    MoeWeights& m = moe_w_[i];
    m.router = weight(layer_name(i, "router.weight"));
    const void* router_bias = weight_opt(layer_name(i, "router.bias"));  // a choice bias, or gpt-oss's logit bias
    m.router_bias = cfg_.moe_logit_bias ? nullptr : static_cast<const float*>(router_bias);
    m.router_logit_bias = cfg_.moe_logit_bias ? router_bias : nullptr;
    m.shared_gate = weight_opt(layer_name(i, "shared_gate.weight"));
    for (int64_t e = 0; e < experts_held(cfg_); ++e) {
      const std::string ex = "experts." + std::to_string(e) + ".";
      m.up.push_back(weight(layer_name(i, (ex + "up.weight").c_str())));
      m.down.push_back(weight(layer_name(i, (ex + "down.weight").c_str())));
      m.up_bias.push_back(weight_opt(layer_name(i, (ex + "up.bias").c_str())));
      m.down_bias.push_back(weight_opt(layer_name(i, (ex + "down.bias").c_str())));
    }
  }
}

void CudaModel::finalize() {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& r : required_weights(cfg_))
    if (!weights_.count(r)) throw std::invalid_argument("model: required weight '" + r + "' was never set");
  DeviceScope scope(device_);
  bind_weights();
  const size_t kv_dim = static_cast<size_t>(cfg_.kv_heads_local * cfg_.head_dim);
  const size_t bytes = 2 * static_cast<size_t>(cfg_.layers) * cfg_.num_blocks * cfg_.block_size * kv_dim * ds_;
  if (kv_cache_.ensure(bytes)) generation_++;
  // Zeroed so padded decode rows (which attend to block 0) never read NaN bit patterns.
  WEFT_CUDA_CHECK(cudaMemsetAsync(kv_cache_.get(), 0, bytes, stream_));
  WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  uploader_.release();
  finalized_ = true;
}

void* CudaModel::kv(int64_t layer, int which) const {
  const size_t per = static_cast<size_t>(cfg_.num_blocks * cfg_.block_size * cfg_.kv_heads_local * cfg_.head_dim) * ds_;
  return kv_cache_.as<char>() + (2 * static_cast<size_t>(layer) + which) * per;
}

// DoRA's weight norms from the device-resident weights (lora_weight_norms_sq in dora.cu), on the copy stream
// beside steps: each part's float32 A and B uploaded, its rows' sums copied back. Once per adapter load.
std::vector<std::vector<float>> CudaModel::lora_weight_norms_sq(const std::vector<LoraPartRef>& parts) {
  if (!finalized_) throw std::logic_error("model: lora_weight_norms_sq before finalize()");
  std::vector<std::vector<float>> out;
  std::lock_guard<std::mutex> lock(stage_mu_);
  DeviceScope scope(device_);
  for (const LoraPartRef& r : parts) {
    const std::string name = dora_norm_weight(cfg_, r);
    if (r.rank > LoraStore::kMaxRank)
      throw std::invalid_argument("lora: rank " + std::to_string(r.rank) + " is above the CUDA backend's limit");
    const size_t a_bytes = sizeof(float) * static_cast<size_t>(r.a_len), b_bytes = sizeof(float) * static_cast<size_t>(r.b_len);
    const size_t b_at = round_up(a_bytes, 256), sums_at = round_up(b_at + b_bytes, 256);
    StreamBuffer dev(sums_at + sizeof(float) * static_cast<size_t>(r.out_len), copy_stream_);
    dev.free_on(copy_stream_);
    char* base = dev.as<char>();
    WEFT_CUDA_CHECK(cudaMemcpyAsync(base, r.a, a_bytes, cudaMemcpyHostToDevice, copy_stream_));
    WEFT_CUDA_CHECK(cudaMemcpyAsync(base + b_at, r.b, b_bytes, cudaMemcpyHostToDevice, copy_stream_));
    const char* w = static_cast<const char*>(weight(name)) + r.out_offset * r.in * ds_;
    auto* sums = reinterpret_cast<float*>(base + sums_at);
    WEFT_CUDA_CHECK(weft::cuda::lora_weight_norms_sq(w, opts_.dtype, r.out_len, r.in, reinterpret_cast<const float*>(base),
                                                     reinterpret_cast<const float*>(base + b_at),
                                                     static_cast<int32_t>(r.rank), r.scale, sums, copy_stream_));
    std::vector<float> host(static_cast<size_t>(r.out_len));
    WEFT_CUDA_CHECK(cudaMemcpyAsync(host.data(), sums, sizeof(float) * host.size(), cudaMemcpyDeviceToHost, copy_stream_));
    WEFT_CUDA_CHECK(cudaStreamSynchronize(copy_stream_));
    out.push_back(std::move(host));
  }
  return out;
}

std::unique_ptr<StagedAdapter> CudaModel::stage_adapter(const std::vector<LoraPartRef>& parts) {
  std::lock_guard<std::mutex> lock(stage_mu_);
  DeviceScope scope(device_);
  return lora_->stage(parts, stage_uploader_, copy_stream_);
}

void CudaModel::install_adapter(int slot, std::unique_ptr<StagedAdapter> staged) {
  check_adapter_slot(cfg_, slot);
  auto* mine = dynamic_cast<StagedLora*>(staged.get());
  if (!mine) throw std::invalid_argument("install_adapter: the adapter was staged by another model");
  std::lock_guard<std::mutex> lock(mu_);
  DeviceScope scope(device_);
  lora_->install(slot, *mine, stream_);
}

void CudaModel::clear_adapter(int slot) {
  std::lock_guard<std::mutex> lock(mu_);
  check_adapter_slot(cfg_, slot);
  DeviceScope scope(device_);
  WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_));  // a step never outlives forward(), but be certain
  lora_->clear(slot);
}

int64_t CudaModel::adapter_bytes(int slot) const {
  std::lock_guard<std::mutex> lock(mu_);
  check_adapter_slot(cfg_, slot);
  return lora_->bytes(slot);
}

bool CudaModel::use_graph(const Batch& b, PaddedShape* shape) const {
  // A MoE layer reads its experts' row counts back mid-step (cuda_moe.cc), which a graph cannot.
  if (!opts_.cuda_graphs || ops_.on() || coll_->world() != 1 || !decode_only(b) || cfg_.num_experts > 0) return false;
  // Embedding overrides (image features) are per-step host data uploaded outside the arena: eager only. decode_only
  // alone would not keep them out — a prompt's last chunk of one token (an image placeholder) has one row.
  if (!b.embed_rows.empty()) return false;
  const int32_t rows = DecodeGraphs::bucket_rows(static_cast<int64_t>(std::max(b.seqs.size(), b.logit_rows.size())));
  if (rows == 0) return false;
  shape->rows = rows;
  shape->table_stride = DecodeGraphs::bucket_stride(longest_block_table(b));
  return true;
}

// Grows the step buffers to fit `p` (capacities are powers of two, at least 128 rows so every decode graph
// bucket fits); any reallocation bumps generation_, which retires the captured graphs.
void CudaModel::ensure_buffers(const StepPlan& p) {
  const int64_t H = cfg_.hidden, q_dim = cfg_.heads_local * cfg_.head_dim;
  const int64_t world = coll_->world();
  bool moved = false;
  if (p.rows > buf_.rows) {
    const int64_t n = pow2_at_least(p.rows, DecodeGraphs::kMaxRows);
    const size_t d = ds_, f = sizeof(float);
    // Should an allocation below throw, the next step must not reuse the freed or empty buffers (or graphs).
    buf_.rows = 0;
    generation_++;
    buf_.h.allocate(n * H * f);
    buf_.x.allocate(n * H * d);
    buf_.qkv.allocate(n * qkv_stride() * d);
    if (is_mla(cfg_)) {
      const int64_t nh = cfg_.heads_local;
      buf_.mla_first.allocate(n * module_out(cfg_, kQkv) * d);
      if (cfg_.mla_q_rank > 0) buf_.mla_qa.allocate(n * cfg_.mla_q_rank * d);
      buf_.mla_kva.allocate(n * cfg_.mla_kv_rank * d);
      if (cfg_.mla_q_rank > 0) buf_.mla_q.allocate(n * q_dim * d);
      buf_.mla_kv.allocate(n * nh * (cfg_.mla_nope_dim + cfg_.mla_v_dim) * d);
      buf_.attn_v.allocate(n * nh * cfg_.mla_v_dim * d);
    }
    buf_.attn.allocate(n * q_dim * d);
    buf_.o.allocate(n * H * d);
    if (opts_.dtype != DType::kF32 && world > 1) buf_.o32.allocate(n * H * f);
    buf_.up.allocate(n * module_out(cfg_, kUp) * d);
    if (gated_mlp(cfg_)) buf_.act.allocate(n * cfg_.intermediate_local * d);
    if (cfg_.rotary_dim > 0 && rope_table()) buf_.rope_cs.allocate(n * cfg_.rotary_dim * f);  // rotary_dim/2 pairs
    if (cfg_.qk_norm_full) buf_.qk_sums.allocate(n * 2 * f);
    if (cfg_.parallel_mlp_norm) buf_.xm.allocate(n * H * d);
    buf_.rows = n;
    moved = true;
  }
  if (p.logit_rows > buf_.logit_rows) {
    const int64_t n = pow2_at_least(p.logit_rows, DecodeGraphs::kMaxRows);
    buf_.logit_rows = 0;
    generation_++;
    buf_.hr.allocate(n * H * sizeof(float));
    buf_.xr.allocate(n * H * ds_);
    buf_.lg.allocate(n * cfg_.vocab_local * ds_);
    if (opts_.dtype != DType::kF32) buf_.lg32.allocate(n * cfg_.vocab_local * sizeof(float));
    if (nccl_ && world > 1) {
      buf_.lgc.allocate(n * cfg_.vocab_chunk * sizeof(float));
      buf_.gathered.allocate(world * n * cfg_.vocab_chunk * sizeof(float));
    }
    buf_.logit_rows = n;
    moved = true;
  }
  const int32_t cap = lora_->rank_cap();
  const int64_t lora_rows = std::max(buf_.rows, buf_.logit_rows);
  if (p.lora && (cap != buf_.rank_cap || lora_rows > buf_.lora_rows)) {
    buf_.lora_rows = 0;
    generation_++;
    buf_.lora_h.allocate(static_cast<size_t>(3) * lora_rows * cap * sizeof(float));
    buf_.rank_cap = cap;
    buf_.lora_rows = lora_rows;
    moved = true;
  }
  if (p.decode_seqs > 0) {
    PagedAttention a{};
    a.num_tokens = static_cast<int32_t>(p.rows - p.prefill_rows);
    a.heads = static_cast<int32_t>(cfg_.heads_local);
    a.kv_heads = static_cast<int32_t>(cfg_.kv_heads_local);  // the decode partition depends on the head shape
    a.head_dim = static_cast<int32_t>(cfg_.head_dim);
    a.max_context_len = p.decode_max_context;
    const size_t need = paged_attention_decode_workspace_bytes(a);
    if (need > buf_.attn_ws.bytes()) moved |= buf_.attn_ws.ensure(static_cast<size_t>(pow2_at_least(need, 1 << 20)));
  }
  const size_t words = static_cast<size_t>(p.words) * sizeof(int32_t);
  if (words > buf_.arena.bytes() || words > buf_.arena_host.bytes()) {  // both: the pinned one may have failed
    generation_++;
    const size_t n = static_cast<size_t>(pow2_at_least(static_cast<int64_t>(words), 64 << 10));
    buf_.arena.allocate(n);
    buf_.arena_host.ensure(n);
    moved = true;
  }
  if (world > 1 || cfg_.vocab_local != cfg_.vocab) {
    const int64_t stage = std::max(p.rows * H, (world + 1) * p.wanted_logits * cfg_.vocab_chunk);
    buf_.stage.ensure(static_cast<size_t>(stage) * sizeof(float));
  }
  if (moved) generation_++;
}

void CudaModel::upload_plan(const StepPlan& p) {
  const size_t bytes = static_cast<size_t>(p.words) * sizeof(int32_t);
  std::memcpy(buf_.arena_host.as<int32_t>(), packed_.data(), bytes);
  WEFT_CUDA_CHECK(cudaMemcpyAsync(buf_.arena.get(), buf_.arena_host.as<int32_t>(), bytes, cudaMemcpyHostToDevice,
                                  stream_));
}

bool CudaModel::check_step(const Batch& b) {
  if (!finalized_) throw std::logic_error("model: forward before finalize()");
  weft::validate_batch(cfg_, b, [this](int32_t slot) { return lora_->loaded(slot); });
  // Gemma 3's image spans: the prefill attention kernels take them (PagedAttention::image_spans); validate_batch
  // refused a chunk ending inside an image. Not with a bidirectional model (every key is seen there already).
  for (const BatchSeq& s : b.seqs)
    if (!s.image_spans.empty() && cfg_.bidirectional)
      throw std::invalid_argument("batch: image spans on a bidirectional model (whose prompts attend both ways "
                                  "already) are not supported by the CUDA backend");
  check_overrides(b);
  if (!b.deepstack_rows.empty())
    throw std::invalid_argument("batch: deepstack rows (Qwen3-VL's image features added after the first decoder "
                                "layers) are not supported by the CUDA backend yet; serve its images with --device cpu");
  const int64_t T = static_cast<int64_t>(b.tokens.size()), R = static_cast<int64_t>(b.logit_rows.size());
  if (T == 0) return false;
  if (T + cfg_.adapter_slots > kMaxStepRows || R > kMaxStepRows)
    throw std::invalid_argument("batch: " + std::to_string(T) + " rows and " + std::to_string(R) +
                                " logit rows; the CUDA backend runs at most " + std::to_string(kMaxStepRows) +
                                " (less the adapter slots) per step");
  return true;
}

StepPlan CudaModel::launch_step(const Batch& b) {
  ops_.begin_step();
  ops_.mark("plan upload", stream_);
  PaddedShape shape;
  const bool graph = use_graph(b, &shape);
  StepPlan p = plan_step(cfg_, b, graph ? &shape : nullptr, packed_);
  for (const BatchSeq& s : b.seqs) {
    if (s.adapter_slot < 0) continue;
    p.dora = p.dora || lora_->is_dora(s.adapter_slot);
    p.embed_lora = p.embed_lora || lora_->has_embedding(s.adapter_slot);
  }
  ensure_buffers(p);
  lora_->sync_tables(stream_);
  upload_plan(p);
  if (!b.embed_rows.empty()) upload_overrides(b, p, graph);  // use_graph chose eager for it (checked there)
  if (graph) {
    graphs_.launch(GraphKey{shape.rows, shape.table_stride, p.lora, p.dora, p.embed_lora}, generation_, stream_,
                   [&] { enqueue_step(p); });
  } else {
    enqueue_step(p);
  }
  return p;
}

std::vector<float> CudaModel::forward(const Batch& b) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!check_step(b)) return {};
  DeviceScope scope(device_);
  return guarded([&] {
    const StepPlan p = launch_step(b);
    std::vector<float> logits = collect_logits(p);
    if (b.return_hidden && p.wanted_logits > 0) {
      // The final-normed rows in the executor's dtype (lm_head's input), widened into hr (no longer needed).
      const int64_t n = p.wanted_logits * cfg_.hidden;
      WEFT_CUDA_CHECK(convert(buf_.xr.get(), opts_.dtype, buf_.hr.get(), DType::kF32, n, stream_));
      const size_t at = logits.size();
      logits.resize(at + static_cast<size_t>(n));
      WEFT_CUDA_CHECK(cudaMemcpyAsync(logits.data() + at, buf_.hr.get(), static_cast<size_t>(n) * sizeof(float),
                                      cudaMemcpyDeviceToHost, stream_));
      WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    if (!b.hidden_rows.empty()) append_hidden_rows(p, b.hidden_rows, logits);
    ops_.finish(stream_);
    return logits;
  });
}

// Pooled embeddings: the final-normed hidden states of Batch::hidden_rows, appended to out. Every row of the step is
// normed (in the executor's dtype, as lm_head's input would be; x is free once the step is done), widened to fp32
// over the residual stream h (no longer needed) and copied back once; the rows are picked on the host.
void CudaModel::append_hidden_rows(const StepPlan& p, const std::vector<int32_t>& rows, std::vector<float>& out) {
  const int64_t H = cfg_.hidden, n = p.rows * H;
  norm(buf_.h.get(), DType::kF32, p.rows, weight("final_norm.weight"), weight_opt("final_norm.bias"), buf_.x.get());
  WEFT_CUDA_CHECK(convert(buf_.x.get(), opts_.dtype, buf_.h.get(), DType::kF32, n, stream_));
  std::vector<float> all(static_cast<size_t>(n));
  WEFT_CUDA_CHECK(cudaMemcpyAsync(all.data(), buf_.h.get(), all.size() * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  const size_t at = out.size();
  out.resize(at + rows.size() * static_cast<size_t>(H));
  for (size_t r = 0; r < rows.size(); ++r)
    std::memcpy(out.data() + at + r * H, all.data() + static_cast<int64_t>(p.row_of[rows[r]]) * H, sizeof(float) * H);
}

std::vector<cpu::SampleResult> CudaModel::forward_sample(const Batch& b, const std::vector<RowSampling>& rows) {
  // Several ranks: the logits are gathered on the host (shm) or end there after NCCL's all-gather; sample there.
  if (coll_->world() != 1 || cfg_.vocab_local != cfg_.vocab) return ModelExecutor::forward_sample(b, rows);
  check_sampling_rows(b, rows);
  std::lock_guard<std::mutex> lock(mu_);
  if (!check_step(b)) return {};
  DeviceScope scope(device_);
  return guarded([&] {
    std::vector<cpu::SampleResult> out = sample_on_device(launch_step(b), rows);
    ops_.finish(stream_);
    return out;
  });
}

void CudaModel::set_op_profile(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  DeviceScope scope(device_);
  ops_.set(on);
}

std::vector<OpTime> CudaModel::take_op_profile() {
  std::lock_guard<std::mutex> lock(mu_);
  return ops_.take();
}

std::shared_ptr<ModelExecutor> make_cuda_model(ModelConfig cfg, std::shared_ptr<Collective> coll,
                                               const CudaModelOptions& opts) {
  return std::make_shared<CudaModel>(std::move(cfg), std::move(coll), opts);
}

}  // namespace weft::cuda
