// VisionModel (vision.h): the CLIP tower + LLaVA projector forward on the CPU, as transformers' modeling_clip.py
// and modeling_llava.py compute it in float32; or the SigLIP tower + Gemma 3 projector (modeling_siglip.py,
// modeling_gemma3.py's Gemma3MultiModalProjector); or the Idefics3 / SmolVLM SigLIP tower + connector (modeling_idefics3.py,
// modeling_smolvlm.py: pixel_shuffle, modality_projection).
#include "model/vision.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace weft {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// "layers.<l>.<rest>" -> (l, rest); (-1, "") when the name is not a layer's.
std::pair<int64_t, std::string> split_layer(const std::string& name) {
  if (!starts_with(name, "layers.")) return {-1, ""};
  const size_t dot = name.find('.', 7);
  if (dot == std::string::npos || dot == 7 || name.find_first_not_of("0123456789", 7) != dot) return {-1, ""};
  return {std::stoll(name.substr(7, dot - 7)), name.substr(dot + 1)};
}

}  // namespace

void vision_activate(VisionAct act, float* x, int64_t n) {
  switch (act) {
    case VisionAct::kQuickGelu:  // x · σ(1.702 x), CLIP's quick_gelu
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] * (1.0f / (1.0f + std::exp(-1.702f * x[i])));
      return;
    case VisionAct::kGeluErf: cpu::gelu_erf(x, n); return;
    case VisionAct::kGeluTanh: cpu::gelu_tanh(x, n); return;
    case VisionAct::kRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
      return;
    case VisionAct::kSilu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
      return;
  }
}

VisionModel::VisionModel(VisionConfig cfg) : cfg_(std::move(cfg)) {
  const VisionConfig& c = cfg_;
  if (c.hidden <= 0 || c.heads <= 0 || c.hidden % c.heads != 0 || c.intermediate <= 0 || c.layers < 0 ||
      c.image_size <= 0 || c.patch_size <= 0 || c.image_size % c.patch_size != 0 || c.channels <= 0 ||
      c.text_hidden <= 0)
    throw std::invalid_argument("vision config: sizes must be positive, hidden a multiple of heads and image_size a "
                                "multiple of patch_size");
  if (c.feature_layers.empty()) throw std::invalid_argument("vision config: at least one feature layer");
  for (int64_t f : c.feature_layers)
    if (f < 0 || f > c.layers)
      throw std::invalid_argument("vision config: feature layer " + std::to_string(f) + " outside the hidden states [0, " +
                                  std::to_string(c.layers) + "] this plan runs");
  if (idefics3()) {
    const int64_t side = c.image_size / c.patch_size;
    if (c.scale_factor <= 0 || side % c.scale_factor != 0)
      throw std::invalid_argument("vision config: scale_factor " + std::to_string(c.scale_factor) +
                                  " must divide the patch grid's side " + std::to_string(side));
  } else if (siglip()) {
    const int64_t side = c.image_size / c.patch_size;
    const auto t = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(c.pool_tokens))));
    if (c.pool_tokens <= 0 || t * t != c.pool_tokens || side % t != 0)
      throw std::invalid_argument("vision config: mm_tokens_per_image " + std::to_string(c.pool_tokens) +
                                  " must be a square whose side divides the patch grid's " + std::to_string(side));
  }
}

int64_t VisionModel::tokens_per_image() const {
  if (idefics3()) return patches() / (cfg_.scale_factor * cfg_.scale_factor);
  return siglip() ? cfg_.pool_tokens : patches() + (cfg_.drop_cls ? 0 : 1);
}

std::pair<int64_t, int64_t> VisionModel::target_shape(const std::string& target) const {
  const int64_t H = cfg_.hidden, proj_in = H * static_cast<int64_t>(cfg_.feature_layers.size());
  if (idefics3() && target == "proj1") return {H * cfg_.scale_factor * cfg_.scale_factor, cfg_.text_hidden};
  if (siglip() && (target == "proj1" || target == "proj2")) return {-1, -1};
  if (target == "proj1") return {proj_in, cfg_.text_hidden};
  if (target == "proj2") return {cfg_.text_hidden, cfg_.text_hidden};
  const auto [l, rest] = split_layer(target);
  if (l < 0 || l >= cfg_.layers) return {-1, -1};
  if (rest == "q" || rest == "k" || rest == "v" || rest == "o") return {H, H};
  if (rest == "fc1") return {H, cfg_.intermediate};
  if (rest == "fc2") return {cfg_.intermediate, H};
  return {-1, -1};
}

