// Paged attention (decode and the prefill kernels — CUDA-core, tensor-core and pipelined tensor-core) against cpu::paged_attention: MHA/GQA/MQA, head sizes 8..256,
// contexts across the decode partitions (512 keys, 256 for GQA), sliding windows, odd block sizes, chunked prefill on top of a
// cached prefix, mixed prefill + decode batches, gpt-oss's attention sinks, Llama 4's chunked attention (chunks smaller than,
// equal to and larger than a decode partition and a prefill key tile). Block tables are shuffled so pages are not contiguous.
// The decode kernel's loads-in-flight depths (1, 4, 8, by grid size) must give the default's bits.
#include <cstring>
#include <numeric>

#include "harness.h"
#include "paged_layout.h"

namespace gt {
namespace {
namespace wc = weft::cuda;
namespace cpu = weft::cpu;
namespace wt = weft::testing;

using Seq = wt::SeqShape;
struct Case {
  std::string name;
  DType d;
  int heads, kv_heads, hd, bs, window;
  std::vector<Seq> seqs;
  bool decode;
  float q_scale = 1.0f;  // larger: peakier softmax
  float softcap = 0.0f;  // PagedAttention::softcap (Gemma 2)
  bool sinks = false;    // PagedAttention::sinks (gpt-oss), drawn by wt::draw_sinks around sink_shift
  float sink_shift = 0.0f;
  int chunk = 0;         // PagedAttention::chunk (Llama 4): set by chunked()
  bool bidirectional = false;  // PagedAttention::bidirectional (EmbeddingGemma): set by bidirectional()
};

Case chunked(Case c, int chunk) { return wt::chunked<Case>(c, chunk); }  // braced cases: no template deduction
Case bidirectional(Case c) { return wt::bidirectional<Case>(c); }

enum class Kernel { kDecode, kPrefillSimt, kPrefillMma, kPrefillPipelined };

const char* tag(Kernel k) {
  switch (k) {
    case Kernel::kPrefillSimt: return " [simt]";
    case Kernel::kPrefillMma: return " [mma]";
    case Kernel::kPrefillPipelined: return " [pipelined]";
    default: return "";
  }
}

void run(const Case& c, Kernel kernel, std::mt19937& rng) {
  const std::string name = c.name + tag(kernel);
  guard(name, [&] {
    const wt::PagedLayout L = wt::make_paged_layout(c.seqs, c.bs, rng);
    const int64_t kv_dim = static_cast<int64_t>(c.kv_heads) * c.hd, q_dim = static_cast<int64_t>(c.heads) * c.hd;
    const int64_t slots = static_cast<int64_t>(L.total_blocks) * c.bs;
    const auto kc = randn(slots * kv_dim, rng, 1.0f, c.d), vc = randn(slots * kv_dim, rng, 1.0f, c.d);
    const auto q = randn(L.tokens * q_dim, rng, c.q_scale, c.d);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
    const std::vector<float> sinks = c.sinks ? wt::draw_sinks(c.heads, c.sink_shift, rng) : std::vector<float>();
    std::vector<float> ref(L.tokens * q_dim);
    cpu::paged_attention(q.data(), c.heads, c.kv_heads, c.hd, L.cpu_seqs.data(), L.num_seqs, kc.data(), vc.data(), c.bs,
                         scale, c.window, ref.data(), c.softcap, c.sinks ? sinks.data() : nullptr, c.chunk,
                         !c.bidirectional);

    DevBuf dq = upload(q, c.d), dk = upload(kc, c.d), dv = upload(vc, c.d), out(L.tokens * q_dim * dsize(c.d));
    DevBuf dsinks = upload(c.sinks ? sinks : std::vector<float>{0.0f}, DType::kF32);
    DevBuf dcu = upload_vec(L.cu_seqlens), dctx = upload_vec(L.context_lens), dbt = upload_vec(L.block_tables);
    wc::PagedAttention a = wt::paged_args(L, c.d, c.heads, c.kv_heads, c.hd, c.bs, c.window, scale);
    a.softcap = c.softcap;
    a.sinks = c.sinks ? dsinks.as<float>() : nullptr;
    a.chunk = c.chunk;
    a.bidirectional = c.bidirectional;
    a.q = dq.get();
    a.out = out.get();
    a.k_cache = dk.get();
    a.v_cache = dv.get();
    a.cu_seqlens_q = dcu.as<int32_t>();
    a.context_lens = dctx.as<int32_t>();
    a.block_tables = dbt.as<int32_t>();
    if (kernel == Kernel::kDecode) {
      const size_t ws_bytes = wc::paged_attention_decode_workspace_bytes(a);
      DevBuf ws(ws_bytes);
      CK(wc::paged_attention_decode(a, ws_bytes ? ws.get() : nullptr, ws_bytes, nullptr));
      // Deeper rings of loads in flight (WEFT_DECODE_ATTENTION_DEPTH) and the by-grid-size choice only issue loads
      // earlier: the same bits as the default kernel.
      const auto first = download(out.get(), ref.size(), c.d);
      for (int depth : {1, 4, 8, 0}) {
        CK(cudaMemset(out.get(), 0xff, ref.size() * dsize(c.d)));
        CK(wc::paged_attention_decode_depth(a, ws_bytes ? ws.get() : nullptr, ws_bytes, depth, nullptr));
        const auto again = download(out.get(), ref.size(), c.d);
        expect(name + " [depth " + std::to_string(depth) + " == default, bit for bit]",
               std::memcmp(again.data(), first.data(), first.size() * sizeof(float)) == 0);
      }
    } else if (kernel == Kernel::kPrefillSimt) {
      CK(wc::paged_attention_prefill_simt(a, nullptr));
    } else if (kernel == Kernel::kPrefillMma) {
      CK(wc::paged_attention_prefill_mma(a, nullptr));  // NotSupported here is a failure: the shape qualifies
    } else {
      CK(wc::paged_attention_prefill_pipelined(a, nullptr));
    }
    expect_close(name, download(out.get(), ref.size(), c.d), ref, tol_for(c.d));
  });
}

}  // namespace

void run_attention_tests(std::mt19937& rng) {
  const DType f32 = DType::kF32, bf16 = DType::kBF16, f16 = DType::kF16;
  const std::vector<Seq> decode_mix = {{1, 1}, {1, 17}, {1, 300}, {1, 512}, {1, 513}, {1, 1500}};
  const std::vector<Case> cases = {
      // Decode: one query row per sequence.
      {"decode MHA 8/8 hd128 f32", f32, 8, 8, 128, 16, 0, decode_mix, true},
      {"decode MHA 8/8 hd128 bf16", bf16, 8, 8, 128, 16, 0, decode_mix, true},
      {"decode GQA 32/8 hd128 bf16", bf16, 32, 8, 128, 16, 0, {{1, 2100}, {1, 5}, {1, 1024}, {1, 777}}, true},
      {"decode GQA 32/8 hd128 f32 peaky", f32, 32, 8, 128, 16, 0, {{1, 1300}, {1, 64}}, true, 4.0f},
      {"decode MQA 16/1 hd64 f32", f32, 16, 1, 64, 16, 0, {{1, 100}, {1, 1100}}, true},
      {"decode GQA 8/2 hd256 f16", f16, 8, 2, 256, 16, 0, {{1, 600}, {1, 40}}, true},
      {"decode MHA 4/4 hd8 f32", f32, 4, 4, 8, 16, 0, {{1, 50}, {1, 520}}, true},
      {"decode group 6 (12/2) hd80 bf16", bf16, 12, 2, 80, 16, 0, {{1, 700}, {1, 33}}, true},
      {"decode group 3 (6/2) hd96 f32", f32, 6, 2, 96, 16, 0, {{1, 1030}}, true},
      {"decode sliding window 100 f32", f32, 8, 4, 64, 16, 100, {{1, 1200}, {1, 50}, {1, 612}}, true},
      {"decode sliding window 600 across partitions bf16", bf16, 8, 8, 128, 16, 600, {{1, 1400}}, true},
      {"decode GQA sliding window 300 across 256-key partitions bf16", bf16, 16, 4, 128, 16, 300, {{1, 1000}, {1, 257}}, true},
      {"decode GQA contexts at the 256-key boundaries f16", f16, 8, 2, 64, 16, 0, {{1, 255}, {1, 256}, {1, 257}, {1, 513}}, true},
      {"decode block size 7 f32", f32, 8, 2, 128, 7, 0, {{1, 300}, {1, 1000}}, true},
      {"decode kernel on multi-row sequences f32", f32, 8, 2, 64, 16, 0, {{3, 600}, {1, 1}, {5, 40}}, true},
      // Prefill: causal over cached prefix + this step's rows.
      {"prefill MHA 8/8 hd128 f32", f32, 8, 8, 128, 16, 0, {{37, 37}, {1, 1}, {130, 330}}, false},
      {"prefill GQA 8/2 hd128 bf16", bf16, 8, 2, 128, 16, 0, {{37, 37}, {1, 1}, {130, 330}}, false},
      {"prefill GQA 32/8 hd128 f32 peaky", f32, 32, 8, 128, 16, 0, {{70, 70}, {9, 600}}, false, 4.0f},
      {"prefill sliding window 64 f32", f32, 8, 2, 64, 16, 64, {{200, 200}, {50, 300}}, false},
      {"prefill sliding window 40 bf16 block 7", bf16, 4, 4, 128, 7, 40, {{90, 90}}, false},
      {"prefill hd256 bf16 (dynamic smem > 48 KiB)", bf16, 8, 2, 256, 16, 0, {{70, 100}, {3, 3}}, false},
      {"prefill MQA 32/1 hd72 f16", f16, 32, 1, 72, 16, 0, {{20, 45}, {7, 7}}, false},
      {"prefill hd8 f32", f32, 4, 2, 8, 16, 0, {{33, 40}}, false},
      {"prefill hd40 f32", f32, 6, 3, 40, 16, 0, {{17, 17}, {5, 21}}, false},
      {"prefill mixed with decode rows bf16", bf16, 16, 4, 128, 16, 0, {{1, 900}, {64, 64}, {1, 17}}, false},
      {"prefill block size 7 f32", f32, 8, 8, 64, 7, 0, {{45, 45}, {12, 100}}, false},
      // Shapes for the tensor-core kernel (16-bit, head_dim % 16 == 0, ≤ 128): many 64-row tiles, 64-key tiles
      // across pages, windows cutting tiles, every supported head size family.
      {"prefill 1024-token prompt GQA 8/2 hd128 bf16", bf16, 8, 2, 128, 16, 0, {{1024, 1024}}, false},
      {"prefill chunk of 300 on a 700-token prefix GQA 16/4 hd128 f16", f16, 16, 4, 128, 16, 0, {{300, 1000}}, false},
      {"prefill hd64 bf16 window 100, MHA 8/8", bf16, 8, 8, 64, 16, 100, {{400, 400}, {5, 5}}, false},
      {"prefill hd80 f16 GQA 10/2, peaky", f16, 10, 2, 80, 16, 0, {{129, 129}, {64, 200}}, false, 4.0f},
      {"prefill hd96 bf16 block 32", bf16, 6, 3, 96, 32, 0, {{200, 260}}, false},
      {"prefill hd32 f16 MQA 16/1 block 8", f16, 16, 1, 32, 8, 0, {{90, 90}, {1, 33}}, false},
      // Gemma 2: the attention-logit softcap on peaky scores, with its sliding window, in every kernel.
      {"decode softcap 5 hd256 bf16 window 300", bf16, 8, 4, 256, 16, 300, {{1, 1000}, {1, 40}}, true, 6.0f, 5.0f},
      {"decode softcap 5 hd128 f32", f32, 8, 2, 128, 16, 0, {{1, 700}}, true, 6.0f, 5.0f},
      {"prefill softcap 5 hd256 bf16 window 100", bf16, 8, 4, 256, 16, 100, {{130, 130}, {9, 300}}, false, 6.0f, 5.0f},
      {"prefill softcap 5 GQA 8/2 hd128 bf16", bf16, 8, 2, 128, 16, 0, {{200, 200}, {1, 50}}, false, 6.0f, 5.0f},
      // gpt-oss: attention sinks (64/8 heads of 64, window 128 on every other layer), a share of ~5-30 % or dominating.
      {"decode sinks GQA 64/8 hd64 bf16, across 256-key partitions", bf16, 64, 8, 64, 16, 0, decode_mix, true, 1.0f, 0.0f,
       true, 5.0f},
      {"decode sinks window 128 across partitions f32", f32, 8, 8, 64, 16, 128, {{1, 600}, {1, 700}, {1, 50}}, true, 1.0f,
       0.0f, true, 3.0f},
      {"decode sinks dominate (shift 12) group 6 f32", f32, 12, 2, 64, 16, 0, {{1, 1100}, {1, 9}}, true, 1.0f, 0.0f, true,
       12.0f},
      {"prefill sinks GQA 16/2 hd64 bf16 window 128", bf16, 16, 2, 64, 16, 128, {{300, 300}, {40, 500}, {1, 77}}, false,
       1.0f, 0.0f, true, 4.0f},
      {"prefill sinks MHA 4/4 hd64 f32 (CUDA cores)", f32, 4, 4, 64, 16, 0, {{90, 90}, {30, 200}}, false, 1.0f, 0.0f, true,
       4.0f},
      {"prefill sinks dominate (shift 12) hd64 f16", f16, 8, 2, 64, 16, 0, {{150, 150}}, false, 1.0f, 0.0f, true, 12.0f},
      // Llama 4 (chunks of 8192 on its RoPE layers; 4 in the golden model): a row sees its own chunk's keys only.
      chunked({"decode MHA 8/8 hd128 bf16, chunks within a 512-key partition", bf16, 8, 8, 128, 16, 0, decode_mix, true}, 100),
      chunked({"decode GQA 40/8 hd128 bf16, chunk = the 256-key partition", bf16, 40, 8, 128, 16, 0,
               {{1, 255}, {1, 256}, {1, 257}, {1, 1500}}, true}, 256),
      chunked({"decode GQA 32/8 hd128 f32, chunks over several partitions", f32, 32, 8, 128, 16, 0,
               {{1, 2100}, {1, 5}, {1, 1024}, {1, 777}}, true}, 700),
      chunked({"decode GQA 4/2 hd16 f32 block size 7 (the golden model's shape)", f32, 4, 2, 16, 7, 0,
               {{1, 1}, {1, 4}, {1, 5}, {1, 300}}, true}, 4),
      chunked({"decode window 100 MHA 8/8 hd64 f16", f16, 8, 8, 64, 16, 100, {{1, 560}, {1, 620}, {1, 50}}, true}, 300),
      chunked({"prefill GQA 8/2 hd128 bf16, prompt + chunk on a cached prefix + decode row", bf16, 8, 2, 128, 16, 0,
               {{200, 200}, {20, 150}, {1, 70}}, false}, 64),
      chunked({"prefill MHA 4/4 hd64 f16, 1024-token prompt", f16, 4, 4, 64, 16, 0, {{1024, 1024}}, false}, 100),
      chunked({"prefill GQA 4/2 hd16 bf16 (the golden model's shape)", bf16, 4, 2, 16, 16, 0, {{30, 30}, {7, 7}}, false}, 4),
      chunked({"prefill chunk of 300 on a 700-token prefix across chunks GQA 16/4 hd128 f16", f16, 16, 4, 128, 16, 0,
               {{300, 1000}}, false}, 512),
      chunked({"prefill f32 window 40 block 7 (CUDA cores)", f32, 8, 2, 64, 7, 40, {{150, 150}, {60, 260}}, false}, 100),
      // EmbeddingGemma: bidirectional attention over whole prompts, two-sided windows (257 of a 512 window).
      bidirectional({"prefill GQA 3/1 hd256 bf16 window 257 (EmbeddingGemma's shape)", bf16, 3, 1, 256, 16, 257,
                     {{700, 700}, {40, 40}, {1, 1}}, false}),
      bidirectional({"prefill MHA 8/8 hd128 bf16, 1024-token prompt", bf16, 8, 8, 128, 16, 0, {{1024, 1024}}, false}),
      bidirectional({"prefill f32 window 40 block 7 (CUDA cores)", f32, 8, 2, 64, 7, 40, {{150, 150}, {9, 9}}, false}),
      bidirectional({"prefill GQA 8/2 hd64 f16 window 3", f16, 8, 2, 64, 16, 3, {{130, 130}}, false}),
  };
  for (const Case& c : cases) {
    if (c.decode) {
      run(c, Kernel::kDecode, rng);
      continue;
    }
    run(c, Kernel::kPrefillSimt, rng);
    if (c.d != f32 && c.hd % 16 == 0 && c.hd <= 128) {
      run(c, Kernel::kPrefillMma, rng);
      run(c, Kernel::kPrefillPipelined, rng);
    }
  }
}

}  // namespace gt
