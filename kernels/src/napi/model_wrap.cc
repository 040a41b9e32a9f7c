// JS handle to a model executor: the CPU one (model/model.h) or, with config.device 'cuda', the CUDA one
// (cuda/model/cuda_model.h, only in an addon built with nvcc). forward() runs on the libuv thread pool and
// returns a Promise, so a shard's event loop keeps answering heartbeats during a step.
#include <napi.h>

#include <functional>
#include <memory>
#include <string>

#include "cpu/parallel.h"
#include "model/model.h"
#include "napi/addon_data.h"
#include "napi/async_call.h"
#include "napi/collective_wrap.h"
#include "napi/staged_adapter_wrap.h"
#include "napi/util.h"

#ifdef WEFT_WITH_CUDA
#include "cuda/model/cuda_model.h"
#endif

namespace weft::napi {

namespace {

// An optional boolean option (absent: false).
bool flag(const Napi::Object& o, const char* key) { return o.Get(key).ToBoolean().Value(); }

// An optional per-layer array of booleans (layerSliding, layerRope, layerMoe) as 0/1 bytes; absent: left empty.
void layer_flags(const Napi::Object& o, const char* key, std::vector<uint8_t>& out) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return;
  if (!v.IsArray()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be an array of booleans");
  const Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i).ToBoolean().Value() ? 1 : 0);
}
ModelConfig parse_config(const Napi::Object& o) {
  ModelConfig c;
  c.hidden = static_cast<int64_t>(num(o, "hidden"));
  c.layers = static_cast<int64_t>(num(o, "layers"));
  c.head_dim = static_cast<int64_t>(num(o, "headDim"));
  c.heads_local = static_cast<int64_t>(num(o, "headsLocal"));
  c.kv_heads_local = static_cast<int64_t>(num(o, "kvHeadsLocal"));
  c.intermediate_local = static_cast<int64_t>(num(o, "intermediateLocal"));
  c.vocab = static_cast<int64_t>(num(o, "vocab"));
  c.vocab_chunk = static_cast<int64_t>(num(o, "vocabChunk"));
  c.vocab_local = static_cast<int64_t>(num(o, "vocabLocal"));
  const std::string norm = str(o, "norm");
  if (norm == "rms") c.norm = NormKind::kRms;
  else if (norm == "layer") c.norm = NormKind::kLayer;
  else throw Napi::TypeError::New(o.Env(), "norm must be 'rms' or 'layer'");
  c.norm_eps = static_cast<float>(num(o, "normEps"));
  const std::string mlp = str(o, "mlp");
  if (mlp == "gated_silu") c.mlp = MlpKind::kGatedSilu;
  else if (mlp == "gelu_tanh") c.mlp = MlpKind::kGeluTanh;
  else if (mlp == "gelu_erf") c.mlp = MlpKind::kGeluErf;
  else if (mlp == "relu2") c.mlp = MlpKind::kReluSquared;
  else if (mlp == "gated_gelu_tanh") c.mlp = MlpKind::kGatedGeluTanh;
  else if (mlp == "clamped_swiglu") c.mlp = MlpKind::kClampedSwiglu;
  else if (mlp == "xielu") c.mlp = MlpKind::kXielu;
  else throw Napi::TypeError::New(o.Env(), "mlp must be 'gated_silu', 'gated_gelu_tanh', 'clamped_swiglu', 'gelu_tanh', 'gelu_erf', 'relu2' or 'xielu'");
  c.glu_alpha = static_cast<float>(num_or(o, "gluAlpha", 1.702));
  c.glu_limit = static_cast<float>(num_or(o, "gluLimit", 7.0));
  c.learned_positions = flag(o, "learnedPositions");
  c.max_positions = static_cast<int64_t>(num(o, "maxPositions"));
  c.rotary_dim = static_cast<int64_t>(num(o, "rotaryDim"));
  auto inv = f32(o.Get("invFreq"), "invFreq");
  c.inv_freq.assign(inv.Data(), inv.Data() + inv.ElementLength());
  c.rope_attention_factor = static_cast<float>(num_or(o, "ropeAttentionFactor", 1.0));
  c.rope_attention_factor_local = static_cast<float>(num_or(o, "ropeAttentionFactorLocal", 1.0));
  c.sliding_window = static_cast<int64_t>(num_or(o, "slidingWindow", 0));
  c.attn_scale = static_cast<float>(num(o, "attnScale"));
  c.qk_norm = flag(o, "qkNorm");
  c.qk_norm_full = flag(o, "qkNormFull");
  c.qk_layer_norm = flag(o, "qkLayerNorm");
  c.qkv_clip = static_cast<float>(num_or(o, "qkvClip", 0.0));
  c.q_scale_beta = static_cast<float>(num_or(o, "qScaleBeta", 0.0));
  c.q_scale_period = static_cast<int64_t>(num_or(o, "qScalePeriod", 0));
  c.q_scale_offset = static_cast<int64_t>(num_or(o, "qScaleOffset", 0));
  c.q_scale_nope_only = flag(o, "qScaleNopeOnly");
  c.qk_norm_after_rope = flag(o, "qkNormAfterRope");
  c.qk_norm_post_rope = flag(o, "qkNormPostRope");
  c.attention_chunk = static_cast<int64_t>(num_or(o, "attentionChunk", 0));
  layer_flags(o, "layerChunked", c.layer_chunked);
  c.bidirectional = flag(o, "bidirectional");
  c.parallel_block = flag(o, "parallelBlock");
  c.parallel_mlp_norm = flag(o, "parallelMlpNorm");
  const Napi::Value pre = o.Get("preNorms");
  c.pre_norms = pre.IsUndefined() || pre.IsNull() || pre.ToBoolean().Value();
  c.embed_scale = static_cast<float>(num_or(o, "embedScale", 1.0));
  c.post_norms = flag(o, "postNorms");
  c.attn_softcap = static_cast<float>(num_or(o, "attnSoftcap", 0.0));
  c.final_softcap = static_cast<float>(num_or(o, "finalSoftcap", 0.0));
  c.attn_sinks = flag(o, "attnSinks");
  c.residual_scale = static_cast<float>(num_or(o, "residualScale", 1.0));
  c.logits_divisor = static_cast<float>(num_or(o, "logitsDivisor", 1.0));
  layer_flags(o, "layerSliding", c.layer_sliding);
  c.rope_interleaved = flag(o, "ropeInterleaved");
  layer_flags(o, "layerRope", c.layer_rope);
  const Napi::Value local = o.Get("invFreqLocal");
  if (!local.IsUndefined() && !local.IsNull()) {
    auto lf = f32(local, "invFreqLocal");
    c.inv_freq_local.assign(lf.Data(), lf.Data() + lf.ElementLength());
  }
  const Napi::Value longf = o.Get("invFreqLong");
  if (!longf.IsUndefined() && !longf.IsNull()) {
    auto lf = f32(longf, "invFreqLong");
    c.inv_freq_long.assign(lf.Data(), lf.Data() + lf.ElementLength());
  }
  const Napi::Value ms = o.Get("mropeSection");
  if (!ms.IsUndefined() && !ms.IsNull()) {
    if (!ms.IsArray()) throw Napi::TypeError::New(o.Env(), "mropeSection must be an array of 3 frequency counts");
    const Napi::Array arr = ms.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) c.mrope_section.push_back(num_int(arr.Get(i), "mropeSection[i]"));
  }
  c.mrope_interleaved = o.Get("mropeInterleaved").ToBoolean().Value();
  c.num_experts = static_cast<int64_t>(num_or(o, "numExperts", 0));
  c.experts_per_token = static_cast<int64_t>(num_or(o, "expertsPerToken", 0));
  c.expert_intermediate_local = static_cast<int64_t>(num_or(o, "expertIntermediateLocal", 0));
  c.moe_renormalize = flag(o, "moeRenormalize");
  c.moe_sigmoid = flag(o, "moeSigmoid");
  c.moe_shared_expert = flag(o, "moeSharedExpert");
  c.moe_groups = static_cast<int64_t>(num_or(o, "moeGroups", 1));
  c.moe_topk_groups = static_cast<int64_t>(num_or(o, "moeTopkGroups", 1));
  c.moe_routed_scale = static_cast<float>(num_or(o, "moeRoutedScale", 1.0));
  c.moe_shared_intermediate_local = static_cast<int64_t>(num_or(o, "moeSharedIntermediateLocal", 0));
  c.moe_shared_gate = flag(o, "moeSharedGate");
  c.moe_group_max = flag(o, "moeGroupMax");
  c.moe_choice_bias = flag(o, "moeChoiceBias");
  c.moe_renorm_min = static_cast<float>(num_or(o, "moeRenormMin", 0.0));
  c.moe_sparsemixer = flag(o, "moeSparsemixer");
  c.moe_mixer_threshold = static_cast<float>(num_or(o, "moeMixerThreshold", 0.0));
  c.moe_logit_bias = flag(o, "moeLogitBias");
  c.moe_expert_bias = flag(o, "moeExpertBias");
  c.moe_scale_input = flag(o, "moeScaleInput");
  c.mla_q_rank = static_cast<int64_t>(num_or(o, "mlaQRank", 0));
  c.mla_kv_rank = static_cast<int64_t>(num_or(o, "mlaKvRank", 0));
  c.mla_nope_dim = static_cast<int64_t>(num_or(o, "mlaNopeDim", 0));
  c.mla_v_dim = static_cast<int64_t>(num_or(o, "mlaVDim", 0));
  c.mla_norm_eps = static_cast<float>(num_or(o, "mlaNormEps", 1e-6));
  layer_flags(o, "layerMoe", c.layer_moe);
  layer_flags(o, "layerMamba", c.layer_mamba);
  c.mamba_heads = static_cast<int64_t>(num_or(o, "mambaHeads", 0));
  c.mamba_heads_local = static_cast<int64_t>(num_or(o, "mambaHeadsLocal", 0));
  c.mamba_head_start = static_cast<int64_t>(num_or(o, "mambaHeadStart", 0));
  c.mamba_head_dim = static_cast<int64_t>(num_or(o, "mambaHeadDim", 0));
  c.mamba_state = static_cast<int64_t>(num_or(o, "mambaState", 0));
  c.mamba_groups = static_cast<int64_t>(num_or(o, "mambaGroups", 0));
  c.mamba_conv = static_cast<int64_t>(num_or(o, "mambaConv", 0));
  c.mamba_dt_min = static_cast<float>(num_or(o, "mambaDtMin", 0.0));
  c.mamba_dt_max = static_cast<float>(num_or(o, "mambaDtMax", 0.0));
  c.num_blocks = static_cast<int64_t>(num(o, "numBlocks"));
  c.block_size = static_cast<int64_t>(num(o, "blockSize"));
  c.adapter_slots = static_cast<int64_t>(num(o, "adapterSlots"));
  return c;
}

