// Bandwidth benchmarks of the memory-bound kernels (DESIGN.md §9): decode attention and LoRA shrink/expand,
// reported in GB/s next to the device-to-device copy rate measured in the same run.
#include "harness.h"

namespace gt {
namespace {
namespace wc = weft::cuda;

template <class F> double time_ms(F&& f, int iters = 50) {
  for (int i = 0; i < 3; ++i) f();
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  CK(cudaEventRecord(a));
  for (int i = 0; i < iters; ++i) f();
  CK(cudaEventRecord(b));
  CK(cudaEventSynchronize(b));
  float ms = 0;
  CK(cudaEventElapsedTime(&ms, a, b));
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  return ms / iters;
}
void line(const std::string& what, double ms, double bytes, double copy_gbps) {
  const double gbps = bytes / (ms * 1e-3) / 1e9;
  std::printf("BENCH %-58s %8.4f ms  %7.1f GB/s  (%4.0f%% of copy)\n", what.c_str(), ms, gbps,
              copy_gbps > 0 ? 100.0 * gbps / copy_gbps : 0.0);
  std::fflush(stdout);
}

double copy_rate() {
  const size_t bytes = size_t{1} << 30;
  DevBuf a(bytes), b(bytes);
  const double ms = time_ms([&] { CK(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice)); }, 10);
  const double gbps = 2.0 * bytes / (ms * 1e-3) / 1e9;
  std::printf("BENCH %-58s %8.4f ms  %7.1f GB/s  (read + write)\n", "device-to-device copy 1 GiB", ms, gbps);
  return gbps;
}

// A bf16 paged-attention call over one cache layout (block size 16, head_dim 128, scale 1/√128).
wc::PagedAttention attention_args(const DevBuf& q, const DevBuf& out, const DevBuf& kc, const DevBuf& vc, int heads,
                                  int kv_heads, int num_seqs, int num_tokens, const DevBuf& cu, const DevBuf& lens,
                                  const DevBuf& tables, int table_stride, int max_query_len, int max_context_len) {
  wc::PagedAttention a{};
  a.dtype = DType::kBF16;
  a.q = q.get();
  a.q_stride = static_cast<int64_t>(heads) * 128;
  a.out = out.get();
  a.out_stride = a.q_stride;
  a.k_cache = kc.get();
  a.v_cache = vc.get();
  a.num_seqs = num_seqs;
  a.num_tokens = num_tokens;
  a.cu_seqlens_q = cu.as<int32_t>();
  a.context_lens = lens.as<int32_t>();
  a.block_tables = tables.as<int32_t>();
  a.block_table_stride = table_stride;
  a.heads = heads;
  a.kv_heads = kv_heads;
  a.head_dim = 128;
  a.block_size = 16;
  a.scale = 0.088f;
  a.max_query_len = max_query_len;
  a.max_context_len = max_context_len;
  return a;
}

void decode_attention(int batch, int ctx, int heads, int kv_heads, double copy_gbps) {
  const int hd = 128, bs = 16, nb = (ctx + bs - 1) / bs;
  const int64_t kv_dim = static_cast<int64_t>(kv_heads) * hd, q_dim = static_cast<int64_t>(heads) * hd;
  const int64_t slots = static_cast<int64_t>(batch) * nb * bs;
  DevBuf kc(slots * kv_dim * 2), vc(slots * kv_dim * 2), q(batch * q_dim * 2), out(batch * q_dim * 2);
  std::vector<int32_t> bt(static_cast<size_t>(batch) * nb), cu(batch + 1), lens(batch, ctx);
  for (size_t i = 0; i < bt.size(); ++i) bt[i] = static_cast<int32_t>(i);  // distinct pages: no false L2 reuse
  for (int s = 0; s <= batch; ++s) cu[s] = s;
  DevBuf dbt = upload_vec(bt), dcu = upload_vec(cu), dl = upload_vec(lens);
  const wc::PagedAttention a = attention_args(q, out, kc, vc, heads, kv_heads, batch, batch, dcu, dl, dbt, nb, 1, ctx);
  const size_t ws_bytes = wc::paged_attention_decode_workspace_bytes(a);
  DevBuf ws(ws_bytes);
  const double ms = time_ms([&] { CK(wc::paged_attention_decode(a, ws.get(), ws_bytes, nullptr)); });
  const double bytes = 2.0 * batch * ctx * kv_dim * 2 + 2.0 * batch * q_dim * 2;
  line("decode attention " + std::to_string(heads) + "/" + std::to_string(kv_heads) + " hd128 bf16 batch " +
           std::to_string(batch) + " ctx " + std::to_string(ctx),
       ms, bytes, copy_gbps);
}

// Prefill attention over one sequence of `len` tokens (its K/V already in the cache), Llama-2-7B heads: causal
// FLOPs 2·2·heads·hd·len·(len+1)/2 (QKᵀ and PV), in TFLOP/s — the term the prefill bound adds to the GEMMs.
// The decode-sized tensor-core GEMM over Llama-2-7B's projections: weight bytes per call ÷ time, next to the
// copy rate (weights rotate over copies spanning > 4× the L2, so every call reads them from memory).
void skinny(int64_t m, int64_t n, int64_t k, const char* what, double copy_gbps) {
  const int64_t wbytes = n * k * 2;
  const int copies = static_cast<int>(std::max<int64_t>(2, (int64_t{256} << 20) / wbytes + 1));
  std::vector<DevBuf> ws;
  for (int i = 0; i < copies; ++i) {
    ws.emplace_back(wbytes);
    CK(cudaMemset(ws.back().get(), 0x3c, wbytes));
  }
  DevBuf x(m * k * 2), y(m * n * 2);
  CK(cudaMemset(x.get(), 0x3c, m * k * 2));
  int next = 0;
  wc::SkinnyGemmArgs a{DType::kBF16, m, n, k, x.get(), nullptr, nullptr, y.get(), n};
  const double ms = time_ms([&] {
    a.w = ws[next].get();
    next = (next + 1) % copies;
    CK(wc::skinny_gemm(a, nullptr));
  });
  line("skinny gemm bf16 M " + std::to_string(m) + " " + what, ms, static_cast<double>(wbytes), copy_gbps);
}

enum class PrefillKernel { kSimt, kMma, kPipelined };
void prefill_attention(int len, int heads, int kv_heads, PrefillKernel kernel) {
  const int hd = 128, bs = 16, nb = (len + bs - 1) / bs;
  const int64_t kv_dim = static_cast<int64_t>(kv_heads) * hd, q_dim = static_cast<int64_t>(heads) * hd;
  DevBuf kc(static_cast<int64_t>(nb) * bs * kv_dim * 2), vc(static_cast<int64_t>(nb) * bs * kv_dim * 2),
      q(static_cast<int64_t>(len) * q_dim * 2), out(static_cast<int64_t>(len) * q_dim * 2);
  CK(cudaMemset(kc.get(), 0x3c, static_cast<size_t>(nb) * bs * kv_dim * 2));
  CK(cudaMemset(vc.get(), 0x3c, static_cast<size_t>(nb) * bs * kv_dim * 2));
  CK(cudaMemset(q.get(), 0x3c, static_cast<size_t>(len) * q_dim * 2));
  std::vector<int32_t> bt(nb), cu = {0, len}, lens = {len};
  for (int i = 0; i < nb; ++i) bt[i] = i;
  DevBuf dbt = upload_vec(bt), dcu = upload_vec(cu), dl = upload_vec(lens);
  const wc::PagedAttention a = attention_args(q, out, kc, vc, heads, kv_heads, 1, len, dcu, dl, dbt, nb, len, len);
  const double ms = time_ms(
      [&] {
        CK(kernel == PrefillKernel::kMma         ? wc::paged_attention_prefill_mma(a, nullptr)
           : kernel == PrefillKernel::kPipelined ? wc::paged_attention_prefill_pipelined(a, nullptr)
                                                 : wc::paged_attention_prefill_simt(a, nullptr));
      },
      10);
  const char* tag = kernel == PrefillKernel::kMma ? "[mma]" : kernel == PrefillKernel::kPipelined ? "[pipelined]" : "[simt]";
  const double flops = 4.0 * heads * hd * static_cast<double>(len) * (len + 1) / 2;
  std::printf("BENCH %-58s %8.4f ms  %7.1f TFLOP/s\n",
              ("prefill attention " + std::to_string(heads) + "/" + std::to_string(kv_heads) + " hd128 bf16 causal " +
               std::to_string(len) + " tokens " + tag).c_str(),
              ms, flops / (ms * 1e-3) / 1e12);
  std::fflush(stdout);
}

// A Llama-3-8B-like qkv module: slices q 4096, k 1024, v 1024; in 4096; rank 16; bf16.
void lora(bool bgmv, int tokens, int adapters, double copy_gbps) {
  const int S = 3, r = 16, in = 4096, width = 6144;
  const int32_t offs[S] = {0, 4096, 5120}, lens[S] = {4096, 1024, 1024};
  std::vector<DevBuf> w;
  std::vector<const void*> ap, bp;
  for (int s = 0; s < S; ++s)
    for (int e = 0; e < adapters; ++e) {
      w.emplace_back(static_cast<size_t>(r) * in * 2);
      ap.push_back(w.back().get());
      w.emplace_back(static_cast<size_t>(lens[s]) * r * 2);
      bp.push_back(w.back().get());
    }
  std::vector<int32_t> ranks(S * adapters, r), seg(adapters + 1), te(tokens);
  std::vector<float> scales(S * adapters, 2.0f);
  for (int e = 0; e <= adapters; ++e) seg[e] = static_cast<int32_t>(static_cast<int64_t>(tokens) * e / adapters);
  for (int t = 0; t < tokens; ++t) te[t] = t % adapters;
  DevBuf x(static_cast<size_t>(tokens) * in * 2), y(static_cast<size_t>(tokens) * width * 2),
      h(sizeof(float) * S * tokens * r);
  DevBuf dap = upload_vec(ap), dbp = upload_vec(bp), dr = upload_vec(ranks), ds = upload_vec(scales),
         doff = upload_vec(std::vector<int32_t>(offs, offs + S)),
         dlen = upload_vec(std::vector<int32_t>(lens, lens + S)),
         dseg = upload_vec(seg), dte = upload_vec(te);
  wc::LoraArgs a{};
  a.dtype = DType::kBF16;
  a.tokens = tokens;
  a.in = in;
  a.x = x.get();
  a.x_stride = in;
  a.h = h.as<float>();
  a.y = y.get();
  a.y_stride = width;
  a.num_slices = S;
  a.out_offset = doff.as<int32_t>();
  a.out_len = dlen.as<int32_t>();
  a.max_out_len = 4096;
  a.num_entries = adapters;
  a.a = dap.as<const void*>();
  a.b = dbp.as<const void*>();
  a.rank = dr.as<int32_t>();
  a.scale = ds.as<float>();
  a.max_rank = r;
  if (bgmv) a.token_entry = dte.as<int32_t>();
  else a.seg_starts = dseg.as<int32_t>();
  const std::string what = std::string(bgmv ? "bgmv" : "sgmv") + " qkv r16 bf16 tokens " + std::to_string(tokens) +
                           " adapters " + std::to_string(adapters);
  const auto shrink = bgmv ? wc::lora_bgmv_shrink : wc::lora_sgmv_shrink;
  const auto expand = bgmv ? wc::lora_bgmv_expand : wc::lora_sgmv_expand;
  const double shrink_ms = time_ms([&] { CK(shrink(a, nullptr)); });
  const double expand_ms = time_ms([&] { CK(expand(a, nullptr)); });
  // Ideal traffic: each distinct adapter's weights once, x once (shrink), y read + written once (expand).
  const double shrink_bytes = 2.0 * adapters * S * r * in + 2.0 * tokens * in;
  line("lora shrink " + what + (bgmv ? "" : " [mma]"), shrink_ms, shrink_bytes, copy_gbps);
  if (!bgmv) line("lora shrink " + what + " [simt]", time_ms([&] { CK(wc::lora_sgmv_shrink_simt(a, nullptr)); }),
                  shrink_bytes, copy_gbps);
  const double expand_bytes = 2.0 * adapters * width * r + 4.0 * tokens * width;
  line("lora expand " + what + (bgmv ? "" : " [vec]"), expand_ms, expand_bytes, copy_gbps);
  if (!bgmv) line("lora expand " + what + " [simt]", time_ms([&] { CK(wc::lora_sgmv_expand_simt(a, nullptr)); }),
                  expand_bytes, copy_gbps);
  if (!bgmv) return;
  // What a decode step runs per module group: the two launches, against the fused cluster kernel (sm_90+).
  line("lora shrink+expand " + what, time_ms([&] { CK(shrink(a, nullptr)); CK(expand(a, nullptr)); }),
       shrink_bytes + expand_bytes, copy_gbps);
  const cudaError_t fused = wc::lora_bgmv_fused(a, nullptr);
  if (fused == cudaErrorNotSupported) return;
  CK(fused);
  line("lora fused " + what + " [cluster]", time_ms([&] { CK(wc::lora_bgmv_fused(a, nullptr)); }),
       shrink_bytes + expand_bytes, copy_gbps);
}

}  // namespace

