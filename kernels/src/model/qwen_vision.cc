// QwenVisionModel (qwen_vision.h): the Qwen2-VL / Qwen2.5-VL vision tower and patch merger on the CPU, float32.
#include "model/qwen_vision.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace weft {

namespace {

// "blocks.<l>.<rest>" -> (l, rest); (-1, "") when the name is not a block's.
std::pair<int64_t, std::string> split_block(const std::string& name) {
  const std::string pre = "blocks.";
  if (name.compare(0, pre.size(), pre) != 0) return {-1, ""};
  const size_t dot = name.find('.', pre.size());
  if (dot == std::string::npos || dot == pre.size() || name.find_first_not_of("0123456789", pre.size()) != dot)
    return {-1, ""};
  return {std::stoll(name.substr(pre.size(), dot - pre.size())), name.substr(dot + 1)};
}

}  // namespace

QwenVisionModel::QwenVisionModel(QwenVisionConfig cfg) : cfg_(std::move(cfg)) {
  const QwenVisionConfig& c = cfg_;
  if (c.hidden <= 0 || c.heads <= 0 || c.hidden % c.heads != 0 || (c.hidden / c.heads) % 4 != 0 || c.intermediate <= 0 ||
      c.depth < 0 || c.patch_size <= 0 || c.merge_size <= 0 || c.temporal_patch_size <= 0 || c.channels <= 0 ||
      c.out_hidden <= 0)
    throw std::invalid_argument("qwen vision config: sizes must be positive, hidden a multiple of heads and the head "
                                "size a multiple of 4 (two rotary halves of height and width)");
  if (c.windowed && (c.window_size <= 0 || c.window_size % (c.patch_size * c.merge_size) != 0))
    throw std::invalid_argument("qwen vision config: window_size (" + std::to_string(c.window_size) +
                                ") must be a positive multiple of patch_size · spatial_merge_size");
  for (int64_t b : c.full_blocks)
    if (b < 0 || b >= c.depth) throw std::invalid_argument("qwen vision config: fullatt_block_indexes outside the blocks");
  if (!c.qwen3 && (c.num_position_embeddings != 0 || !c.deepstack.empty()))
    throw std::invalid_argument("qwen vision config: position embeddings and deepstack are Qwen3-VL's (qwen3)");
  if (c.qwen3) {
    const int64_t side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(c.num_position_embeddings))));
    if (c.windowed || c.num_position_embeddings <= 0 || side * side != c.num_position_embeddings)
      throw std::invalid_argument("qwen vision config: Qwen3-VL needs num_position_embeddings a square number (" +
                                  std::to_string(c.num_position_embeddings) + ") and no windows");
    for (size_t i = 0; i < c.deepstack.size(); ++i)
      if (c.deepstack[i] < 0 || c.deepstack[i] >= c.depth ||
          std::find(c.deepstack.begin(), c.deepstack.begin() + static_cast<std::ptrdiff_t>(i), c.deepstack[i]) !=
              c.deepstack.begin() + static_cast<std::ptrdiff_t>(i))
        throw std::invalid_argument("qwen vision config: deepstack_visual_indexes must be distinct blocks of the " +
                                    std::to_string(c.depth));
  }
}

namespace {

// "deepstack.<i>.<rest>" -> (i, rest); (-1, "") otherwise.
std::pair<int64_t, std::string> split_deepstack(const std::string& name) {
  const std::string pre = "deepstack.";
  if (name.compare(0, pre.size(), pre) != 0) return {-1, ""};
  const size_t dot = name.find('.', pre.size());
  if (dot == std::string::npos || dot == pre.size() || name.find_first_not_of("0123456789", pre.size()) != dot)
    return {-1, ""};
  return {std::stoll(name.substr(pre.size(), dot - pre.size())), name.substr(dot + 1)};
}

}  // namespace

std::pair<int64_t, int64_t> QwenVisionModel::target_shape(const std::string& target) const {
  const int64_t H = cfg_.hidden, I = cfg_.intermediate, M = H * cfg_.merge_size * cfg_.merge_size;
  if (target == "merger.fc1") return {M, M};
  if (target == "merger.fc2") return {M, cfg_.out_hidden};
  const auto [d, drest] = split_deepstack(target);
  if (d >= 0) {
    if (d >= static_cast<int64_t>(cfg_.deepstack.size())) return {-1, -1};
    if (drest == "fc1") return {M, M};
    return drest == "fc2" ? std::pair<int64_t, int64_t>{M, cfg_.out_hidden} : std::pair<int64_t, int64_t>{-1, -1};
  }
  const auto [l, rest] = split_block(target);
  if (l < 0 || l >= cfg_.depth) return {-1, -1};
  if (rest == "qkv") return {H, 3 * H};
  if (rest == "proj") return {H, H};
  if (!cfg_.windowed && rest == "fc1") return {H, I};
  if (!cfg_.windowed && rest == "fc2") return {I, H};
  if (cfg_.windowed && (rest == "gate" || rest == "up")) return {H, I};
  if (cfg_.windowed && rest == "down") return {I, H};
  return {-1, -1};
}