std::string str_or(const Napi::Object& o, const char* key, const char* dflt) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() || v.IsNull() ? std::string(dflt) : str(o, key);
}

// The backend named by config.device ('cpu' when absent) with config.dtype and config.cudaGraphs.
std::shared_ptr<ModelExecutor> make_executor(const Napi::Object& o, std::shared_ptr<Collective> coll) {
  Napi::Env env = o.Env();
  const std::string device = str_or(o, "device", "cpu");
  if (device != "cpu" && device != "cuda") throw Napi::TypeError::New(env, "device must be 'cpu' or 'cuda'");
  const std::string dtype = str_or(o, "dtype", device == "cuda" ? "bfloat16" : "float32");
  if (dtype != "float32" && dtype != "bfloat16" && dtype != "float16")
    throw Napi::TypeError::New(env, "dtype must be 'float32', 'bfloat16' or 'float16'");
  Napi::Value graphs = o.Get("cudaGraphs");
  if (!graphs.IsUndefined() && !graphs.IsNull() && !graphs.IsBoolean())
    throw Napi::TypeError::New(env, "'cudaGraphs' must be a boolean");
  ModelConfig cfg = parse_config(o);
  // The CPU pool computes the CPU backend's steps and, on either device, converts half-precision weights on load.
  const double threads = num_or(o, "cpuThreads", 0);
  if (!(threads >= 0 && threads <= 4096 && threads == static_cast<int>(threads)))
    throw Napi::RangeError::New(env, "cpuThreads must be an integer from 0 (one per hardware thread) to 4096");
  cpu::set_num_threads(static_cast<int>(threads));
  if (device == "cpu") {
    if (dtype != "float32")
      throw Napi::TypeError::New(env, "dtype '" + dtype + "' needs device 'cuda': the CPU backend computes in float32");
    return std::make_shared<Model>(std::move(cfg), std::move(coll));
  }
  if (has_mamba(cfg))
    throw Napi::Error::New(env, "device 'cuda': hybrid Mamba-2 models (Granite 4.0 H) run on the CPU backend only for "
                                "now; use device 'cpu'");
#ifdef WEFT_WITH_CUDA
  cuda::CudaModelOptions opts;
  opts.dtype = dtype == "float32" ? cuda::DType::kF32 : dtype == "float16" ? cuda::DType::kF16 : cuda::DType::kBF16;
  opts.cuda_graphs = graphs.IsBoolean() ? graphs.As<Napi::Boolean>().Value() : true;
  return cuda::make_cuda_model(std::move(cfg), std::move(coll), opts);
#else
  throw Napi::Error::New(env, "device 'cuda': this addon was built without CUDA (nvcc was not found when it was "
                              "built; install the CUDA toolkit and rerun npm run build:native), use device 'cpu'");
#endif
}

