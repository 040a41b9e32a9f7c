// A LLaVA-style vision encoder on the CPU backend (fp32): a CLIP vision tower (patch convolution without bias,
// class embedding, learned position embeddings, pre-LayerNorm, pre-norm encoder layers with bidirectional attention
// and biased projections) whose selected hidden states, optionally without the class row, go through the
// multi-modal projector (linear_1 -> activation -> linear_2). Or (VisionTower::kSiglipGemma3) Gemma 3's: a SigLIP
// tower (patch convolution with bias, position embeddings without a class row, no pre-norm, the same encoder layers,
// post_layernorm) whose patch grid is average-pooled to pool_tokens rows, RMS-normalised (mm_soft_emb_norm, its
// (1 + w) folded into the weight by the loader) and projected without bias (mm_input_projection_weight). Its output rows replace the image placeholder tokens'
// embeddings in the language model (Batch::embed_rows). Or (VisionTower::kSiglipIdefics3) Idefics3 / SmolVLM's: the
// same SigLIP tower (patch i of a full tile at position i: shard/models/idefics3-spec.ts), post_layernorm, the
// connector's pixel shuffle by scale_factor and its bias-free modality_projection (LoRA target "proj1"). The tower and
// the projector are small next to the language model, so every tensor-parallel rank holds them whole and computes the
// same features: no collective.
#pragma once
#include <stdexcept>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace weft {

enum class VisionAct { kQuickGelu, kGeluErf, kGeluTanh, kRelu, kSilu };
enum class VisionTower { kClipLlava, kSiglipGemma3, kSiglipIdefics3 };

// x = act(x) in place, as transformers' ACT2FN computes it in float32 (CLIP's quick_gelu: x·σ(1.702x)).
void vision_activate(VisionAct act, float* x, int64_t n);

struct VisionConfig {
  VisionTower tower = VisionTower::kClipLlava;
  // Gemma 3 (kSiglipGemma3): mm_tokens_per_image, a square number whose side divides the patch grid's.
  int64_t pool_tokens = 0;
  // Idefics3 / SmolVLM (kSiglipIdefics3): the connector's pixel-shuffle factor (divides the patch grid's side).
  int64_t scale_factor = 0;
  int64_t hidden = 0, heads = 0, intermediate = 0;
  // Encoder layers this plan holds and runs: the deepest selected hidden state's index (the layers after it never
  // change a feature, so they are neither loaded nor computed).
  int64_t layers = 0;
  int64_t image_size = 0, patch_size = 0, channels = 3;
  float norm_eps = 1e-5f;
  VisionAct act = VisionAct::kQuickGelu;
  // Indices into the tower's hidden states (0 = the embeddings after pre_layrnorm, i = after encoder layer i), in
  // order: their rows are concatenated along the features (transformers' list of vision_feature_layer).
  std::vector<int64_t> feature_layers;
  bool drop_cls = true;  // vision_feature_select_strategy 'default'
  int64_t text_hidden = 0;
  VisionAct projector_act = VisionAct::kGeluErf;
  bool projector_bias = true;
};

// One LoRA pair on a vision linear module: "layers.<l>.{q,k,v,o,fc1,fc2}" or "proj1" / "proj2" (LLaVA's projector;
// Gemma 3's projection is a bare parameter, no LoRA target).
struct VisionLoraPart {
  std::string target;
  int64_t rank = 0;
  float scale = 1.0f;
  std::vector<float> a, b;  // A [rank, in], B [out, rank]
};

// Throws unless every part names a linear module of the tower (shape_of(target) gives its {in, out}; in < 0: none)
// and its A and B fit that shape. `what` names the tower in the error ("vision tower", "vision plan").
template <typename ShapeOf>
void check_vision_lora_parts(const std::vector<VisionLoraPart>& parts, const char* what, ShapeOf shape_of) {
  for (const VisionLoraPart& p : parts) {
    const auto [in, out] = shape_of(p.target);
    if (in < 0) throw std::invalid_argument("vision lora: '" + p.target + "' is not a linear module of this " + what);
    if (p.rank <= 0 || static_cast<int64_t>(p.a.size()) != p.rank * in || static_cast<int64_t>(p.b.size()) != out * p.rank)
      throw std::invalid_argument("vision lora: part '" + p.target + "' does not fit: A must be [rank, " +
                                  std::to_string(in) + "] and B [" + std::to_string(out) + ", rank]");
  }
}

class VisionModel {
 public:
  explicit VisionModel(VisionConfig cfg);
  int64_t expected_size(const std::string& name) const;  // -1: not a weight of this plan
  void set_weight(const std::string& name, const float* data, int64_t n);
  void finalize();
  // Rows per image in the output (patches, plus the class row with 'full'; Gemma 3: pool_tokens).
  int64_t tokens_per_image() const;
  int64_t patches() const { return (cfg_.image_size / cfg_.patch_size) * (cfg_.image_size / cfg_.patch_size); }
  bool siglip() const { return cfg_.tower != VisionTower::kClipLlava; }  // a SigLIP tower (Gemma 3's or Idefics3's)
  bool idefics3() const { return cfg_.tower == VisionTower::kSiglipIdefics3; }
  // Rows of one image in the tower: the patches, plus CLIP's class row.
  int64_t seq_len() const { return patches() + (siglip() ? 0 : 1); }
  // (in, out) of a LoRA target, or (-1, -1) when the name is not one.
  std::pair<int64_t, int64_t> target_shape(const std::string& target) const;
  void check_lora(const std::vector<VisionLoraPart>& parts) const;  // throws std::invalid_argument naming the part
  // pixels [images, channels, image_size, image_size] -> features [images · tokens_per_image, text_hidden], with
  // `lora` (one adapter's parts, possibly none) on every image. Thread-safe (weights are read-only once finalized).
  std::vector<float> encode(const float* pixels, int64_t images, const std::vector<VisionLoraPart>& lora) const;
  const VisionConfig& config() const { return cfg_; }

 private:
  const float* w(const std::string& name) const;
  const float* w_opt(const std::string& name) const;
  // y = x Wᵀ + b (+ the LoRA parts on `target`), x [T, in], y [T, out].
  void linear(const std::string& target, const std::string& weight, const float* x, int64_t T, int64_t in, int64_t out,
              const std::vector<VisionLoraPart>& lora, float* y) const;
  void encoder_layer(int64_t l, std::vector<float>& h, int64_t images, const std::vector<VisionLoraPart>& lora) const;
  // The tower's embeddings [images · seq_len, hidden] of the pixels (patch convolution, class row, positions).
  std::vector<float> embed(const float* pixels, int64_t images) const;
  // Gemma 3: the tower's last hidden states -> post_layernorm -> pooled -> normed -> projected [images · pool_tokens, text_hidden].
  std::vector<float> gemma3_project(std::vector<float>& h, int64_t images) const;
  // Idefics3: post_layernorm -> pixel shuffle -> modality_projection [images · patches / scale², text_hidden].
  std::vector<float> idefics3_connect(std::vector<float>& h, int64_t images, const std::vector<VisionLoraPart>& lora) const;

  VisionConfig cfg_;
  std::unordered_map<std::string, std::vector<float>> weights_;
  bool finalized_ = false;
};

}  // namespace weft