int64_t QwenVisionModel::expected_size(const std::string& name) const {
  const int64_t H = cfg_.hidden, p = cfg_.patch_size;
  if (name == "patch_embed") return H * cfg_.channels * cfg_.temporal_patch_size * p * p;
  if (name == "merger.ln.weight") return H;
  if (name == "merger.ln.bias") return cfg_.windowed ? -1 : H;  // Qwen2.5-VL's ln_q is an RMSNorm
  if (name == "patch_embed.bias") return cfg_.qwen3 ? H : -1;
  if (name == "pos_embed") return cfg_.qwen3 ? cfg_.num_position_embeddings * H : -1;
  const auto [d, drest] = split_deepstack(name);
  if (d >= 0 && d < static_cast<int64_t>(cfg_.deepstack.size()) && (drest == "ln.weight" || drest == "ln.bias"))
    return H * cfg_.merge_size * cfg_.merge_size;
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos) return -1;
  const std::string module = name.substr(0, dot), kind = name.substr(dot + 1);
  const auto [l, rest] = split_block(module);
  if (l >= 0 && l < cfg_.depth && (rest == "norm1" || rest == "norm2")) {
    if (kind == "weight") return H;
    return kind == "bias" && !cfg_.windowed ? H : -1;
  }
  const auto [in, out] = target_shape(module);
  if (in < 0) return -1;
  return kind == "weight" ? in * out : kind == "bias" ? out : -1;
}

void QwenVisionModel::set_weight(const std::string& name, const float* data, int64_t n) {
  const int64_t want = expected_size(name);
  if (want < 0) throw std::invalid_argument("qwen vision: '" + name + "' is not a weight of this vision plan");
  if (want != n)
    throw std::invalid_argument("qwen vision: weight '" + name + "' has " + std::to_string(n) + " elements, expected " +
                                std::to_string(want));
  weights_[name].assign(data, data + n);
}

void QwenVisionModel::finalize() {
  std::vector<std::string> required = {"patch_embed", "merger.ln.weight", "merger.fc1.weight", "merger.fc1.bias",
                                       "merger.fc2.weight", "merger.fc2.bias"};
  if (!cfg_.windowed) required.push_back("merger.ln.bias");
  if (cfg_.qwen3) {
    required.push_back("patch_embed.bias");
    required.push_back("pos_embed");
  }
  for (size_t d = 0; d < cfg_.deepstack.size(); ++d)
    for (const char* s : {"ln.weight", "ln.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"})
      required.push_back("deepstack." + std::to_string(d) + "." + s);
  const std::vector<std::string> mlp = cfg_.windowed ? std::vector<std::string>{"gate", "up", "down"}
                                                     : std::vector<std::string>{"fc1", "fc2"};
  for (int64_t l = 0; l < cfg_.depth; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    for (const char* s : {"norm1.weight", "norm2.weight", "qkv.weight", "qkv.bias", "proj.weight", "proj.bias"})
      required.push_back(b + s);
    if (!cfg_.windowed) {
      required.push_back(b + "norm1.bias");
      required.push_back(b + "norm2.bias");
    }
    for (const std::string& m : mlp) {
      required.push_back(b + m + ".weight");
      required.push_back(b + m + ".bias");
    }
  }
  for (const std::string& r : required)
    if (!weights_.count(r)) throw std::invalid_argument("qwen vision: required weight '" + r + "' was never set");
  finalized_ = true;
}

const float* QwenVisionModel::w(const std::string& name) const {
  auto it = weights_.find(name);
  if (it == weights_.end()) throw std::logic_error("qwen vision: missing weight " + name);
  return it->second.data();
}

const float* QwenVisionModel::w_opt(const std::string& name) const {
  auto it = weights_.find(name);
  return it == weights_.end() ? nullptr : it->second.data();
}

