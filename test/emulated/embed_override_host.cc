// The CUDA backend's embedding-row overrides (image features over their placeholder rows) on the CPU: the host packing
// and the kernel's per-element body (kernels/src/cuda/kernels/embed_override_body.h, what embed_override.cu runs),
// with the real step plan (kernels/src/cuda/model/step_plan.cc) reordering the rows. Each override must land on the
// plan row that holds its batch row's token, every other row must keep its value, whatever the launch shape (the
// kernel is a grid-stride loop, emulated here for several grids), and the feature rows must start 16-byte aligned.
// Plain host code: built with g++ by test/unit/cuda-embed-override-host.test.ts. Prints "N cases, 0 failed".
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/kernels/embed_override_body.h"
#include "cuda/model/step_plan.h"

using namespace weft;
namespace er = weft::cuda::embed_rows;

static int cases = 0, failed = 0;
static void check(bool ok, const std::string& what) {
  ++cases;
  if (!ok) ++failed;
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
}

static constexpr int64_t kHidden = 24;  // not a multiple of the emulated block sizes: elements straddle rows

static ModelConfig config() {
  ModelConfig c;
  c.hidden = kHidden; c.layers = 1; c.head_dim = 8; c.heads_local = 3; c.kv_heads_local = 1; c.intermediate_local = 32;
  c.vocab = 512; c.vocab_chunk = 512; c.vocab_local = 512; c.rotary_dim = 8;
  c.inv_freq.assign(4, 1.0f);
  c.num_blocks = 64; c.block_size = 4; c.adapter_slots = 3;
  return c;
}

struct Seq {
  int32_t slot;
  int n;
};

// Sequences in an order the plan changes (a decode row first, adapters unsorted, a one-token prompt chunk, which the
// plan puts with the decode rows); tokens name their batch row.
static Batch batch(const std::vector<Seq>& seqs) {
  Batch b;
  int32_t t = 0;
  for (const Seq& s : seqs) {
    BatchSeq bs;
    bs.token_start = t;
    bs.num_tokens = s.n;
    bs.context_len = s.n + 3;
    bs.adapter_slot = s.slot;
    bs.block_table = {t % 64, (t + 1) % 64, (t + 2) % 64};
    for (int i = 0; i < s.n; ++i, ++t) {
      b.tokens.push_back(t);
      b.positions.push_back(3 + i);
      b.slot_mapping.push_back(t);
    }
    b.logit_rows.push_back(t - 1);
    b.seqs.push_back(bs);
  }
  return b;
}

static float feature(int64_t i, int64_t c) { return 0.001f * static_cast<float>(i * 1000 + c) + 1.0f / 3.0f; }
static float token_value(int32_t token, int64_t c) { return -1.0f - static_cast<float>(token * 100 + c); }

// Truncation to bf16 with round-to-nearest-even, the kernel's bf16 rounding (__float2bfloat16_rn) for finite values.
static float round_bf16(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&v, &u, 4);
  return v;
}

template <class Round>
static void run(const std::string& name, const std::vector<Seq>& seqs, const std::vector<int32_t>& rows, Round round) {
  Batch b = batch(seqs);
  b.embed_rows = rows;
  const int64_t n = static_cast<int64_t>(rows.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < kHidden; ++c) b.embed_values.push_back(feature(i, c));
  std::vector<int32_t> w;
  const cuda::StepPlan p = cuda::plan_step(config(), b, nullptr, w);
  std::vector<unsigned char> packed(static_cast<size_t>(er::packed_bytes(n, kHidden)));
  er::pack(b.embed_rows.data(), b.embed_values.data(), n, kHidden, p.row_of.data(), packed.data());
  bool moved = false;
  for (size_t r = 0; r < p.row_of.size(); ++r) moved = moved || p.row_of[r] != static_cast<int32_t>(r);
  check(moved, name + ": the plan reorders the rows (else row_of would go unchecked)");
  check(er::rows_bytes(n) % 16 == 0 && er::rows_bytes(n) >= 4 * n, name + ": feature rows start 16-byte aligned");

  for (const auto& [blocks, threads] : std::vector<std::pair<int, int>>{{1, 1}, {1, 256}, {3, 7}, {65536, 256}}) {
    // h as the embedding lookup left it: each plan row holds its token's value.
    std::vector<float> h(static_cast<size_t>(p.rows * kHidden));
    for (int64_t row = 0; row < p.rows; ++row)
      for (int64_t c = 0; c < kHidden; ++c) h[row * kHidden + c] = token_value(w[p.tokens + row], c);
    const int64_t total = n * kHidden, stride = static_cast<int64_t>(blocks) * threads;
    for (int64_t blk = 0; blk < blocks; ++blk)
      for (int64_t t = 0; t < threads; ++t)
        for (int64_t e = blk * threads + t; e < total; e += stride) er::element(e, packed.data(), n, kHidden, h.data(), round);
    bool ok = true;
    for (int64_t row = 0; row < p.rows; ++row) {
      const int32_t token = w[p.tokens + row];  // == its batch row
      int64_t which = -1;
      for (int64_t i = 0; i < n; ++i)
        if (rows[i] == token) which = i;
      for (int64_t c = 0; c < kHidden; ++c) {
        const float want = which >= 0 ? round(feature(which, c)) : token_value(token, c);
        if (h[row * kHidden + c] != want) {
          if (ok) std::printf("  row %lld (batch row %d) column %lld: %g, want %g\n", static_cast<long long>(row), token,
                              static_cast<long long>(c), h[row * kHidden + c], want);
          ok = false;
        }
      }
    }
    check(ok, name + ", grid " + std::to_string(blocks) + " x " + std::to_string(threads) +
              ": each feature row on its token's plan row, the others untouched");
  }
}

int main() {
  const auto same = [](float v) { return v; };
  // Decode row (base), image prompt with an adapter, a one-token chunk (the image's last placeholder), a base prompt.
  const std::vector<Seq> mixed = {{-1, 1}, {2, 5}, {0, 1}, {-1, 4}, {1, 1}};
  run("mixed step, fp32", mixed, {2, 3, 4, 6, 7}, same);
  run("mixed step, bf16 rounding", mixed, {1, 2, 3, 4, 5, 6}, round_bf16);
  run("overrides in reverse batch order", mixed, {9, 8, 6, 2}, same);
  run("a whole prompt of image rows", {{1, 6}, {-1, 2}}, {0, 1, 2, 3, 4, 5}, round_bf16);
  run("no overrides", mixed, {}, same);
  std::printf("%d cases, %d failed\n", cases, failed);
  return failed == 0 ? 0 : 1;
}