Batch parse_batch(const Napi::Object& o) {
  Batch b;
  b.tokens = i32vec(o.Get("tokens"), "batch.tokens");
  b.positions = i32vec(o.Get("positions"), "batch.positions");
  b.slot_mapping = i32vec(o.Get("slotMapping"), "batch.slotMapping");
  const Napi::Value rl = o.Get("ropeLong");
  if (!rl.IsUndefined() && !rl.IsNull()) {
    if (!rl.IsTypedArray() || rl.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(o.Env(), "batch.ropeLong must be a Uint8Array");
    const auto a = rl.As<Napi::Uint8Array>();
    b.rope_long.assign(a.Data(), a.Data() + a.ElementLength());
  }
  const Napi::Value mp = o.Get("mropePositions");
  if (!mp.IsUndefined() && !mp.IsNull()) b.mrope_positions = i32vec(mp, "batch.mropePositions");
  b.logit_rows = i32vec(o.Get("logitRows"), "batch.logitRows");
  const Napi::Value rh = o.Get("returnHidden");
  b.return_hidden = !rh.IsUndefined() && !rh.IsNull() && rh.ToBoolean().Value();
  const Napi::Value hr = o.Get("hiddenRows");
  if (!hr.IsUndefined() && !hr.IsNull()) b.hidden_rows = i32vec(hr, "batch.hiddenRows");
  const Napi::Value er = o.Get("embedRows");
  if (!er.IsUndefined() && !er.IsNull()) {
    b.embed_rows = i32vec(er, "batch.embedRows");
    auto ev = f32(o.Get("embedValues"), "batch.embedValues");
    b.embed_values.assign(ev.Data(), ev.Data() + ev.ElementLength());
  }
  const Napi::Value dr = o.Get("deepstackRows");
  if (!dr.IsUndefined() && !dr.IsNull()) {
    b.deepstack_rows = i32vec(dr, "batch.deepstackRows");
    auto dv = f32(o.Get("deepstackValues"), "batch.deepstackValues");
    b.deepstack_values.assign(dv.Data(), dv.Data() + dv.ElementLength());
  }
  Napi::Value sv = o.Get("seqs");
  if (!sv.IsArray()) throw Napi::TypeError::New(o.Env(), "batch.seqs must be an array");
  Napi::Array seqs = sv.As<Napi::Array>();
  for (uint32_t i = 0; i < seqs.Length(); ++i) {
    Napi::Object s = seqs.Get(i).As<Napi::Object>();
    BatchSeq bs;
    bs.token_start = static_cast<int64_t>(num(s, "tokenStart"));
    bs.num_tokens = static_cast<int64_t>(num(s, "numTokens"));
    bs.context_len = static_cast<int64_t>(num(s, "contextLen"));
    bs.adapter_slot = static_cast<int32_t>(num(s, "adapterSlot"));
    bs.state_slot = static_cast<int32_t>(num_or(s, "stateSlot", -1));
    bs.block_table = i32vec(s.Get("blockTable"), "seq.blockTable");
    const Napi::Value spans = s.Get("imageSpans");
    if (!spans.IsUndefined() && !spans.IsNull()) bs.image_spans = i32vec(spans, "seq.imageSpans");
    b.seqs.push_back(std::move(bs));
  }
  return b;
}

// rows: one {temperature, topK, topP, typicalP, repetitionPenalty, doSample, seed, drawIndex, penaltyTokens,
// topN} per logit row.
std::vector<RowSampling> parse_rows(const Napi::Value& v) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), "forwardSample(batch, rows): rows must be an array");
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<RowSampling> rows(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    if (!arr.Get(i).IsObject()) throw Napi::TypeError::New(v.Env(), "forwardSample: each row must be an object");
    Napi::Object o = arr.Get(i).As<Napi::Object>();
    rows[i].params = sampling_params(o);
    rows[i].penalty_tokens = i32vec(o.Get("penaltyTokens"), "row.penaltyTokens");
    rows[i].top_n = static_cast<int32_t>(num_int(o.Get("topN"), "row.topN"));
    if (rows[i].top_n < 0) throw Napi::RangeError::New(v.Env(), "forwardSample: row.topN must be >= 0");
  }
  return rows;
}

}  // namespace

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Model",
                       {InstanceMethod("setWeight", &ModelWrap::SetWeight),
                        InstanceMethod("expectedSize", &ModelWrap::ExpectedSize),
                        InstanceMethod("finalize", &ModelWrap::Finalize),
                        InstanceMethod("stageAdapter", &ModelWrap::StageAdapter),
                        InstanceMethod("stageAdapterSync", &ModelWrap::StageAdapterSync),
                        InstanceMethod("installAdapter", &ModelWrap::InstallAdapter),
                        InstanceMethod("loraWeightNormsSq", &ModelWrap::LoraWeightNormsSq),
                        InstanceMethod("loraWeightNormsSqSync", &ModelWrap::LoraWeightNormsSqSync),
                        InstanceMethod("clearAdapter", &ModelWrap::ClearAdapter),
                        InstanceMethod("adapterBytes", &ModelWrap::AdapterBytes),
                        InstanceMethod("forward", &ModelWrap::Forward),
                        InstanceMethod("forwardSample", &ModelWrap::ForwardSample),
                        InstanceMethod("setOpProfile", &ModelWrap::SetOpProfile),
                        InstanceMethod("takeOpProfile", &ModelWrap::TakeOpProfile),
                        InstanceMethod("dispose", &ModelWrap::Dispose)});
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "Model config must be an object");
    std::shared_ptr<Collective> coll;
    if (info.Length() > 1 && info[1].IsObject()) {
      Napi::Object co = info[1].As<Napi::Object>();
      if (!co.InstanceOf(addon_data(info.Env()).collective_ctor.Value()))
        throw Napi::TypeError::New(info.Env(), "second argument must be a Collective");
      coll = CollectiveWrap::Unwrap(co)->get();
      if (!coll) throw Napi::Error::New(info.Env(), "Collective was disposed");
    }
    guard(info.Env(), [&] { model_ = make_executor(info[0].As<Napi::Object>(), coll); });
  }

 private:
  ModelExecutor& live(Napi::Env env) {
    if (!model_) throw Napi::Error::New(env, "Model was disposed");
    return *model_;
  }

  Napi::Value SetWeight(const Napi::CallbackInfo& info) {
    const std::string name = info[0].ToString().Utf8Value();
    auto a = f32(info[1], "weight");
    guard(info.Env(), [&] { live(info.Env()).set_weight(name, a.Data(), static_cast<int64_t>(a.ElementLength())); });
    return info.Env().Undefined();
  }
  Napi::Value ExpectedSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(),
                             static_cast<double>(live(info.Env()).expected_size(info[0].ToString().Utf8Value())));
  }
  Napi::Value Finalize(const Napi::CallbackInfo& info) {
    guard(info.Env(), [&] { live(info.Env()).finalize(); });
    return info.Env().Undefined();
  }
  Napi::Value StageAdapter(const Napi::CallbackInfo& info) {
    live(info.Env());
    return stage_adapter_async(info.Env(), model_, info[0]);
  }
  Napi::Value StageAdapterSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::unique_ptr<StagedAdapter> staged;
    const std::vector<LoraPartRef> parts = parse_lora_parts(info[0]);
    guard(env, [&] { staged = live(env).stage_adapter(parts); });
    return StagedAdapterWrap::Make(env, model_, std::move(staged));
  }
  Napi::Value LoraWeightNormsSq(const Napi::CallbackInfo& info) {
    live(info.Env());
    return lora_weight_norms_sq_async(info.Env(), model_, info[0]);
  }
  Napi::Value LoraWeightNormsSqSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::vector<LoraPartRef> parts = parse_lora_parts(info[0]);
    std::vector<std::vector<float>> sums;
    guard(env, [&] { sums = live(env).lora_weight_norms_sq(parts); });
    return float_arrays(env, sums);
  }
  // installAdapter(slot, staged)
  Napi::Value InstallAdapter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int slot = static_cast<int>(num_int(info[0], "slot"));
    guard(env, [&] { check_adapter_slot(live(env).config(), slot); });  // before the handle gives up its adapter
    std::unique_ptr<StagedAdapter> staged = StagedAdapterWrap::take(info[1], &live(env));
    guard(env, [&] { live(env).install_adapter(slot, std::move(staged)); });
    return env.Undefined();
  }
  Napi::Value ClearAdapter(const Napi::CallbackInfo& info) {
    guard(info.Env(), [&] { live(info.Env()).clear_adapter(static_cast<int>(num_int(info[0], "slot"))); });
    return info.Env().Undefined();
  }
  Napi::Value AdapterBytes(const Napi::CallbackInfo& info) {
    int64_t n = 0;
    guard(info.Env(), [&] { n = live(info.Env()).adapter_bytes(static_cast<int>(num_int(info[0], "slot"))); });
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "forward(batch): batch must be an object");
    live(env);
    auto batch = std::make_shared<Batch>(parse_batch(info[0].As<Napi::Object>()));
    return queue_call<std::vector<float>>(
        env, [model = model_, batch] { return model->forward(*batch); },
        [](Napi::Env e, std::vector<float>& logits) -> Napi::Value {
          auto out = Napi::Float32Array::New(e, logits.size());
          std::copy(logits.begin(), logits.end(), out.Data());
          return out;
        },
        "forward failed: ");
  }
  Napi::Value ForwardSample(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "forwardSample(batch, rows): batch must be an object");
    live(env);
    auto batch = std::make_shared<Batch>(parse_batch(info[0].As<Napi::Object>()));
    auto rows = std::make_shared<std::vector<RowSampling>>(parse_rows(info[1]));
    return queue_call<std::vector<cpu::SampleResult>>(
        env, [model = model_, batch, rows] { return model->forward_sample(*batch, *rows); },
        [](Napi::Env e, std::vector<cpu::SampleResult>& out) -> Napi::Value {
          Napi::Array arr = Napi::Array::New(e, out.size());
          for (size_t i = 0; i < out.size(); ++i) arr.Set(static_cast<uint32_t>(i), sample_result(e, out[i]));
          return arr;
        },
        "forward failed: ");
  }
  Napi::Value SetOpProfile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsBoolean()) throw Napi::TypeError::New(env, "setOpProfile(on): on must be a boolean");
    guard(env, [&] { live(env).set_op_profile(info[0].As<Napi::Boolean>().Value()); });
    return env.Undefined();
  }
  // [{op, ms, calls}] since the last call, in the order the ops first ran.
  Napi::Value TakeOpProfile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<OpTime> ops;
    guard(env, [&] { ops = live(env).take_op_profile(); });
    Napi::Array out = Napi::Array::New(env, ops.size());
    for (size_t i = 0; i < ops.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("op", ops[i].op);
      o.Set("ms", ops[i].ms);
      o.Set("calls", static_cast<double>(ops[i].calls));
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    model_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<ModelExecutor> model_;
};

Napi::Function define_model(Napi::Env env) { return ModelWrap::Define(env); }

}  // namespace weft::napi
