// PixtralVisionModel (pixtral_vision.h): Mistral 3's Pixtral vision tower and projector on the CPU, float32.
#include "model/pixtral_vision.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace weft {

namespace {

constexpr float kTowerEps = 1e-5f;  // PixtralRMSNorm(eps=1e-5) everywhere in the tower, whatever the config says

// "layers.<l>.<rest>" -> (l, rest); (-1, "") when the name is not a block's.
std::pair<int64_t, std::string> split_layer(const std::string& name) {
  const std::string pre = "layers.";
  if (name.compare(0, pre.size(), pre) != 0) return {-1, ""};
  const size_t dot = name.find('.', pre.size());
  if (dot == std::string::npos || dot == pre.size() || name.find_first_not_of("0123456789", pre.size()) != dot)
    return {-1, ""};
  return {std::stoll(name.substr(pre.size(), dot - pre.size())), name.substr(dot + 1)};
}

}  // namespace

PixtralVisionModel::PixtralVisionModel(PixtralVisionConfig cfg) : cfg_(std::move(cfg)) {
  const PixtralVisionConfig& c = cfg_;
  if (c.hidden <= 0 || c.heads <= 0 || c.hidden % c.heads != 0 || (c.hidden / c.heads) % 4 != 0 || c.intermediate <= 0 ||
      c.layers < 0 || c.patch_size <= 0 || c.image_size < c.patch_size || c.merge_size <= 0 || c.channels <= 0 ||
      c.text_hidden <= 0)
    throw std::invalid_argument("pixtral vision config: sizes must be positive, hidden a multiple of heads and the head "
                                "size a multiple of 4 (rotary frequencies for rows and columns)");
}

std::pair<int64_t, int64_t> PixtralVisionModel::target_shape(const std::string& target) const {
  const int64_t H = cfg_.hidden, I = cfg_.intermediate, D = cfg_.text_hidden, m2 = cfg_.merge_size * cfg_.merge_size;
  if (target == "merge") return {H * m2, H};
  if (target == "linear_1") return {H, D};
  if (target == "linear_2") return {D, D};
  const auto [l, rest] = split_layer(target);
  if (l < 0 || l >= cfg_.layers) return {-1, -1};
  if (rest == "q" || rest == "k" || rest == "v" || rest == "o") return {H, H};
  if (rest == "gate" || rest == "up") return {H, I};
  if (rest == "down") return {I, H};
  return {-1, -1};
}

int64_t PixtralVisionModel::expected_size(const std::string& name) const {
  const int64_t H = cfg_.hidden, p = cfg_.patch_size;
  if (name == "patch_conv") return H * cfg_.channels * p * p;
  if (name == "ln_pre.weight" || name == "norm.weight") return H;
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos) return -1;
  const std::string module = name.substr(0, dot), kind = name.substr(dot + 1);
  const auto [l, rest] = split_layer(module);
  if (l >= 0 && l < cfg_.layers && (rest == "attention_norm" || rest == "ffn_norm")) return kind == "weight" ? H : -1;
  const auto [in, out] = target_shape(module);
  if (in < 0) return -1;
  if (kind == "weight") return in * out;
  const bool biased = cfg_.projector_bias && (module == "linear_1" || module == "linear_2");
  return kind == "bias" && biased ? out : -1;
}

void PixtralVisionModel::set_weight(const std::string& name, const float* data, int64_t n) {
  const int64_t want = expected_size(name);
  if (want < 0) throw std::invalid_argument("pixtral vision: '" + name + "' is not a weight of this vision plan");
  if (want != n)
    throw std::invalid_argument("pixtral vision: weight '" + name + "' has " + std::to_string(n) + " elements, expected " +
                                std::to_string(want));
  weights_[name].assign(data, data + n);
}

void PixtralVisionModel::finalize() {
  std::vector<std::string> required = {"patch_conv", "ln_pre.weight", "norm.weight", "merge.weight", "linear_1.weight",
                                       "linear_2.weight"};
  if (cfg_.projector_bias) {
    required.push_back("linear_1.bias");
    required.push_back("linear_2.bias");
  }
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    const std::string b = "layers." + std::to_string(l) + ".";
    for (const char* s : {"attention_norm", "ffn_norm", "q", "k", "v", "o", "gate", "up", "down"})
      required.push_back(b + s + ".weight");
  }
  for (const std::string& r : required)
    if (!weights_.count(r)) throw std::invalid_argument("pixtral vision: required weight '" + r + "' was never set");
  finalized_ = true;
}

