// The dynamic-resolution vision tower of Qwen2-VL and Qwen2.5-VL on the CPU backend (fp32), as transformers'
// modeling_qwen2_vl.py / modeling_qwen2_5_vl.py compute it for one still image: the image's [3, H, W] pixels
// (normalized as the image processor does) are cut into patch_size² patches in the processor's order (merge_size ×
// merge_size groups of neighbouring patches, each group's patches consecutive; the still image repeated
// temporal_patch_size times), embedded by the Conv3d as a product, rotated in attention by the 2-D rotary embedding
// of each patch's (row, column), run through the blocks (Qwen2-VL: LayerNorm, fused qkv, proj, fc1 → act → fc2;
// Qwen2.5-VL: RMSNorm, SwiGLU with biases, attention within windows of window_size pixels except in the full
// attention blocks), and merged: each group's merge_size² patches (normed) concatenated and put through the merger
// MLP to one row of the language model's hidden size per placeholder token. Attention never crosses images.
// Qwen3-VL (qwen3): the Conv3d has a bias; learned position embeddings on a square grid (num_position_embeddings),
// bilinearly interpolated (align_corners) to the image's patch grid, are added to the patch embeddings; the blocks
// are Qwen2-VL's; and the outputs of the deepstack blocks go through mergers of their own (LayerNorm after the
// merge_size² patches are put side by side): extra feature sets the language model adds to the image tokens' hidden
// states after its first layers (Batch::deepstack_rows).
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/vision.h"

namespace weft {

struct QwenVisionConfig {
  bool windowed = false;  // Qwen2.5-VL: RMSNorm, SwiGLU MLP, window attention; else Qwen2-VL
  bool qwen3 = false;     // Qwen3-VL: Qwen2-VL's blocks, patch bias, interpolated position embeddings, deepstack
  int64_t num_position_embeddings = 0;  // Qwen3-VL: a square number (the grid's side²)
  std::vector<int64_t> deepstack;       // Qwen3-VL: deepstack_visual_indexes (blocks whose outputs are merged too)
  int64_t hidden = 0, heads = 0, intermediate = 0, depth = 0;
  int64_t patch_size = 14, merge_size = 2, temporal_patch_size = 2, channels = 3;
  int64_t out_hidden = 0;  // the merger's output: the language model's hidden size
  VisionAct act = VisionAct::kQuickGelu;
  int64_t window_size = 0;               // pixels (Qwen2.5-VL)
  std::vector<int64_t> full_blocks;      // fullatt_block_indexes (Qwen2.5-VL)
  float norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
};

class QwenVisionModel {
 public:
  explicit QwenVisionModel(QwenVisionConfig cfg);
  int64_t expected_size(const std::string& name) const;  // -1: not a weight of this plan
  void set_weight(const std::string& name, const float* data, int64_t n);
  void finalize();
  // (in, out) of a LoRA target ("blocks.<l>.{qkv,proj,fc1,fc2,gate,up,down}", "merger.fc1", "merger.fc2", Qwen3-VL's
  // "deepstack.<i>.fc1" / "deepstack.<i>.fc2"), or (-1, -1).
  std::pair<int64_t, int64_t> target_shape(const std::string& target) const;
  void check_lora(const std::vector<VisionLoraPart>& parts) const;  // throws std::invalid_argument naming the part
  // Placeholder tokens of an image of height × width pixels; throws when the sides are not multiples of
  // patch_size · merge_size.
  int64_t tokens_for(int64_t height, int64_t width) const;
  // pixels [channels, height, width] -> features [tokens_for(height, width), out_hidden], with one adapter's parts;
  // Qwen3-VL: followed by each deepstack merger's features, [deepstack.size(), tokens, out_hidden] more.
  std::vector<float> encode(const float* pixels, int64_t height, int64_t width,
                            const std::vector<VisionLoraPart>& lora) const;
  const QwenVisionConfig& config() const { return cfg_; }

 private:
  const float* w(const std::string& name) const;
  const float* w_opt(const std::string& name) const;
  void linear(const std::string& name, const float* x, int64_t T, const std::vector<VisionLoraPart>& lora,
              float* y) const;
  void norm(const std::string& name, const float* x, int64_t T, float* y) const;
  // A merger ("merger", "deepstack.<i>") on h [N, hidden] -> out [N / merge², out_hidden]; postshuffle: the LayerNorm
  // on the merge² patches side by side (deepstack) instead of on each patch.
  void merge(const std::string& name, bool postshuffle, const std::vector<float>& h, const std::vector<VisionLoraPart>& lora,
             float* out) const;
  // Qwen3-VL: the learned position embeddings interpolated to patches at (row_of[n], col_of[n]) of a gh × gw grid,
  // added to h [N, hidden].
  void add_position_embeddings(std::vector<float>& h, const std::vector<int32_t>& row_of, const std::vector<int32_t>& col_of,
                               int64_t gh, int64_t gw) const;
  // One block on h [N, hidden] in place: attention within each segment (lists of patch rows), then the MLP.
  void block(int64_t l, std::vector<float>& h, const std::vector<std::vector<int32_t>>& segments,
             const std::vector<float>& cos, const std::vector<float>& sin, const std::vector<VisionLoraPart>& lora) const;

  QwenVisionConfig cfg_;
  std::unordered_map<std::string, std::vector<float>> weights_;
  bool finalized_ = false;
};

}  // namespace weft