int64_t VisionModel::expected_size(const std::string& name) const {
  const int64_t H = cfg_.hidden, p = cfg_.patch_size;
  if (name == "patch_embed") return H * cfg_.channels * p * p;
  if (name == "pos_embed") return seq_len() * H;
  if (siglip()) {
    if (name == "patch_bias" || name == "post_norm.weight" || name == "post_norm.bias") return H;
    if (idefics3() && name == "proj1.weight") return H * cfg_.scale_factor * cfg_.scale_factor * cfg_.text_hidden;
    if (!idefics3() && name == "mm_norm.weight") return H;
    if (!idefics3() && name == "mm_proj.weight") return cfg_.text_hidden * H;  // [text_hidden, hidden]: transposed
  } else {
    if (name == "class_embed") return H;
    if (name == "pre_norm.weight" || name == "pre_norm.bias") return H;
  }
  for (const char* proj : {"proj1", "proj2"}) {
    if (siglip()) break;
    const auto [in, out] = target_shape(proj);
    if (name == std::string(proj) + ".weight") return in * out;
    if (name == std::string(proj) + ".bias") return cfg_.projector_bias ? out : -1;
  }
  const auto [l, rest] = split_layer(name);
  if (l < 0 || l >= cfg_.layers) return -1;
  if (rest == "ln1.weight" || rest == "ln1.bias" || rest == "ln2.weight" || rest == "ln2.bias") return H;
  const size_t dot = rest.find('.');
  if (dot == std::string::npos) return -1;
  const auto [in, out] = target_shape("layers." + std::to_string(l) + "." + rest.substr(0, dot));
  if (in < 0) return -1;
  const std::string kind = rest.substr(dot + 1);
  return kind == "weight" ? in * out : kind == "bias" ? out : -1;
}

void VisionModel::set_weight(const std::string& name, const float* data, int64_t n) {
  const int64_t want = expected_size(name);
  if (want < 0) throw std::invalid_argument("vision: '" + name + "' is not a weight of this vision plan");
  if (want != n)
    throw std::invalid_argument("vision: weight '" + name + "' has " + std::to_string(n) + " elements, expected " +
                                std::to_string(want));
  weights_[name].assign(data, data + n);
}

void VisionModel::finalize() {
  std::vector<std::string> required =
      idefics3() ? std::vector<std::string>{"patch_embed", "patch_bias", "pos_embed", "post_norm.weight", "post_norm.bias",
                                            "proj1.weight"}
      : siglip() ? std::vector<std::string>{"patch_embed", "patch_bias", "pos_embed", "post_norm.weight", "post_norm.bias",
                                          "mm_norm.weight", "mm_proj.weight"}
               : std::vector<std::string>{"patch_embed", "class_embed", "pos_embed", "pre_norm.weight", "pre_norm.bias",
                                          "proj1.weight", "proj2.weight"};
  if (cfg_.projector_bias && !siglip()) {
    required.push_back("proj1.bias");
    required.push_back("proj2.bias");
  }
  for (int64_t l = 0; l < cfg_.layers; ++l)
    for (const char* s : {"ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "q.weight", "q.bias", "k.weight", "k.bias",
                          "v.weight", "v.bias", "o.weight", "o.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"})
      required.push_back("layers." + std::to_string(l) + "." + s);
  for (const std::string& r : required)
    if (!weights_.count(r)) throw std::invalid_argument("vision: required weight '" + r + "' was never set");
  finalized_ = true;
}

const float* VisionModel::w(const std::string& name) const {
  auto it = weights_.find(name);
  if (it == weights_.end()) throw std::logic_error("vision: missing weight " + name);
  return it->second.data();
}

const float* VisionModel::w_opt(const std::string& name) const {
  auto it = weights_.find(name);
  return it == weights_.end() ? nullptr : it->second.data();
}

void VisionModel::check_lora(const std::vector<VisionLoraPart>& parts) const {
  check_vision_lora_parts(parts, "vision plan", [this](const std::string& t) { return target_shape(t); });
}

void VisionModel::linear(const std::string& target, const std::string& weight, const float* x, int64_t T, int64_t in,
                         int64_t out, const std::vector<VisionLoraPart>& lora, float* y) const {
  cpu::gemm_xwt(x, T, in, w(weight + ".weight"), out, w_opt(weight + ".bias"), y, false);
  for (const VisionLoraPart& p : lora)
    if (p.target == target) cpu::lora_shrink_expand(x, 0, T, in, p.a.data(), p.b.data(), p.rank, out, p.scale, y, out, 0);
}