// A prefill's SGMV shrink with one rank-16 adapter (Llama-2-7B modules: qkv in 4096 × 3 slices, down in 11008),
// the tensor-core kernel with each block count per row tile — a cluster of 8 splitting `in` (the sm_90
// default), 4, and one block (the sm_80 path, and the kernel as it was before clusters: ~35 µs at 512 rows, in
// 4096 on an H100, docs/bench/2026-11-22-h100) — and the CUDA-core one. Ideal traffic: x and A once each.
void sgmv_shrink_blocks(int tokens, int in, int slices, double copy_gbps) {
  const int r = 16;
  std::vector<DevBuf> w;
  std::vector<const void*> ap, bp;
  for (int s = 0; s < slices; ++s) {
    w.emplace_back(static_cast<size_t>(r) * in * 2);
    ap.push_back(w.back().get());
    bp.push_back(w.back().get());  // never read by a shrink
  }
  const std::vector<int32_t> ranks(slices, r), seg = {0, tokens}, offs(slices, 0), lens(slices, 16);
  const std::vector<float> scales(slices, 1.0f);
  DevBuf x(static_cast<size_t>(tokens) * in * 2), h(sizeof(float) * slices * tokens * r), y(16);
  DevBuf dap = upload_vec(ap), dbp = upload_vec(bp), dr = upload_vec(ranks), ds = upload_vec(scales),
         doff = upload_vec(offs), dlen = upload_vec(lens), dseg = upload_vec(seg);
  wc::LoraArgs a{};
  a.dtype = DType::kBF16;
  a.tokens = tokens;
  a.in = in;
  a.x = x.get();
  a.x_stride = in;
  a.h = h.as<float>();
  a.y = y.get();
  a.num_slices = slices;
  a.out_offset = doff.as<int32_t>();
  a.out_len = dlen.as<int32_t>();
  a.max_out_len = 16;
  a.num_entries = 1;
  a.a = dap.as<const void*>();
  a.b = dbp.as<const void*>();
  a.rank = dr.as<int32_t>();
  a.scale = ds.as<float>();
  a.max_rank = r;
  a.seg_starts = dseg.as<int32_t>();
  const double bytes = 2.0 * slices * r * in + 2.0 * tokens * in;
  const std::string what = "sgmv shrink r16 bf16 tokens " + std::to_string(tokens) + " adapters 1 in " +
                           std::to_string(in) + " slices " + std::to_string(slices);
  for (int cluster : {8, 4, 1}) {
    const cudaError_t e = wc::lora_sgmv_shrink_mma(a, nullptr, cluster);
    if (e == cudaErrorNotSupported) continue;  // clusters: sm_90+
    CK(e);
    line(what + " [mma " + (cluster > 1 ? "cluster " + std::to_string(cluster) : std::string("1 block")) + "]",
         time_ms([&] { CK(wc::lora_sgmv_shrink_mma(a, nullptr, cluster)); }), bytes, copy_gbps);
  }
  line(what + " [simt]", time_ms([&] { CK(wc::lora_sgmv_shrink_simt(a, nullptr)); }), bytes, copy_gbps);
}

