// The host half of a CUDA step (kernels/src/cuda/model/step_plan.cc) on the CPU: the per-row longrope marks a step
// packs for the RoPE kernels (field rope_long) follow each token to its reordered row, padding rows stay short, and a
// model without long factors packs no such field. Plain host code: built with g++ by
// test/unit/cuda-step-plan-host.test.ts. Prints "N cases, 0 failed" when every check holds.
#include <cstdio>
#include <string>
#include <vector>

#include "cuda/model/step_plan.h"

using namespace weft;

static int cases = 0, failed = 0;
static void check(bool ok, const std::string& what) {
  ++cases;
  if (!ok) {
    ++failed;
    std::printf("FAIL %s\n", what.c_str());
  } else {
    std::printf("ok   %s\n", what.c_str());
  }
}

static ModelConfig config(bool longrope) {
  ModelConfig c;
  c.hidden = 64; c.layers = 1; c.head_dim = 16; c.heads_local = 4; c.kv_heads_local = 2; c.intermediate_local = 128;
  c.vocab = 512; c.vocab_chunk = 512; c.vocab_local = 512; c.rotary_dim = 16;
  c.inv_freq.assign(8, 1.0f);
  if (longrope) c.inv_freq_long.assign(8, 0.5f);
  c.num_blocks = 16; c.block_size = 4; c.adapter_slots = 2;
  return c;
}

// Sequences (slot, tokens, long marks): prefill and decode rows mixed, adapters unsorted, so the plan reorders them.
static Batch batch(bool decode_only) {
  struct S { int32_t slot; int n; std::vector<uint8_t> marks; };
  const std::vector<S> seqs = decode_only
    ? std::vector<S>{{1, 1, {1}}, {-1, 1, {0}}, {0, 1, {1}}}
    : std::vector<S>{{1, 1, {1}}, {-1, 3, {1, 1, 1}}, {-1, 1, {0}}, {0, 2, {0, 1}}};
  Batch b;
  int32_t t = 0;
  for (const S& s : seqs) {
    BatchSeq bs;
    bs.token_start = t;
    bs.num_tokens = s.n;
    bs.context_len = s.n + 5;
    bs.adapter_slot = s.slot;
    bs.block_table = {t % 16, (t + 1) % 16};
    for (int i = 0; i < s.n; ++i, ++t) {
      b.tokens.push_back(t);  // the token id names its source row
      b.positions.push_back(5 + i);
      b.slot_mapping.push_back(t);
      b.rope_long.push_back(s.marks[i]);
    }
    b.logit_rows.push_back(t - 1);
    b.seqs.push_back(bs);
  }
  return b;
}

int main() {
  for (bool decode_only : {false, true}) {
    const Batch b = batch(decode_only);
    const std::string name = decode_only ? "decode step" : "mixed prefill/decode step";
    std::vector<int32_t> w;
    const cuda::StepPlan p = cuda::plan_step(config(true), b, nullptr, w);
    check(p.rope_long >= 0 && p.rope_long + p.rows <= p.words, name + ": a rope_long field inside the packed buffer");
    bool follows = true;
    for (int64_t row = 0; row < p.rows; ++row) {
      const int32_t src = w[p.tokens + row];
      follows = follows && w[p.rope_long + row] == b.rope_long[src];
    }
    check(follows, name + ": each row's mark is its source token's");
    if (decode_only) {  // padded to a graph's shape: the extra rows are short
      const cuda::PaddedShape pad{6, 4};
      std::vector<int32_t> wp;
      const cuda::StepPlan pp = cuda::plan_step(config(true), b, &pad, wp);
      bool pads_short = pp.rows == 6;
      for (int64_t row = 3; row < pp.rows; ++row) pads_short = pads_short && wp[pp.rope_long + row] == 0;
      check(pads_short, name + " padded to 6 rows: padding rows are rotated short");
    }
    std::vector<int32_t> w2;
    Batch plain = b;
    plain.rope_long.clear();
    const cuda::StepPlan q = cuda::plan_step(config(false), plain, nullptr, w2);
    check(q.rope_long == -1 && q.words < p.words, name + ": no long factors, no field");
  }
  std::printf("%d cases, %d failed\n", cases, failed);
  return failed == 0 ? 0 : 1;
}