const float* PixtralVisionModel::w(const std::string& name) const {
  auto it = weights_.find(name);
  if (it == weights_.end()) throw std::logic_error("pixtral vision: missing weight " + name);
  return it->second.data();
}

const float* PixtralVisionModel::w_opt(const std::string& name) const {
  auto it = weights_.find(name);
  return it == weights_.end() ? nullptr : it->second.data();
}

void PixtralVisionModel::check_lora(const std::vector<VisionLoraPart>& parts) const {
  check_vision_lora_parts(parts, "vision tower", [this](const std::string& t) { return target_shape(t); });
}

int64_t PixtralVisionModel::tokens_for(int64_t height, int64_t width) const {
  const int64_t f = cfg_.patch_size * cfg_.merge_size, side = cfg_.image_size / cfg_.patch_size;
  if (height <= 0 || width <= 0 || height % f != 0 || width % f != 0)
    throw std::invalid_argument("pixtral vision: a " + std::to_string(height) + "×" + std::to_string(width) +
                                " image does not tile into patch_size · spatial_merge_size = " + std::to_string(f) +
                                " pixel squares (resize it as PixtralImageProcessor does)");
  if (height / cfg_.patch_size > side || width / cfg_.patch_size > side)
    throw std::invalid_argument("pixtral vision: a " + std::to_string(height) + "×" + std::to_string(width) +
                                " image has more than image_size / patch_size = " + std::to_string(side) +
                                " patches a side (resize it to the image processor's longest_edge)");
  return (height / f) * (width / f);
}

void PixtralVisionModel::linear(const std::string& name, const float* x, int64_t T,
                                const std::vector<VisionLoraPart>& lora, float* y) const {
  const auto [in, out] = target_shape(name);
  cpu::gemm_xwt(x, T, in, w(name + ".weight"), out, w_opt(name + ".bias"), y, false);
  for (const VisionLoraPart& p : lora)
    if (p.target == name) cpu::lora_shrink_expand(x, 0, T, in, p.a.data(), p.b.data(), p.rank, out, p.scale, y, out, 0);
}

void PixtralVisionModel::block(int64_t l, std::vector<float>& h, const std::vector<float>& cos,
                               const std::vector<float>& sin, const std::vector<VisionLoraPart>& lora) const {
  const int64_t H = cfg_.hidden, I = cfg_.intermediate, heads = cfg_.heads, hd = H / heads, half = hd / 2;
  const int64_t N = static_cast<int64_t>(h.size()) / H;
  const std::string p = "layers." + std::to_string(l) + ".";
  std::vector<float> x(N * H), q(N * H), k(N * H), v(N * H), attn(N * H), o(N * H);
  cpu::rms_norm(h.data(), N, H, w(p + "attention_norm.weight"), kTowerEps, x.data());
  linear(p + "q", x.data(), N, lora, q.data());
  linear(p + "k", x.data(), N, lora, k.data());
  linear(p + "v", x.data(), N, lora, v.data());
  // rotate_half over each head with the patch's angles (cos / sin [N, half], the same for both halves).
  for (float* t : {q.data(), k.data()})
    for (int64_t n = 0; n < N; ++n)
      for (int64_t hh = 0; hh < heads; ++hh) {
        float* r = t + n * H + hh * hd;
        for (int64_t i = 0; i < half; ++i) {
          const float c = cos[n * half + i], s = sin[n * half + i], a = r[i], b = r[i + half];
          r[i] = a * c - b * s;
          r[i + half] = b * c + a * s;
        }
      }
  // Bidirectional attention over the image's patches, one head per work item.
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  cpu::parallel_for(heads, 1, [&](int64_t h0, int64_t h1) {
    std::vector<float> scores(static_cast<size_t>(N));
    for (int64_t hh = h0; hh < h1; ++hh)
      for (int64_t i = 0; i < N; ++i) {
        const float* qi = q.data() + i * H + hh * hd;
        float mx = -INFINITY;
        for (int64_t j = 0; j < N; ++j) {
          scores[j] = cpu::dot(qi, k.data() + j * H + hh * hd, hd) * scale;
          mx = std::max(mx, scores[j]);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < N; ++j) sum += scores[j] = std::exp(scores[j] - mx);
        float* out = attn.data() + i * H + hh * hd;
        std::memset(out, 0, sizeof(float) * hd);
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < N; ++j) {
          const float pj = scores[j] * inv;
          const float* vj = v.data() + j * H + hh * hd;
          for (int64_t d = 0; d < hd; ++d) out[d] += pj * vj[d];
        }
      }
  });
  linear(p + "o", attn.data(), N, lora, o.data());
  cpu::add_inplace(h.data(), o.data(), N * H);
  cpu::rms_norm(h.data(), N, H, w(p + "ffn_norm.weight"), kTowerEps, x.data());
  std::vector<float> gate(N * I), up(N * I);  // down(act(gate(x)) · up(x))
  linear(p + "gate", x.data(), N, lora, gate.data());
  linear(p + "up", x.data(), N, lora, up.data());
  vision_activate(cfg_.act, gate.data(), N * I);
  for (int64_t i = 0; i < N * I; ++i) gate[i] *= up[i];
  linear(p + "down", gate.data(), N, lora, o.data());
  cpu::add_inplace(h.data(), o.data(), N * H);
}