// One pre-norm encoder layer on h [images · seq, hidden], in place.
void VisionModel::encoder_layer(int64_t l, std::vector<float>& h, int64_t images,
                                const std::vector<VisionLoraPart>& lora) const {
  const int64_t H = cfg_.hidden, I = cfg_.intermediate, heads = cfg_.heads, hd = H / heads;
  const int64_t seq = seq_len(), T = images * seq;
  const std::string p = "layers." + std::to_string(l) + ".";
  std::vector<float> x(T * H), q(T * H), k(T * H), v(T * H), attn(T * H), o(T * H);
  cpu::layer_norm(h.data(), T, H, w(p + "ln1.weight"), w(p + "ln1.bias"), cfg_.norm_eps, x.data());
  linear(p + "q", p + "q", x.data(), T, H, H, lora, q.data());
  linear(p + "k", p + "k", x.data(), T, H, H, lora, k.data());
  linear(p + "v", p + "v", x.data(), T, H, H, lora, v.data());
  // Bidirectional attention within each image: every (image, head) writes only its own slice of attn.
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  cpu::parallel_for(images * heads, 1, [&](int64_t w0, int64_t w1) {
    std::vector<float> scores(static_cast<size_t>(seq));
    for (int64_t item = w0; item < w1; ++item) {
      const int64_t img = item / heads, hh = item % heads, base = img * seq;
      for (int64_t i = 0; i < seq; ++i) {
        const float* qi = q.data() + (base + i) * H + hh * hd;
        float mx = -INFINITY;
        for (int64_t j = 0; j < seq; ++j) {
          scores[j] = cpu::dot(qi, k.data() + (base + j) * H + hh * hd, hd) * scale;
          mx = std::max(mx, scores[j]);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < seq; ++j) sum += scores[j] = std::exp(scores[j] - mx);
        float* out = attn.data() + (base + i) * H + hh * hd;
        std::memset(out, 0, sizeof(float) * hd);
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < seq; ++j) {
          const float pj = scores[j] * inv;
          const float* vj = v.data() + (base + j) * H + hh * hd;
          for (int64_t d = 0; d < hd; ++d) out[d] += pj * vj[d];
        }
      }
    }
  });
  linear(p + "o", p + "o", attn.data(), T, H, H, lora, o.data());
  cpu::add_inplace(h.data(), o.data(), T * H);
  cpu::layer_norm(h.data(), T, H, w(p + "ln2.weight"), w(p + "ln2.bias"), cfg_.norm_eps, x.data());
  std::vector<float> mid(T * I);
  linear(p + "fc1", p + "fc1", x.data(), T, H, I, lora, mid.data());
  vision_activate(cfg_.act, mid.data(), T * I);
  linear(p + "fc2", p + "fc2", mid.data(), T, I, H, lora, o.data());
  cpu::add_inplace(h.data(), o.data(), T * H);
}

std::vector<float> VisionModel::embed(const float* pixels, int64_t images) const {
  const int64_t H = cfg_.hidden, P = cfg_.patch_size, S = cfg_.image_size, C = cfg_.channels;
  const int64_t grid = S / P, np = patches(), seq = seq_len(), K = C * P * P, first = seq - np;
  // Patch embedding: the stride-P convolution as a product of each patch's (channel, y, x) values with the kernel.
  std::vector<float> cols(images * np * K), patch(images * np * H), h(images * seq * H);
  for (int64_t img = 0; img < images; ++img)
    for (int64_t py = 0; py < grid; ++py)
      for (int64_t px = 0; px < grid; ++px) {
        float* row = cols.data() + ((img * np) + py * grid + px) * K;
        for (int64_t c = 0; c < C; ++c)
          for (int64_t ky = 0; ky < P; ++ky)
            std::memcpy(row + (c * P + ky) * P, pixels + ((img * C + c) * S + py * P + ky) * S + px * P, sizeof(float) * P);
      }
  cpu::gemm_xwt(cols.data(), images * np, K, w("patch_embed"), H, w_opt("patch_bias"), patch.data(), false);
  const float* pos = w("pos_embed");
  for (int64_t img = 0; img < images; ++img) {
    float* base = h.data() + img * seq * H;
    if (first > 0) std::memcpy(base, w("class_embed"), sizeof(float) * H);
    std::memcpy(base + first * H, patch.data() + img * np * H, sizeof(float) * np * H);
    cpu::add_inplace(base, pos, seq * H);
  }
  return h;
}

