// Runs the tensor-core prefill attention body (kernels/src/cuda/kernels/prefill_mma_body.h — the very code the
// CUDA kernel instantiates) on the CPU and checks it against cpu::paged_attention, so its indexing, masking,
// online softmax and fragment packing are tested on machines without a GPU. Each block's 128 threads are
// std::threads; __syncthreads, lane shuffles and mma.sync m16n8k16 are emulated, the MMA from the PTX ISA's
// fragment layouts (the one thing this cannot check is that the hardware matches that documentation; the GPU
// kernel tests in test/gpu/test_attention.cu do). Cases include gpt-oss's attention sinks and Llama 4's chunked
// attention (chunks smaller than, equal to and larger than a 64-key tile; with a window; a chunked prefill continuing a
// cached prefix that crosses chunk boundaries), and EmbeddingGemma's bidirectional attention (whole prompts; with and
// without a two-sided window), and Gemma 3's images (a row inside an image span also sees the span's later keys: spans
// inside one tile, across row and key tiles, two images, with a window, a chunk continuing a cached prefix that ends
// inside an image).
// Build + run: test/unit/tensor-core-emulated.test.ts. Prints one line per case; exit status 0 when all pass.
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpu/ops.h"
#include "cuda/kernels/prefill_mma_body.h"
#include "cuda/kernels/prefill_pipelined_body.h"
#include "../gpu/paged_layout.h"
#include "../gpu/tolerance.h"
#include "warp_emu.h"

