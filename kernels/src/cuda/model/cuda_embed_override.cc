// Embedding-row overrides on the CUDA backend (Batch::embed_rows: a vision-language model's projected image features
// in place of its image placeholder tokens' embeddings; the CPU twin is in Model::forward, model/forward.cc).
//
// Per step with overrides: the rows are packed on the host (destinations mapped through the plan's row order, then
// the fp32 features; embed_override_body.h) into pinned memory and sent in one host-to-device copy on stream_; after
// the embedding lookup, the token embedding's scale and its LoRA, one kernel writes them over their rows of the fp32
// residual stream, each value rounded through the model's dtype (bf16 / fp16 models see features the dtype holds, as
// transformers' LLaVA in that dtype does). The same places the CPU path minds:
//  - tensor parallelism: h is whole on every rank and every rank gets the same overrides (the vision tower runs
//    whole on each rank, shard/models/vision-weights.ts), so each rank writes the same rows; no collective;
//  - the embedding scale: the features are not scaled (transformers scatters them into inputs_embeds after the
//    scaled lookup); LLaVA's text models have none anyway (llava-spec.ts refuses one);
//  - learned position embeddings: the CUDA lookup adds them in the same kernel, so an override would drop them; no
//    LLaVA text model has them, so check_overrides refuses that rather than computing something else;
//  - CUDA graphs: a step with overrides always runs eagerly (use_graph returns false for it, upload_overrides
//    throws should a graph ever be chosen): the features are per-step host data outside the arena a graph replays.
// The pinned staging buffer is reused next step without waiting: every step ends with a stream synchronisation
// (collect_logits / sample_on_device) before forward returns, so the previous copy is done by then.
#include <stdexcept>
#include <string>

#include "cuda/kernels/embed_override_body.h"
#include "cuda/model/cuda_model.h"
#include "cuda/runtime/check.h"

namespace weft::cuda {

void CudaModel::check_overrides(const Batch& b) const {
  if (b.embed_rows.empty()) return;
  if (cfg_.learned_positions)
    throw std::invalid_argument("batch: embedding overrides (image features) on a model with learned position "
                                "embeddings are not supported by the CUDA backend (the lookup adds the positions in "
                                "the same kernel); serve this model with device 'cpu'");
}

void CudaModel::upload_overrides(const Batch& b, StepPlan& p, bool graph) {
  if (graph) throw std::logic_error("cuda model: a step with embedding overrides was planned for a CUDA graph");
  const int64_t n = static_cast<int64_t>(b.embed_rows.size()), H = cfg_.hidden;
  const size_t bytes = static_cast<size_t>(embed_rows::packed_bytes(n, H));
  buf_.overrides.ensure(bytes);
  buf_.overrides_host.ensure(bytes);
  embed_rows::pack(b.embed_rows.data(), b.embed_values.data(), n, H, p.row_of.data(),
                       buf_.overrides_host.as<void>());
  WEFT_CUDA_CHECK(cudaMemcpyAsync(buf_.overrides.get(), buf_.overrides_host.as<void>(), bytes, cudaMemcpyHostToDevice,
                                  stream_));
  p.embed_overrides = n;
}

void CudaModel::apply_overrides(const StepPlan& p) {
  ops_.mark("embed overrides", stream_);
  WEFT_CUDA_CHECK(embed_override(buf_.overrides.get(), p.embed_overrides, cfg_.hidden, buf_.h.as<float>(), opts_.dtype,
                                 stream_));
}

}  // namespace weft::cuda