void QwenVisionModel::check_lora(const std::vector<VisionLoraPart>& parts) const {
  check_vision_lora_parts(parts, "vision tower", [this](const std::string& t) { return target_shape(t); });
}

int64_t QwenVisionModel::tokens_for(int64_t height, int64_t width) const {
  const int64_t f = cfg_.patch_size * cfg_.merge_size;
  if (height <= 0 || width <= 0 || height % f != 0 || width % f != 0)
    throw std::invalid_argument("qwen vision: a " + std::to_string(height) + "×" + std::to_string(width) +
                                " image does not tile into patch_size · spatial_merge_size = " + std::to_string(f) +
                                " pixel squares (resize it as the image processor's smart_resize does)");
  return (height / f) * (width / f);
}

void QwenVisionModel::linear(const std::string& name, const float* x, int64_t T, const std::vector<VisionLoraPart>& lora,
                             float* y) const {
  const auto [in, out] = target_shape(name);
  cpu::gemm_xwt(x, T, in, w(name + ".weight"), out, w_opt(name + ".bias"), y, false);
  for (const VisionLoraPart& p : lora)
    if (p.target == name) cpu::lora_shrink_expand(x, 0, T, in, p.a.data(), p.b.data(), p.rank, out, p.scale, y, out, 0);
}

void QwenVisionModel::norm(const std::string& name, const float* x, int64_t T, float* y) const {
  if (cfg_.windowed) cpu::rms_norm(x, T, cfg_.hidden, w(name + ".weight"), cfg_.norm_eps, y);
  else cpu::layer_norm(x, T, cfg_.hidden, w(name + ".weight"), w(name + ".bias"), cfg_.norm_eps, y);
}

void QwenVisionModel::block(int64_t l, std::vector<float>& h, const std::vector<std::vector<int32_t>>& segments,
                            const std::vector<float>& cos, const std::vector<float>& sin,
                            const std::vector<VisionLoraPart>& lora) const {
  const int64_t H = cfg_.hidden, I = cfg_.intermediate, heads = cfg_.heads, hd = H / heads, half = hd / 2;
  const int64_t N = static_cast<int64_t>(h.size()) / H;
  const std::string p = "blocks." + std::to_string(l) + ".";
  std::vector<float> x(N * H), qkv(N * 3 * H), attn(N * H), o(N * H);
  norm(p + "norm1", h.data(), N, x.data());
  linear(p + "qkv", x.data(), N, lora, qkv.data());
  // Rotary embedding of q and k (each row's [q | k | v], head-major inside each), in place: rotate_half over the
  // whole head with the patch's (row, column) angles.
  for (int64_t t = 0; t < N; ++t)
    for (int64_t part = 0; part < 2; ++part)
      for (int64_t hh = 0; hh < heads; ++hh) {
        float* v = qkv.data() + t * 3 * H + part * H + hh * hd;
        for (int64_t i = 0; i < half; ++i) {
          const float c = cos[t * half + i], s = sin[t * half + i], a = v[i], b = v[i + half];
          v[i] = a * c - b * s;
          v[i + half] = b * c + a * s;
        }
      }
  // Bidirectional attention within each segment; every (segment, head) writes only its own rows of attn.
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t items = static_cast<int64_t>(segments.size()) * heads;
  cpu::parallel_for(items, 1, [&](int64_t w0, int64_t w1) {
    std::vector<float> scores;
    for (int64_t item = w0; item < w1; ++item) {
      const std::vector<int32_t>& seg = segments[static_cast<size_t>(item / heads)];
      const int64_t hh = item % heads, S = static_cast<int64_t>(seg.size());
      scores.resize(static_cast<size_t>(S));
      for (int64_t i = 0; i < S; ++i) {
        const float* qi = qkv.data() + seg[i] * 3 * H + hh * hd;
        float mx = -INFINITY;
        for (int64_t j = 0; j < S; ++j) {
          scores[j] = cpu::dot(qi, qkv.data() + seg[j] * 3 * H + H + hh * hd, hd) * scale;
          mx = std::max(mx, scores[j]);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < S; ++j) sum += scores[j] = std::exp(scores[j] - mx);
        float* out = attn.data() + seg[i] * H + hh * hd;
        std::memset(out, 0, sizeof(float) * hd);
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < S; ++j) {
          const float pj = scores[j] * inv;
          const float* vj = qkv.data() + seg[j] * 3 * H + 2 * H + hh * hd;
          for (int64_t d = 0; d < hd; ++d) out[d] += pj * vj[d];
        }
      }
    }
  });
  linear(p + "proj", attn.data(), N, lora, o.data());
  cpu::add_inplace(h.data(), o.data(), N * H);
  norm(p + "norm2", h.data(), N, x.data());
  std::vector<float> mid(N * I);
  if (cfg_.windowed) {  // down(act(gate(x)) · up(x))
    std::vector<float> up(N * I);
    linear(p + "gate", x.data(), N, lora, mid.data());
    linear(p + "up", x.data(), N, lora, up.data());
    vision_activate(cfg_.act, mid.data(), N * I);
    for (int64_t i = 0; i < N * I; ++i) mid[i] *= up[i];
    linear(p + "down", mid.data(), N, lora, o.data());
  } else {
    linear(p + "fc1", x.data(), N, lora, mid.data());
    vision_activate(cfg_.act, mid.data(), N * I);
    linear(p + "fc2", mid.data(), N, lora, o.data());
  }
  cpu::add_inplace(h.data(), o.data(), N * H);
}