namespace {
namespace pm = weft::cuda::prefill_mma;
namespace pp = weft::cuda::prefill_pipelined;
namespace wt = weft::testing;
using namespace weft::emu;
using weft::cuda::DType;
using weft::cuda::PagedAttention;

// The two kernels that share this algorithm: the first (registers-staged tiles) and the pipelined one
// (cp.async stages, ldmatrix fragments, causal column skipping).
enum class Kernel { kMma, kPipelined };
const char* kernel_name(Kernel k) { return k == Kernel::kMma ? "mma" : "pipelined"; }

template <class Ops, int D> void run_grid(Kernel k, const PagedAttention& a, int tiles) {
  std::vector<uint64_t> smem((pp::smem_bytes(D) + 7) / 8);
  run_blocks(tiles, a.num_seqs, a.kv_heads, [&](const pm::BlockIndex& ix) {
    uint16_t* sm = reinterpret_cast<uint16_t*>(smem.data());
    if (k == Kernel::kMma) pm::block<Ops, D>(a, ix, sm);
    else pp::block<Ops, D>(a, ix, sm);
  });
}

using Seq = wt::SeqShape;
using Case = wt::EmuCase;
Case chunked(Case c, int chunk) { return wt::chunked<Case>(c, chunk); }  // braced cases: no template deduction
Case bidirectional(Case c) { return wt::bidirectional<Case>(c); }
Case with_images(Case c, std::vector<std::vector<int32_t>> spans) { return wt::with_images<Case>(c, std::move(spans)); }

bool run(Kernel kernel, const Case& c, std::mt19937& rng) {
  wt::PagedLayout L = wt::make_paged_layout(c.seqs, c.bs, rng);
  const wt::SpanArrays spans = wt::span_arrays(c.image_spans, L.cpu_seqs);  // the CPU's sequences point into it
  const int64_t kv_dim = static_cast<int64_t>(c.kv_heads) * c.hd, q_dim = static_cast<int64_t>(c.heads) * c.hd;
  const int64_t slots = static_cast<int64_t>(L.total_blocks) * c.bs;
  auto draw = [&](int64_t n, float scale, std::vector<uint16_t>& bits, std::vector<float>& vals) {
    draw_stored(n, scale, rng, bits, vals, [&](float f) { return to_bits(c.d, f); },
                [&](uint16_t b) { return from_bits(c.d, b); });
  };
  std::vector<uint16_t> qb, kb, vb;
  std::vector<float> qf, kf, vf;
  draw(L.tokens * q_dim, c.q_scale, qb, qf);
  draw(slots * kv_dim, 1.0f, kb, kf);
  draw(slots * kv_dim, 1.0f, vb, vf);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
  const std::vector<float> sinks = c.sinks ? wt::draw_sinks(c.heads, c.sink_shift, rng) : std::vector<float>();
  const float* sink_ptr = c.sinks ? sinks.data() : nullptr;
  std::vector<float> ref(L.tokens * q_dim);
  weft::cpu::paged_attention(qf.data(), c.heads, c.kv_heads, c.hd, L.cpu_seqs.data(), L.num_seqs, kf.data(), vf.data(),
                             c.bs, scale, c.window, ref.data(), c.softcap, sink_ptr, c.chunk, !c.bidirectional);

  std::vector<uint16_t> out(L.tokens * q_dim, to_bits(c.d, NAN));  // NaN: a row the kernel forgets to write fails
  PagedAttention a = wt::paged_args(L, c.d, c.heads, c.kv_heads, c.hd, c.bs, c.window, scale);
  a.softcap = c.softcap;
  a.sinks = sink_ptr;
  a.chunk = c.chunk;
  a.bidirectional = c.bidirectional;
  if (!spans.offsets.empty()) {
    a.image_spans = spans.pairs.data();
    a.span_offsets = spans.offsets.data();
  }
  a.q = qb.data();
  a.out = out.data();
  a.k_cache = kb.data();
  a.v_cache = vb.data();
  a.cu_seqlens_q = L.cu_seqlens.data();
  a.context_lens = L.context_lens.data();
  a.block_tables = L.block_tables.data();
  if (!pm::supports(a)) {
    std::printf("FAIL %s: shape not supported by the tensor-core kernel\n", c.name.c_str());
    return false;
  }
  const int tiles = (L.max_q * (c.heads / c.kv_heads) + pm::kRows - 1) / pm::kRows;
  with_ops(c.d, [&](auto ops) {
    using Ops = decltype(ops);
    switch (c.hd) {
      case 16: return run_grid<Ops, 16>(kernel, a, tiles);
      case 32: return run_grid<Ops, 32>(kernel, a, tiles);
      case 64: return run_grid<Ops, 64>(kernel, a, tiles);
      case 80: return run_grid<Ops, 80>(kernel, a, tiles);
      default: return run_grid<Ops, 128>(kernel, a, tiles);
    }
  });

  std::vector<float> got(out.size());
  for (size_t i = 0; i < out.size(); ++i) got[i] = from_bits(c.d, out[i]);
  const double worst = wt::scaled_err(got, ref), tol = wt::tol_for(c.d);  // the GPU tests' metric and bar
  const bool ok = worst <= tol;
  std::printf("%s [%s] %s (err %.3g, tol %.3g)\n", ok ? "ok  " : "FAIL", kernel_name(kernel), c.name.c_str(), worst, tol);
  std::fflush(stdout);
  return ok;
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  const DType bf16 = DType::kBF16, f16 = DType::kF16;
  const std::vector<Case> cases = {
      {"Gemma 2: softcap 5 on peaky scores, window 24, GQA 4/2 hd64 bf16", bf16, 4, 2, 64, 16, 24, {{90, 90}, {10, 60}}, 6.0f,
       5.0f},
      {"MHA 4/4 hd64 bf16, one prompt over two key tiles", bf16, 4, 4, 64, 16, 0, {{100, 100}}},
      {"GQA 8/2 hd128 bf16, prompt + chunk on a cached prefix + decode row", bf16, 8, 2, 128, 16, 0,
       {{37, 37}, {20, 150}, {1, 70}}},
      {"MQA 4/1 hd32 f16, rows of several q heads per tile", f16, 4, 1, 32, 16, 0, {{45, 45}, {3, 3}}},
      {"sliding window 24 bf16 block size 7", bf16, 2, 2, 64, 7, 24, {{90, 90}, {10, 60}}},
      {"hd80 f16 (five k-steps), peaky softmax", f16, 2, 1, 80, 16, 0, {{70, 70}}, 4.0f},
      {"hd16 bf16, window 100 wider than the prompt", bf16, 3, 3, 16, 16, 100, {{66, 66}}},
      // Longer than two tiles: both stages reused, tiles every row sees whole (no mask), the diagonal's skip.
      {"MHA 2/2 hd64 bf16, 230-token prompt (4 key tiles) + chunk of 70 on 300", bf16, 2, 2, 64, 16, 0,
       {{230, 230}, {70, 300}}},
      {"GQA 4/2 hd128 f16, 150-token prompt, window 40, block size 5", f16, 4, 2, 128, 5, 40, {{150, 150}}},
      // gpt-oss's attention sinks, folded in at each row's end (a sink share of ~5-30 %, or dominating).
      {"gpt-oss sinks: GQA 8/2 hd64 bf16, window 24, prompt + chunk on a cached prefix + decode row", bf16, 8, 2, 64,
       16, 24, {{90, 90}, {20, 150}, {1, 70}}, 1.0f, 0.0f, true, 3.0f},
      {"gpt-oss sinks: MHA 4/4 hd64 f16, 230-token prompt + chunk of 70 on 300", f16, 4, 4, 64, 16, 0,
       {{230, 230}, {70, 300}}, 1.0f, 0.0f, true, 4.0f},
      {"gpt-oss sinks dominate (shift 12): MQA 4/1 hd128 bf16", bf16, 4, 1, 128, 16, 0, {{100, 100}}, 1.0f, 0.0f, true,
       12.0f},
      // Llama 4's chunked attention: a row sees its own chunk's keys only. Chunks inside a block's rows and a key
      // tile, as large as a tile, larger and unaligned (with a window); prompts and chunked prefills on cached
      // prefixes that cross chunk boundaries, a decode row.
      chunked({"Llama 4's golden shape: GQA 4/2 hd16 bf16, prompts", bf16, 4, 2, 16, 16, 0, {{30, 30}, {7, 7}}}, 4),
      chunked({"MHA 2/2 hd64 bf16, 230-token prompt + chunk of 70 on 300", bf16, 2, 2, 64, 16, 0,
               {{230, 230}, {70, 300}}}, 16),
      chunked({"GQA 8/2 hd128 f16, prompt + chunk on a cached prefix + decode row", f16, 8, 2, 128, 16, 0,
               {{200, 200}, {40, 210}, {1, 70}}}, 64),
      chunked({"GQA 4/2 hd128 bf16 with a window of 40, block size 5", bf16, 4, 2, 128, 5, 40,
               {{150, 150}, {60, 260}}}, 100),
      chunked({"MQA 4/1 hd32 f16, a prefill of 70 on 300 across the chunk at 256", f16, 4, 1, 32, 16, 0,
               {{70, 300}, {3, 3}}}, 128),
      chunked({"with gpt-oss sinks: GQA 8/2 hd64 bf16", bf16, 8, 2, 64, 16, 0, {{90, 90}, {20, 150}}, 1.0f, 0.0f, true,
               3.0f}, 50),
      // EmbeddingGemma's bidirectional attention: whole prompts, each row sees every key of its prompt (later ones
      // too), or a two-sided window; prompts over several key tiles and row tiles, one-token and short ones beside.
      bidirectional({"MHA 4/4 hd64 bf16, prompts of 100, 37 and 1", bf16, 4, 4, 64, 16, 0, {{100, 100}, {37, 37}, {1, 1}}}),
      bidirectional({"GQA 8/2 hd128 f16, a 230-token prompt (4 key tiles)", f16, 8, 2, 128, 16, 0, {{230, 230}}}),
      bidirectional({"MQA 4/1 hd32 bf16, two-sided window 40, block size 5", bf16, 4, 1, 32, 5, 40, {{150, 150}, {20, 20}}}),
      bidirectional({"GQA 4/2 hd64 bf16, window 3 (a 5-key band), softcap 5", bf16, 4, 2, 64, 16, 3, {{90, 90}, {4, 4}}, 6.0f,
                     5.0f}),
      bidirectional({"GQA 4/2 hd16 f16, window 257 wider than the prompt", f16, 4, 2, 16, 16, 257, {{66, 66}}}),
      // Gemma 3's images: a row inside [s, e) also sees the image's later keys up to e - 1, everything else causal.
      with_images({"MHA 2/2 hd64 bf16, an image inside one row and key tile", bf16, 2, 2, 64, 16, 0, {{50, 50}}},
                  {{10, 30}}),
      with_images({"GQA 4/2 hd64 bf16, an image across row and key tiles", bf16, 4, 2, 64, 16, 0, {{200, 200}, {9, 9}}},
                  {{20, 150}, {}}),
      with_images({"MHA 4/4 hd128 f16, two images in one prompt, one at a prompt's start", f16, 4, 4, 128, 16, 0,
                   {{230, 230}, {40, 40}}}, {{5, 40, 70, 161}, {0, 3}}),
      with_images({"MQA 4/1 hd32 bf16, window 24 (an image longer than it), block size 7", bf16, 4, 1, 32, 7, 24,
                   {{120, 120}}}, {{30, 100}}),
      with_images({"GQA 8/2 hd64 bf16, chunks on cached prefixes ending inside an image + decode row", bf16, 8, 2, 64, 16,
                   0, {{60, 150}, {30, 100}, {1, 70}}}, {{70, 120}, {64, 100}, {2, 30}}),
      with_images({"GQA 4/2 hd80 f16, adjacent images, window 40 across both", f16, 4, 2, 80, 5, 40, {{140, 140}}},
                  {{10, 60, 60, 110}}),
  };
  int failed = 0, runs = 0;
  for (Kernel k : {Kernel::kMma, Kernel::kPipelined}) {
    for (const Case& c : cases) {
      failed += run(k, c, rng) ? 0 : 1;
      ++runs;
    }
  }
  std::printf("%d cases, %d failed\n", runs, failed);
  return failed == 0 ? 0 : 1;
}
