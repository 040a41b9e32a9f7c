// Qwen2-VL's multimodal RoPE and Gemma 3's image spans on the CUDA backend, host halves checked on the CPU:
// - the position each frequency rotates by (kernels/src/cuda/kernels/mrope_body.h's rope_position, which the rope
//   kernels of rope.cu call per (token, frequency)) against cpu::rope_mrope itself, on unit vectors whose rotation
//   is (cos, sin) of that position's angle: sections of the real model's shape and with empty sections;
// - the step plan (kernels/src/cuda/model/step_plan.cc) packing each token's (t, h, w) positions to its reordered row
//   (text rows and batches without them: three equal positions; decode rows padded to a graph's shape at an offset
//   that depends on the shape only, so a replayed graph reads each step's positions), and the prefill sequences'
//   image spans in plan order (decode rows' spans left out; no field without any).
// Plain host code: built with g++ by test/unit/cuda-mrope-host.test.ts. Prints "N cases, 0 failed" when all hold.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cpu/ops.h"
#include "cuda/kernels/mrope_body.h"
#include "cuda/model/step_plan.h"

using namespace weft;

static int cases = 0, failed = 0;
static void check(bool ok, const std::string& what) {
  ++cases;
  if (!ok) ++failed;
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
}

// rope_position against cpu::rope_mrope: row t's dims (i, i + half) start as (1, 0), so after the CPU's rotation they
// hold (cos, sin) of the angle of the position the CPU chose for frequency i.
static void rotation_case(std::vector<int64_t> section, int tokens, bool with_pos3, std::mt19937& rng) {
  int64_t half = 0;
  for (int64_t s : section) half += s;
  const int64_t rot = 2 * half;
  std::vector<float> inv(half);
  for (int64_t i = 0; i < half; ++i) inv[i] = std::pow(10000.0f, -static_cast<float>(2 * i) / static_cast<float>(rot));
  std::uniform_int_distribution<int> pd(0, 4000);
  std::vector<int32_t> positions(tokens), pos3(3 * tokens);
  for (int t = 0; t < tokens; ++t) positions[t] = pd(rng);
  for (int32_t& p : pos3) p = pd(rng);  // three different coordinates: a wrong axis or row shows
  std::vector<float> x(static_cast<size_t>(tokens) * rot, 0.0f);
  for (int t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < half; ++i) x[t * rot + i] = 1.0f;
  cpu::rope_mrope(x.data(), tokens, 1, rot, rot, positions.data(), with_pos3 ? pos3.data() : nullptr, section.data(),
                  inv.data(), 1.0f);
  cuda::MRope m;
  if (with_pos3) {
    m.pos3 = pos3.data();
    m.stride = tokens;
    m.end0 = static_cast<int32_t>(section[0]);
    m.end1 = static_cast<int32_t>(section[0] + section[1]);
  }
  double worst = 0.0;
  for (int t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const float angle = cuda::rope_position(positions.data(), m, t, i) * inv[i];
      const double dc = std::fabs(std::cos(angle) - x[t * rot + i]), ds = std::fabs(std::sin(angle) - x[t * rot + half + i]);
      worst = std::max(worst, std::max(dc, ds));
    }
  }
  check(worst <= 1e-6, "rope_position == cpu::rope_mrope's choice, sections [" + std::to_string(section[0]) + ", " +
                           std::to_string(section[1]) + ", " + std::to_string(section[2]) + "], " + std::to_string(tokens) +
                           " tokens" + (with_pos3 ? "" : ", no 3-D positions (plain RoPE)") + " (worst " +
                           std::to_string(worst) + ")");
}

static ModelConfig config() {
  ModelConfig c;
  c.hidden = 64; c.layers = 1; c.head_dim = 16; c.heads_local = 4; c.kv_heads_local = 2; c.intermediate_local = 128;
  c.vocab = 512; c.vocab_chunk = 512; c.vocab_local = 512; c.rotary_dim = 16;
  c.inv_freq.assign(8, 1.0f);
  c.mrope_section = {2, 3, 3};
  c.num_blocks = 16; c.block_size = 4; c.adapter_slots = 2;
  return c;
}

// Sequences (slot, tokens, spans): prefill and decode rows mixed, adapters unsorted, so the plan reorders them. Token
// id = source row; its (t, h, w) = (1000 + row, 2000 + row, 3000 + row).
static Batch batch(bool decode_only, bool pos3) {
  struct S { int32_t slot; int n; std::vector<int32_t> spans; };
  const std::vector<S> seqs = decode_only
    ? std::vector<S>{{1, 1, {0, 4}}, {-1, 1, {}}, {0, 1, {1, 3}}}
    : std::vector<S>{{1, 1, {0, 4}}, {-1, 3, {1, 3, 4, 7}}, {-1, 1, {}}, {0, 2, {2, 6}}, {-1, 4, {}}};
  Batch b;
  int32_t t = 0;
  for (const S& s : seqs) {
    BatchSeq bs;
    bs.token_start = t;
    bs.num_tokens = s.n;
    bs.context_len = s.n + 5;
    bs.adapter_slot = s.slot;
    bs.block_table = {t % 16, (t + 1) % 16};
    bs.image_spans = s.spans;
    for (int i = 0; i < s.n; ++i, ++t) {
      b.tokens.push_back(t);
      b.positions.push_back(5 + i);
      b.slot_mapping.push_back(t);
    }
    b.logit_rows.push_back(t - 1);
    b.seqs.push_back(bs);
  }
  if (pos3) {
    const int32_t T = t;
    b.mrope_positions.resize(3 * T);
    for (int32_t ax = 0; ax < 3; ++ax)
      for (int32_t r = 0; r < T; ++r) b.mrope_positions[ax * T + r] = 1000 * (ax + 1) + r;
  }
  return b;
}

