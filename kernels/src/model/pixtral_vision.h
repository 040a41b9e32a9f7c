// Mistral 3's image encoder on the CPU backend (fp32), as transformers' modeling_pixtral.py / modeling_mistral3.py
// compute it for one image: the Pixtral vision tower on the image at its own size (H, W multiples of patch_size ·
// spatial_merge_size) — the patch convolution without bias, ln_pre (RMSNorm), blocks of attention_norm (RMSNorm) →
// q/k/v/o without bias with the 2-D rotary embedding of each patch's (row, col) as PixtralRotaryEmbedding builds it
// (the head's first quarter of frequencies, the even ones, turn with the row, the second quarter, the odd ones, with
// the column), bidirectional attention within the image, ffn_norm (RMSNorm) → SwiGLU — then Mistral3's projector:
// norm (RMSNorm), the patch merger (each spatial_merge_size² block of neighbouring patches unfolded as
// torch.nn.functional.unfold orders it: channel-major, then the block's row, then its column; blocks row-major) →
// merging_layer, linear_1 → act → linear_2. One output row per [IMG] token of the image, row-major.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/vision.h"

namespace weft {

struct PixtralVisionConfig {
  int64_t hidden = 0, heads = 0, intermediate = 0;
  // Blocks held and run: the selected hidden state's index (vision_feature_layer; the later ones never reach a feature).
  int64_t layers = 0;
  int64_t patch_size = 14, image_size = 1540, channels = 3, merge_size = 2;
  int64_t text_hidden = 0;
  VisionAct act = VisionAct::kSilu;           // the tower's SwiGLU (hidden_act)
  VisionAct projector_act = VisionAct::kGeluErf;
  bool projector_bias = false;
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;  // the projector's norm (text_config.rms_norm_eps); the tower's RMSNorms use 1e-5
};

class PixtralVisionModel {
 public:
  explicit PixtralVisionModel(PixtralVisionConfig cfg);
  int64_t expected_size(const std::string& name) const;  // -1: not a weight of this plan
  void set_weight(const std::string& name, const float* data, int64_t n);
  void finalize();
  // (in, out) of a LoRA target ("layers.<l>.{q,k,v,o,gate,up,down}", "merge", "linear_1", "linear_2"), or (-1, -1).
  std::pair<int64_t, int64_t> target_shape(const std::string& target) const;
  void check_lora(const std::vector<VisionLoraPart>& parts) const;  // throws std::invalid_argument naming the part
  // Feature rows ([IMG] tokens) of an image of height × width pixels: (H / (p·m)) · (W / (p·m)); throws when a side
  // is not a multiple of patch_size · spatial_merge_size or has more patches than the rotary table (image_size).
  int64_t tokens_for(int64_t height, int64_t width) const;
  // pixels [channels, height, width] -> features [tokens_for(height, width), text_hidden], with one adapter's parts.
  std::vector<float> encode(const float* pixels, int64_t height, int64_t width,
                            const std::vector<VisionLoraPart>& lora) const;
  const PixtralVisionConfig& config() const { return cfg_; }

 private:
  const float* w(const std::string& name) const;
  const float* w_opt(const std::string& name) const;
  void linear(const std::string& name, const float* x, int64_t T, const std::vector<VisionLoraPart>& lora,
              float* y) const;
  void block(int64_t l, std::vector<float>& h, const std::vector<float>& cos, const std::vector<float>& sin,
             const std::vector<VisionLoraPart>& lora) const;

  PixtralVisionConfig cfg_;
  std::unordered_map<std::string, std::vector<float>> weights_;
  bool finalized_ = false;
};

}  // namespace weft