std::vector<float> VisionModel::gemma3_project(std::vector<float>& h, int64_t images) const {
  const int64_t H = cfg_.hidden, D = cfg_.text_hidden, np = patches(), side = cfg_.image_size / cfg_.patch_size;
  const int64_t t = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(cfg_.pool_tokens)))), k = side / t;
  const int64_t R = images * cfg_.pool_tokens;
  cpu::layer_norm(h.data(), images * np, H, w("post_norm.weight"), w("post_norm.bias"), cfg_.norm_eps, h.data());
  // AvgPool2d(k, stride k) over each feature's side × side grid of patches (row-major), as torch sums it in float:
  // the window's rows then columns, divided by k².
  std::vector<float> pooled(R * H);
  const float area = static_cast<float>(k * k);
  for (int64_t img = 0; img < images; ++img)
    for (int64_t ty = 0; ty < t; ++ty)
      for (int64_t tx = 0; tx < t; ++tx) {
        float* out = pooled.data() + (img * cfg_.pool_tokens + ty * t + tx) * H;
        for (int64_t d = 0; d < H; ++d) {
          float sum = 0.0f;
          for (int64_t ky = 0; ky < k; ++ky)
            for (int64_t kx = 0; kx < k; ++kx) sum += h[(img * np + (ty * k + ky) * side + tx * k + kx) * H + d];
          out[d] = sum / area;
        }
      }
  // mm_soft_emb_norm (Gemma's RMSNorm, its 1 + w in the weight), then the bias-free projection.
  cpu::rms_norm(pooled.data(), R, H, w("mm_norm.weight"), cfg_.norm_eps, pooled.data());
  std::vector<float> out(R * D);
  cpu::gemm_xwt(pooled.data(), R, H, w("mm_proj.weight"), D, nullptr, out.data(), false);
  return out;
}

std::vector<float> VisionModel::idefics3_connect(std::vector<float>& h, int64_t images,
                                                 const std::vector<VisionLoraPart>& lora) const {
  const int64_t H = cfg_.hidden, np = patches(), n = cfg_.image_size / cfg_.patch_size, s = cfg_.scale_factor;
  const int64_t m = n / s, per = tokens_per_image(), R = images * per, in = H * s * s;
  cpu::layer_norm(h.data(), images * np, H, w("post_norm.weight"), w("post_norm.bias"), cfg_.norm_eps, h.data());
  // Idefics3Connector.pixel_shuffle: output row (y, x) of the m × m grid is the s × s block of patches at
  // (y·s + dy, x·s + dx), concatenated dy-major then dx (each patch's H features in turn).
  std::vector<float> shuffled(R * in);
  for (int64_t img = 0; img < images; ++img)
    for (int64_t y = 0; y < m; ++y)
      for (int64_t x = 0; x < m; ++x) {
        float* row = shuffled.data() + (img * per + y * m + x) * in;
        for (int64_t dy = 0; dy < s; ++dy)
          for (int64_t dx = 0; dx < s; ++dx)
            std::memcpy(row + (dy * s + dx) * H, h.data() + (img * np + (y * s + dy) * n + x * s + dx) * H,
                        sizeof(float) * H);
      }
  std::vector<float> out(R * cfg_.text_hidden);
  linear("proj1", "proj1", shuffled.data(), R, in, cfg_.text_hidden, lora, out.data());  // modality_projection, no bias
  return out;
}

std::vector<float> VisionModel::encode(const float* pixels, int64_t images, const std::vector<VisionLoraPart>& lora) const {
  if (!finalized_) throw std::logic_error("vision: encode before finalize()");
  if (images <= 0) throw std::invalid_argument("vision: encode needs at least one image");
  check_lora(lora);
  const int64_t H = cfg_.hidden, seq = seq_len(), T = images * seq;
  std::vector<float> h = embed(pixels, images);
  if (siglip()) {  // every layer, then the last hidden state's rows (all patches) through the projector
    for (int64_t l = 0; l < cfg_.layers; ++l) encoder_layer(l, h, images, lora);
    return idefics3() ? idefics3_connect(h, images, lora) : gemma3_project(h, images);
  }
  cpu::layer_norm(h.data(), T, H, w("pre_norm.weight"), w("pre_norm.bias"), cfg_.norm_eps, h.data());
  // Hidden state i (0: the normed embeddings) is kept when a feature layer selects it.
  const int64_t F = static_cast<int64_t>(cfg_.feature_layers.size()), first = cfg_.drop_cls ? 1 : 0;
  const int64_t rows = seq - first, proj_in = H * F, R = images * rows;
  std::vector<float> features(R * proj_in);
  auto take = [&](int64_t index) {
    for (int64_t f = 0; f < F; ++f) {
      if (cfg_.feature_layers[f] != index) continue;
      for (int64_t img = 0; img < images; ++img)
        for (int64_t r = 0; r < rows; ++r)
          std::memcpy(features.data() + (img * rows + r) * proj_in + f * H, h.data() + (img * seq + first + r) * H,
                      sizeof(float) * H);
    }
  };
  take(0);
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    encoder_layer(l, h, images, lora);
    take(l + 1);
  }
  const int64_t D = cfg_.text_hidden;
  std::vector<float> mid(R * D), out(R * D);
  linear("proj1", "proj1", features.data(), R, proj_in, D, lora, mid.data());
  vision_activate(cfg_.projector_act, mid.data(), R * D);
  linear("proj2", "proj2", mid.data(), R, D, D, lora, out.data());
  return out;
}

}  // namespace weft