void run_benchmarks(std::mt19937&) {
  guard("benchmarks", [&] {
    const double copy = copy_rate();
    decode_attention(32, 512, 32, 32, copy);    // Llama-2-7B shape, DESIGN.md §9's batch
    decode_attention(32, 512, 32, 8, copy);     // Llama-3-8B shape (GQA 4)
    decode_attention(32, 4096, 32, 8, copy);
    decode_attention(4, 16384, 32, 8, copy);    // few long rows: split-K path
    lora(true, 32, 32, copy);                   // decode batch, every row its own adapter
    lora(true, 32, 1, copy);
    lora(false, 512, 1, copy);                  // prefill, one adapter
    lora(false, 512, 8, copy);
    lora(false, 2048, 1, copy);                 // the prefill goal's prompt
    for (int tokens : {512, 2048}) {            // prefill's shrink: block counts per row tile, A/B
      sgmv_shrink_blocks(tokens, 4096, 3, copy);
      sgmv_shrink_blocks(tokens, 11008, 1, copy);
    }
    for (int64_t m : {1, 8, 32}) {  // cuBLASLt on the H100 (ncu, M 32): qkv, gate/up 2.6 TB/s; o, down 2.0
      skinny(m, 12288, 4096, "qkv 12288x4096", copy);
      skinny(m, 4096, 4096, "o 4096x4096", copy);
      skinny(m, 22016, 4096, "gate/up 22016x4096", copy);
      skinny(m, 4096, 11008, "down 4096x11008", copy);
    }
    for (PrefillKernel k : {PrefillKernel::kSimt, PrefillKernel::kMma, PrefillKernel::kPipelined}) {
      prefill_attention(512, 32, 32, k);  // the prefill bench's prompt lengths, per layer
      prefill_attention(2048, 32, 32, k);
      prefill_attention(2048, 32, 8, k);  // Llama-3-8B heads (GQA 4)
    }
  });
}

}  // namespace gt