static void plan_cases() {
  for (bool decode_only : {false, true}) {
    for (bool pos3 : {true, false}) {
      const Batch b = batch(decode_only, pos3);
      const std::string name = std::string(decode_only ? "decode step" : "mixed prefill/decode step") +
                               (pos3 ? "" : " without mropePositions");
      std::vector<int32_t> w;
      const cuda::StepPlan p = cuda::plan_step(config(), b, nullptr, w);
      bool follows = p.mrope >= 0 && p.mrope + 3 * p.rows <= p.words;
      for (int64_t row = 0; follows && row < p.rows; ++row) {
        const int32_t src = w[p.tokens + row];
        for (int ax = 0; ax < 3; ++ax)
          follows = follows && w[p.mrope + ax * p.rows + row] == (pos3 ? 1000 * (ax + 1) + src : b.positions[src]);
      }
      check(follows, name + ": each row's (t, h, w) are its source token's");
      if (decode_only) {
        check(p.span_off == -1 && p.spans == -1 && p.num_spans == 0, name + ": decode rows' image spans not packed");
        const cuda::PaddedShape pad{6, 4};
        std::vector<int32_t> wp, wq;
        const cuda::StepPlan pp = cuda::plan_step(config(), b, &pad, wp);
        Batch other = batch(true, pos3);
        other.seqs.pop_back();  // fewer sequences, the same graph shape
        other.tokens.pop_back(); other.positions.pop_back(); other.slot_mapping.pop_back(); other.logit_rows.pop_back();
        if (pos3) {  // 2 rows now: rebuild the [3, T] layout
          other.mrope_positions.clear();
          for (int32_t ax = 0; ax < 3; ++ax)
            for (int32_t r = 0; r < 2; ++r) other.mrope_positions.push_back(1000 * (ax + 1) + r);
        }
        const cuda::StepPlan pq = cuda::plan_step(config(), other, &pad, wq);
        bool pads = pp.rows == 6 && pq.mrope == pp.mrope && pq.words == pp.words;
        for (int64_t row = 3; row < pp.rows; ++row)
          for (int ax = 0; ax < 3; ++ax) pads = pads && wp[pp.mrope + ax * pp.rows + row] == 0;
        for (int64_t row = 0; row < 3; ++row) {
          const int32_t src = wp[pp.tokens + row];
          for (int ax = 0; ax < 3; ++ax)
            pads = pads && wp[pp.mrope + ax * pp.rows + row] == (pos3 ? 1000 * (ax + 1) + src : b.positions[src]);
        }
        check(pads, name + " padded to 6 rows: the field's offset is the shape's, padding rows 0, rows stride 6");
      } else {
        // Plan order of the prefill sequences: base first (the 3-row one, then the 4-row one), then slot 0's.
        const std::vector<std::vector<int32_t>> want = {{1, 3, 4, 7}, {}, {2, 6}};
        bool spans = p.num_spans == 3 && p.span_off >= 0 && p.spans >= 0 && w[p.span_off] == 0;
        for (int s = 0; spans && s < p.prefill_seqs; ++s) {
          const int32_t k0 = w[p.span_off + s], k1 = w[p.span_off + s + 1];
          spans = spans && k1 - k0 == static_cast<int32_t>(want[s].size() / 2);
          for (int32_t k = k0; spans && k < k1; ++k)
            spans = spans && w[p.spans + 2 * k] == want[s][2 * (k - k0)] && w[p.spans + 2 * k + 1] == want[s][2 * (k - k0) + 1];
        }
        check(spans, name + ": the prefill sequences' image spans in plan order, decode rows' left out");
      }
    }
  }
  Batch plain = batch(false, false);
  for (BatchSeq& s : plain.seqs) s.image_spans.clear();
  ModelConfig text = config();
  text.mrope_section.clear();
  std::vector<int32_t> w;
  const cuda::StepPlan p = cuda::plan_step(text, plain, nullptr, w);
  check(p.mrope == -1 && p.span_off == -1 && p.spans == -1, "a text model's step: no M-RoPE or span fields");
}

int main() {
  std::mt19937 rng(7);
  rotation_case({16, 24, 24}, 9, true, rng);  // Qwen2-VL-7B's sections (head_dim 128)
  rotation_case({2, 3, 3}, 17, true, rng);
  rotation_case({0, 4, 4}, 5, true, rng);     // an empty temporal section
  rotation_case({4, 0, 4}, 5, true, rng);     // an empty height section
  rotation_case({3, 5, 0}, 5, true, rng);     // an empty width section
  rotation_case({16, 24, 24}, 9, false, rng);
  plan_cases();
  std::printf("%d cases, %d failed\n", cases, failed);
  return failed == 0 ? 0 : 1;
}