std::vector<float> PixtralVisionModel::encode(const float* pixels, int64_t height, int64_t width,
                                              const std::vector<VisionLoraPart>& lora) const {
  if (!finalized_) throw std::logic_error("pixtral vision: encode before finalize()");
  check_lora(lora);
  const int64_t tokens = tokens_for(height, width);
  const int64_t P = cfg_.patch_size, M = cfg_.merge_size, C = cfg_.channels, H = cfg_.hidden;
  const int64_t hd = H / cfg_.heads, half = hd / 2, quarter = hd / 4;
  const int64_t gh = height / P, gw = width / P, N = gh * gw, K = C * P * P;
  // The patch convolution as a product: patch n = row · gw + col (the conv output flattened row-major), its values
  // in the weight's (channel, y, x) order.
  std::vector<float> cols(N * K);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t py = n / gw, px = n % gw;
    float* row = cols.data() + n * K;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t ky = 0; ky < P; ++ky)
        std::memcpy(row + (c * P + ky) * P, pixels + (c * height + py * P + ky) * width + px * P, sizeof(float) * P);
  }
  std::vector<float> conv(N * H), h(N * H);
  cpu::gemm_xwt(cols.data(), N, K, w("patch_conv"), H, nullptr, conv.data(), false);
  cpu::rms_norm(conv.data(), N, H, w("ln_pre.weight"), kTowerEps, h.data());
  // PixtralRotaryEmbedding: freqs[j] = 1 / theta^(2j / hd), j < hd / 2; a patch at (row, col) turns its first
  // quarter by row · freqs[0::2] and its second by col · freqs[1::2] (then the same for the other half).
  std::vector<float> freqs(static_cast<size_t>(half));
  for (int64_t j = 0; j < half; ++j)
    freqs[j] = 1.0f / std::pow(cfg_.rope_theta, static_cast<float>(2 * j) / static_cast<float>(hd));
  std::vector<float> cos(N * half), sin(N * half);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < half; ++i) {
      const float angle = i < quarter ? static_cast<float>(n / gw) * freqs[2 * i]
                                      : static_cast<float>(n % gw) * freqs[2 * (i - quarter) + 1];
      cos[n * half + i] = std::cos(angle);
      sin[n * half + i] = std::sin(angle);
    }
  for (int64_t l = 0; l < cfg_.layers; ++l) block(l, h, cos, sin, lora);
  // The projector: norm, then each M × M block's patches unfolded (channel c, block row ki, block col kj at
  // c · M² + ki · M + kj), blocks row-major, through merging_layer; linear_1 → act → linear_2.
  const int64_t mw = gw / M, Mh = H * M * M, D = cfg_.text_hidden;
  std::vector<float> x(N * H), unfolded(tokens * Mh), merged(tokens * H), mid(tokens * D), out(tokens * D);
  cpu::rms_norm(h.data(), N, H, w("norm.weight"), cfg_.norm_eps, x.data());
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t br = t / mw, bc = t % mw;
    float* row = unfolded.data() + t * Mh;
    for (int64_t ki = 0; ki < M; ++ki)
      for (int64_t kj = 0; kj < M; ++kj) {
        const float* src = x.data() + ((br * M + ki) * gw + bc * M + kj) * H;
        for (int64_t c = 0; c < H; ++c) row[c * M * M + ki * M + kj] = src[c];
      }
  }
  linear("merge", unfolded.data(), tokens, lora, merged.data());
  linear("linear_1", merged.data(), tokens, lora, mid.data());
  vision_activate(cfg_.projector_act, mid.data(), tokens * D);
  linear("linear_2", mid.data(), tokens, lora, out.data());
  return out;
}

}  // namespace weft