std::vector<float> QwenVisionModel::encode(const float* pixels, int64_t height, int64_t width,
                                           const std::vector<VisionLoraPart>& lora) const {
  if (!finalized_) throw std::logic_error("qwen vision: encode before finalize()");
  check_lora(lora);
  const int64_t tokens = tokens_for(height, width);
  const int64_t P = cfg_.patch_size, M = cfg_.merge_size, Tp = cfg_.temporal_patch_size, C = cfg_.channels;
  const int64_t H = cfg_.hidden, hd = H / cfg_.heads, half = hd / 2, quarter = hd / 4;
  const int64_t gh = height / P, gw = width / P, mw = gw / M, N = gh * gw, K = C * Tp * P * P;
  // The processor's flattened patches (patchify): groups of M×M neighbouring patches in row-major order of the
  // merged grid, each group's patches row-major; a patch's values (channel, temporal copy, y, x). Each patch's
  // (row, column) in the patch grid is its rotary position.
  std::vector<float> cols(N * K);
  std::vector<int32_t> row_of(N), col_of(N);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t group = n / (M * M), k = n % (M * M);
    const int64_t py = (group / mw) * M + k / M, px = (group % mw) * M + k % M;
    row_of[n] = static_cast<int32_t>(py);
    col_of[n] = static_cast<int32_t>(px);
    float* row = cols.data() + n * K;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < Tp; ++t)
        for (int64_t ky = 0; ky < P; ++ky)
          std::memcpy(row + ((c * Tp + t) * P + ky) * P, pixels + (c * height + py * P + ky) * width + px * P,
                      sizeof(float) * P);
  }
  std::vector<float> h(N * H);
  cpu::gemm_xwt(cols.data(), N, K, w("patch_embed"), H, w_opt("patch_embed.bias"), h.data(), false);  // the Conv3d
  if (cfg_.qwen3) add_position_embeddings(h, row_of, col_of, gh, gw);
  // VisionRotaryEmbedding(head_dim / 2): quarter frequencies; a head's first quarter angles are row · inv_freq, the
  // second column · inv_freq (then repeated for the other half, as rotate_half pairs i with i + half).
  std::vector<float> inv(static_cast<size_t>(quarter));
  for (int64_t j = 0; j < quarter; ++j)
    inv[j] = 1.0f / std::pow(cfg_.rope_theta, static_cast<float>(2 * j) / static_cast<float>(half));
  std::vector<float> cos(N * half), sin(N * half);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(i < quarter ? row_of[n] : col_of[n]) * inv[i % quarter];
      cos[n * half + i] = std::cos(angle);
      sin[n * half + i] = std::sin(angle);
    }
  // Attention segments. Qwen2-VL: the image. Qwen2.5-VL: windows of window_size pixels (vm × vm merged tokens,
  // row-major over the windows, empty ones dropped) whose patches transformers gathers in that order
  // (get_vision_window_index); full-attention blocks take the image in the same order.
  std::vector<std::vector<int32_t>> whole(1), windows;
  if (!cfg_.windowed) {
    for (int64_t n = 0; n < N; ++n) whole[0].push_back(static_cast<int32_t>(n));
  } else {
    const int64_t vm = cfg_.window_size / M / P, lh = gh / M, lw = gw / M;
    const int64_t nwh = (lh + vm - lh % vm) / vm, nww = (lw + vm - lw % vm) / vm;
    for (int64_t wr = 0; wr < nwh; ++wr)
      for (int64_t wc = 0; wc < nww; ++wc) {
        std::vector<int32_t> win;
        for (int64_t r = wr * vm; r < std::min(lh, (wr + 1) * vm); ++r)
          for (int64_t c = wc * vm; c < std::min(lw, (wc + 1) * vm); ++c)
            for (int64_t k = 0; k < M * M; ++k) win.push_back(static_cast<int32_t>((r * lw + c) * M * M + k));
        if (win.empty()) continue;
        whole[0].insert(whole[0].end(), win.begin(), win.end());
        windows.push_back(std::move(win));
      }
  }
  // The output: the merger's features, then (Qwen3-VL) each deepstack block's through its own merger.
  const int64_t D = cfg_.out_hidden, sets = 1 + static_cast<int64_t>(cfg_.deepstack.size());
  std::vector<float> out(sets * tokens * D);
  for (int64_t l = 0; l < cfg_.depth; ++l) {
    const bool full = !cfg_.windowed ||
                      std::find(cfg_.full_blocks.begin(), cfg_.full_blocks.end(), l) != cfg_.full_blocks.end();
    block(l, h, full ? whole : windows, cos, sin, lora);
    const auto ds = std::find(cfg_.deepstack.begin(), cfg_.deepstack.end(), l);
    if (ds != cfg_.deepstack.end()) {
      const int64_t i = ds - cfg_.deepstack.begin();
      merge("deepstack." + std::to_string(i), true, h, lora, out.data() + (1 + i) * tokens * D);
    }
  }
  merge("merger", false, h, lora, out.data());
  return out;
}

