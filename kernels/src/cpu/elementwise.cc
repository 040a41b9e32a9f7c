// Activations, residual add, embedding gather, rotary embedding.
#include <cmath>
#include <cstring>

#include "cpu/ops.h"

namespace weft::cpu {

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
}

void gelu_tanh(float* x, int64_t n) {
  constexpr float kC = 0.7978845608028654f;  // sqrt(2/pi)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(kC * (v + 0.044715f * v * v * v)));
  }
}

void gelu_tanh_mul(const float* gate, const float* up, float* out, int64_t n) {
  constexpr float kC = 0.7978845608028654f;  // sqrt(2/pi)
  for (int64_t i = 0; i < n; ++i) {
    const float v = gate[i];
    out[i] = (0.5f * v * (1.0f + std::tanh(kC * (v + 0.044715f * v * v * v)))) * up[i];
  }
}

void gelu_erf(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.7071067811865476f));
}

void relu_squared(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float r = x[i] > 0.0f ? x[i] : 0.0f;
    x[i] = r * r;
  }
}

void xielu(float* x, int64_t n, float alpha_p, float alpha_n, float beta, float eps) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    // torch.where(x > 0, alpha_p * x * x + beta * x, (expm1(min(x, eps)) - x) * alpha_n + beta * x), op by op in fp32
    x[i] = v > 0.0f ? alpha_p * v * v + beta * v : (std::expm1(v < eps ? v : eps) - v) * alpha_n + beta * v;
  }
}

void clamped_swiglu(const float* gate, const float* up, float* out, int64_t n, float alpha, float limit) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i] > limit ? limit : gate[i];  // clamp(max=limit): no lower bound on the gate
    const float u = up[i] > limit ? limit : (up[i] < -limit ? -limit : up[i]);
    out[i] = (g / (1.0f + std::exp(-alpha * g))) * (u + 1.0f);
  }
}

void add_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void embedding_gather(const float* table, int64_t rows, int64_t dim, const int32_t* ids, int64_t n, float* out) {
  for (int64_t t = 0; t < n; ++t) {
    const int64_t id = ids[t];
    if (id < 0 || id >= rows) {
      std::memset(out + t * dim, 0, sizeof(float) * dim);  // caller validated ids; never read out of bounds
      continue;
    }
    std::memcpy(out + t * dim, table + id * dim, sizeof(float) * dim);
  }
}

void rope_rotate_half(float* x, int64_t tokens, int64_t heads, int64_t head_dim, int64_t rotary_dim,
                      const int32_t* positions, const float* inv_freq, float attention_factor,
                      const uint8_t* use_long, const float* inv_freq_long, bool interleaved) {
  const int64_t half = rotary_dim / 2;
  for (int64_t t = 0; t < tokens; ++t) {
    const float pos = static_cast<float>(positions[t]);
    const float* freq = use_long && use_long[t] ? inv_freq_long : inv_freq;
    for (int64_t i = 0; i < half; ++i) {
      // transformers computes freqs = pos * inv_freq in fp32, then cos/sin of it.
      const float angle = pos * freq[i];
      const float c = std::cos(angle) * attention_factor;
      const float s = std::sin(angle) * attention_factor;
      const int64_t ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + (t * heads + h) * head_dim;
        const float a = v[ia];
        const float b = v[ib];
        v[ia] = a * c - b * s;
        v[ib] = b * c + a * s;
      }
    }
  }
}

void rope_mrope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, int64_t rotary_dim, const int32_t* positions,
                const int32_t* pos3, const int64_t* section, const float* inv_freq, float attention_factor,
                bool interleaved) {
  const int64_t half = rotary_dim / 2;
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t axis = 0, end = section[0];
    for (int64_t i = 0; i < half; ++i) {
      if (interleaved) axis = (i % 3 == 1 && i < 3 * section[1]) ? 1 : (i % 3 == 2 && i < 3 * section[2]) ? 2 : 0;
      else while (i >= end && axis < 2) end += section[++axis];
      const float pos = static_cast<float>(pos3 ? pos3[axis * tokens + t] : positions[t]);
      const float angle = pos * inv_freq[i];
      const float c = std::cos(angle) * attention_factor;
      const float s = std::sin(angle) * attention_factor;
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + (t * heads + h) * head_dim;
        const float a = v[i];
        const float b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
      }
    }
  }
}

}  // namespace weft::cpu