// ln (ln_q / norm) on every patch — or, postshuffle, on each group's M² patches side by side — then fc1 → GELU → fc2.
void QwenVisionModel::merge(const std::string& name, bool postshuffle, const std::vector<float>& h,
                            const std::vector<VisionLoraPart>& lora, float* out) const {
  const int64_t H = cfg_.hidden, M = cfg_.merge_size, Mh = H * M * M, N = static_cast<int64_t>(h.size()) / H;
  const int64_t tokens = N / (M * M);
  std::vector<float> x(N * H), mid(tokens * Mh);
  if (postshuffle) cpu::layer_norm(h.data(), tokens, Mh, w(name + ".ln.weight"), w(name + ".ln.bias"), cfg_.norm_eps, x.data());
  else norm(name + ".ln", h.data(), N, x.data());
  linear(name + ".fc1", x.data(), tokens, lora, mid.data());
  vision_activate(VisionAct::kGeluErf, mid.data(), tokens * Mh);
  linear(name + ".fc2", mid.data(), tokens, lora, out);
}

// transformers' get_vision_interpolation_indices_and_weights (bilinear, align_corners): a patch at (row, col) of a
// gh × gw grid reads the side × side table at src = index · (side − 1) / max(size − 1, 1) along each axis, the 2 × 2
// neighbours (clamped) weighted by the hat kernel, in float32 as torch computes them.
void QwenVisionModel::add_position_embeddings(std::vector<float>& h, const std::vector<int32_t>& row_of,
                                              const std::vector<int32_t>& col_of, int64_t gh, int64_t gw) const {
  const int64_t H = cfg_.hidden, N = static_cast<int64_t>(row_of.size());
  const int64_t side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(cfg_.num_position_embeddings))));
  const float* table = w("pos_embed");
  auto taps = [side](int64_t index, int64_t size, int64_t t[2], float wt[2]) {
    const float src = static_cast<float>(index) * static_cast<float>(side - 1) / static_cast<float>(std::max<int64_t>(size - 1, 1));
    const float f = std::floor(src);
    for (int k = 0; k < 2; ++k) {
      t[k] = std::min(side - 1, std::max<int64_t>(0, static_cast<int64_t>(f) + k));
      wt[k] = std::max(0.0f, 1.0f - std::fabs(src - f - static_cast<float>(k)));
    }
  };
  std::vector<float> pe(static_cast<size_t>(H));
  for (int64_t n = 0; n < N; ++n) {
    int64_t rt[2], ct[2];
    float rw[2], cw[2];
    taps(row_of[n], gh, rt, rw);
    taps(col_of[n], gw, ct, cw);
    std::fill(pe.begin(), pe.end(), 0.0f);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) {
        const float wij = rw[i] * cw[j];
        const float* e = table + (rt[i] * side + ct[j]) * H;
        for (int64_t d = 0; d < H; ++d) pe[d] += e[d] * wij;
      }
    cpu::add_inplace(h.data() + n * H, pe.data(), H);
  }
}

}  // namespace weft
