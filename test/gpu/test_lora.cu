// LoRA SGMV / BGMV shrink + expand against cpu::lora_shrink_expand, across adapter-popularity patterns
// (distinct, identical, skewed, zipf-like, base-only rows), ranks 1..128 (multiples of 8 and not), fused
// modules (several slices), aligned and unaligned weights, padded row strides; the tensor-core SGMV shrink
// with one block per row tile and with clusters of 4 and 8 (sm_90+), and its h bit for bit for the same rows
// in different batches (batch invariance).
#include "harness.h"

namespace gt {
namespace {
namespace wc = weft::cuda;
namespace cpu = weft::cpu;

struct Slice {
  int off, len;
};
struct Case {
  std::string name;
  DType d;
  int T;
  int64_t in, x_pad;
  std::vector<Slice> slices;
  std::vector<int> ranks;        // cycled over (slice, entry)
  int max_rank;
  bool bgmv;
  std::vector<int> seg_lens;     // SGMV: rows per entry
  std::vector<int> token_entry;  // BGMV: entry per token, -1 = base
  int num_slots = 0;             // BGMV entries
  std::vector<int> null_entries = {};
  bool misalign = false;         // weights one element past a 16-byte boundary: scalar paths
};

int device_major() {
  int dev = 0, major = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  return major;
}

// cluster >= 0: SGMV on the newer kernels — tensor-core shrink (lora_shrink_mma_body.h; `cluster` blocks per
// row tile, 0 the device's default) and 16-byte expand (lora_expand_vec_body.h) — instead of the first
// CUDA-core ones (cluster < 0).
void run(const Case& c, int cluster, std::mt19937& rng) {
  const bool mma_shrink = cluster >= 0;
  const std::string blocks = cluster == 0 ? "" : " cluster " + std::to_string(cluster);
  const std::string name =
      c.name + (c.bgmv ? "" : mma_shrink ? " [mma shrink" + blocks + ", vec expand]" : " [simt shrink]");
  if (mma_shrink && cluster > 1 && device_major() < 9) return;  // clusters: sm_90+
  guard(name, [&] {
    const int S = static_cast<int>(c.slices.size());
    const int E = c.bgmv ? c.num_slots : static_cast<int>(c.seg_lens.size());
    int width = 0;
    for (const Slice& s : c.slices) width = std::max(width, s.off + s.len);
    // A padded y row: 3 elements past the width for the CUDA-core kernels; for the 16-byte expand, which takes
    // rows 8-element aligned (expand_vec::supports), the next multiple of 8 past width + 3.
    const int64_t y_stride = mma_shrink ? (width + 3 + 7) / 8 * 8 : width + 3, x_stride = c.in + c.x_pad;
    const auto x = randn(c.T * x_stride, rng, 1.0f, c.d);
    auto y = randn(c.T * y_stride, rng, 1.0f, c.d), ref = y;
    std::vector<float> xp(c.T * c.in);  // the CPU op reads rows `in` apart: a packed copy of x
    for (int t = 0; t < c.T; ++t) std::copy_n(&x[t * x_stride], c.in, &xp[t * c.in]);

    std::vector<int32_t> seg(E + 1, 0), ranks(S * E), offs(S), lens(S);
    for (int e = 0; e < E && !c.bgmv; ++e) seg[e + 1] = seg[e] + c.seg_lens[e];
    std::vector<float> scales(S * E);
    std::vector<const void*> ap(S * E, nullptr), bp(S * E, nullptr);
    std::vector<DevBuf> keep;
    std::uniform_real_distribution<float> ud(0.5f, 2.0f);
    const size_t skew = c.misalign ? dsize(c.d) : 0;
    for (int s = 0; s < S; ++s) {
      offs[s] = c.slices[s].off;
      lens[s] = c.slices[s].len;
      for (int e = 0; e < E; ++e) {
        const int i = s * E + e, r = c.ranks[i % c.ranks.size()], len = c.slices[s].len;
        ranks[i] = r;
        scales[i] = ud(rng);
        const bool base = std::find(c.null_entries.begin(), c.null_entries.end(), e) != c.null_entries.end();
        const auto a = randn(static_cast<size_t>(r) * c.in, rng, 1.0f / std::sqrt(static_cast<float>(c.in)), c.d);
        const auto b = randn(static_cast<size_t>(len) * r, rng, 1.0f, c.d);
        if (base) continue;
        // CPU reference: the rows this (slice, entry) applies to.
        for (int t = 0; t < c.T; ++t) {
          const bool mine = c.bgmv ? c.token_entry[t] == e : (t >= seg[e] && t < seg[e + 1]);
          if (mine)
            cpu::lora_shrink_expand(xp.data(), t, t + 1, c.in, a.data(), b.data(), r, len, scales[i], ref.data(),
                                    y_stride, c.slices[s].off);
        }
        DevBuf da = upload(a, c.d), db = upload(b, c.d);
        DevBuf sa(da.bytes() + 16), sb(db.bytes() + 16);
        CK(cudaMemcpy(sa.as<char>() + skew, da.get(), da.bytes(), cudaMemcpyDeviceToDevice));
        CK(cudaMemcpy(sb.as<char>() + skew, db.get(), db.bytes(), cudaMemcpyDeviceToDevice));
        ap[i] = sa.as<char>() + skew;
        bp[i] = sb.as<char>() + skew;
        keep.push_back(std::move(sa));
        keep.push_back(std::move(sb));
      }
    }
    DevBuf dx = upload(x, c.d), dy = upload(y, c.d), dh(sizeof(float) * S * c.T * c.max_rank);
    DevBuf dap = upload_vec(ap), dbp = upload_vec(bp), dr = upload_vec(ranks), ds = upload_vec(scales);
    DevBuf doff = upload_vec(offs), dlen = upload_vec(lens), dseg = upload_vec(seg);
    std::vector<int32_t> te(c.token_entry.begin(), c.token_entry.end());
    DevBuf dte = upload_vec(te);
    wc::LoraArgs a{};
    a.dtype = c.d;
    a.tokens = c.T;
    a.in = c.in;
    a.x = dx.get();
    a.x_stride = x_stride;
    a.h = dh.as<float>();
    a.y = dy.get();
    a.y_stride = y_stride;
    a.num_slices = S;
    a.out_offset = doff.as<int32_t>();
    a.out_len = dlen.as<int32_t>();
    a.max_out_len = *std::max_element(lens.begin(), lens.end());
    a.num_entries = E;
    a.a = dap.as<const void*>();
    a.b = dbp.as<const void*>();
    a.rank = dr.as<int32_t>();
    a.scale = ds.as<float>();
    a.max_rank = c.max_rank;
    if (c.bgmv) {
      a.token_entry = dte.as<int32_t>();
      // The fused kernel (one cluster per token and slice, sm_90+, 16-bit, ranks <= 64) on a copy of y first.
      const cudaError_t fused = wc::lora_bgmv_fused(a, nullptr);
      if (fused != cudaErrorNotSupported) {
        CK(fused);
        CK(cudaDeviceSynchronize());
        expect_close(name + " [fused cluster]", download(dy.get(), y.size(), c.d), ref, tol_for(c.d));
        CK(cudaMemcpy(dy.get(), upload(y, c.d).get(), dy.bytes(), cudaMemcpyDeviceToDevice));  // y as it was
      }
      // The split shrink (16-bit, WEFT_BGMV_SHRINK=split) then the expand, on a copy of y too.
      const cudaError_t split = wc::lora_bgmv_shrink_split(a, nullptr);
      if (split != cudaErrorNotSupported) {
        CK(split);
        CK(wc::lora_bgmv_expand(a, nullptr));
        CK(cudaDeviceSynchronize());
        expect_close(name + " [split shrink]", download(dy.get(), y.size(), c.d), ref, tol_for(c.d));
        CK(cudaMemcpy(dy.get(), upload(y, c.d).get(), dy.bytes(), cudaMemcpyDeviceToDevice));  // y as it was
      }
      CK(wc::lora_bgmv_shrink_warp(a, nullptr));  // then the first kernel: the case's own line
      CK(wc::lora_bgmv_expand(a, nullptr));
    } else {
      // Compact segments first (as a step plans them: only entries with rows, each naming its entry), on y as is.
      std::vector<int32_t> cseg, cent;
      for (int e = 0; e < E; ++e)
        if (seg[e + 1] > seg[e]) cseg.push_back(seg[e]), cent.push_back(e);
      cseg.push_back(seg[E]);
      DevBuf dcseg = upload_vec(cseg), dcent = upload_vec(cent);
      a.seg_starts = dcseg.as<int32_t>();
      a.seg_entries = dcent.as<int32_t>();
      a.num_segments = static_cast<int32_t>(cent.size());
      CK(mma_shrink ? wc::lora_sgmv_shrink_mma(a, nullptr, cluster) : wc::lora_sgmv_shrink_simt(a, nullptr));
      CK(mma_shrink ? wc::lora_sgmv_expand_vec(a, nullptr) : wc::lora_sgmv_expand_simt(a, nullptr));
      CK(cudaDeviceSynchronize());
      expect_close(name + " [compact segments]", download(dy.get(), y.size(), c.d), ref, tol_for(c.d));
      CK(cudaMemcpy(dy.get(), upload(y, c.d).get(), dy.bytes(), cudaMemcpyDeviceToDevice));  // y as it was
      // Then one segment per entry.
      a.seg_starts = dseg.as<int32_t>();
      a.seg_entries = nullptr;
      CK(mma_shrink ? wc::lora_sgmv_shrink_mma(a, nullptr, cluster) : wc::lora_sgmv_shrink_simt(a, nullptr));
      CK(mma_shrink ? wc::lora_sgmv_expand_vec(a, nullptr) : wc::lora_sgmv_expand_simt(a, nullptr));
    }
    expect_close(name, download(dy.get(), y.size(), c.d), ref, tol_for(c.d));
  });
}

// The tensor-core shrink's h rows of one adapter's segment must not depend on the rest of the step: the same
// 300 x rows alone, then after 37 rows of another adapter (other tiles, tile boundaries elsewhere in the rows,
// other token count) and before a base segment; bit for bit.
void shrink_batch_invariance(int in, int cluster, std::mt19937& rng) {
  // Named like run()'s cases: suite.sh falls back to the CUDA-core kernels when a "[mma shrink" case fails.
  const std::string name = "sgmv h batch-invariant, in " + std::to_string(in) + " bf16 [mma shrink" +
                           (cluster == 0 ? std::string() : " cluster " + std::to_string(cluster)) + "]";
  if (cluster > 1 && device_major() < 9) return;
  guard(name, [&] {
    const DType d = DType::kBF16;
    const int r = 16, n = 300, before = 37, after = 20, T = before + n + after;
    const auto x = randn(static_cast<size_t>(T) * in, rng, 1.0f, d);
    const auto a1 = randn(static_cast<size_t>(r) * in, rng, 0.02f, d);
    const auto a2 = randn(static_cast<size_t>(r) * in, rng, 0.02f, d);
    DevBuf dx = upload(x, d), da1 = upload(a1, d), da2 = upload(a2, d), db(16);
    std::vector<float> h[2];
    for (int mixed = 0; mixed < 2; ++mixed) {
      const int tokens = mixed ? T : n;
      const std::vector<const void*> ap = mixed ? std::vector<const void*>{da2.get(), da1.get(), nullptr}
                                                : std::vector<const void*>{da1.get()};
      const std::vector<const void*> bp(ap.size(), db.get());
      const std::vector<int32_t> seg =
          mixed ? std::vector<int32_t>{0, before, before + n, T} : std::vector<int32_t>{0, n};
      const std::vector<int32_t> ranks(ap.size(), r), offs = {0}, lens = {8};
      const std::vector<float> scales(ap.size(), 1.0f);
      DevBuf dap = upload_vec(ap), dbp = upload_vec(bp), dseg = upload_vec(seg), dr = upload_vec(ranks),
             ds = upload_vec(scales), doff = upload_vec(offs), dlen = upload_vec(lens);
      DevBuf dh(sizeof(float) * tokens * r), dy(static_cast<size_t>(tokens) * 8 * 2);
      wc::LoraArgs a{};
      a.dtype = d;
      a.tokens = tokens;
      a.in = in;
      a.x = static_cast<const char*>(dx.get()) + (mixed ? 0 : static_cast<size_t>(before) * in * 2);
      a.x_stride = in;
      a.h = dh.as<float>();
      a.y = dy.get();
      a.y_stride = 8;
      a.num_slices = 1;
      a.out_offset = doff.as<int32_t>();
      a.out_len = dlen.as<int32_t>();
      a.max_out_len = 8;
      a.num_entries = static_cast<int32_t>(ap.size());
      a.a = dap.as<const void*>();
      a.b = dbp.as<const void*>();
      a.rank = dr.as<int32_t>();
      a.scale = ds.as<float>();
      a.max_rank = r;
      a.seg_starts = dseg.as<int32_t>();
      CK(wc::lora_sgmv_shrink_mma(a, nullptr, cluster));
      const auto all = download_vec<float>(dh.get(), static_cast<size_t>(tokens) * r);
      h[mixed].assign(all.begin() + (mixed ? before * r : 0), all.begin() + (mixed ? before * r : 0) + n * r);
    }
    int differ = 0;
    for (size_t i = 0; i < h[0].size(); ++i) differ += std::memcmp(&h[0][i], &h[1][i], sizeof(float)) != 0;
    expect(name, differ == 0, std::to_string(differ) + " of " + std::to_string(h[0].size()) + " h values differ");
  });
}

}  // namespace

void run_lora_tests(std::mt19937& rng) {
  const DType f32 = DType::kF32, bf16 = DType::kBF16, f16 = DType::kF16;
  const std::vector<Slice> qkv = {{0, 1024}, {1024, 256}, {1280, 256}};
  // Zipf-like decode batch: slot 0 is popular, a few rare ones, some base-only rows.
  std::vector<int> zipf;
  for (int t = 0; t < 32; ++t) zipf.push_back(t % 2 == 0 ? 0 : t % 3 == 0 ? -1 : t % 7 == 0 ? 5 : 1 + t % 4);
  const std::vector<Case> cases = {
      {"sgmv distinct qkv f32", f32, 6, 4096, 0, qkv, {16, 8, 64}, 64, false, {1, 1, 1, 1, 1, 1}, {}},
      {"sgmv identical (one adapter) bf16", bf16, 40, 4096, 0, {{0, 4096}}, {16}, 16, false, {40}, {}},
      {"sgmv skewed + base segment bf16", bf16, 66, 1000, 0, qkv, {8, 12, 16, 1, 64}, 64, false,
       {1, 20, 3, 40, 2}, {}, 0, {2}},
      {"sgmv unaligned weights, in 1003 f32", f32, 9, 1003, 0, {{0, 300}, {300, 77}}, {5, 16}, 16, false, {4, 5},
       {}, 0, {}, true},
      {"sgmv rank 128, padded x rows f16", f16, 17, 2048, 8, {{0, 2048}}, {128, 32}, 128, false, {9, 8}, {}},
      {"sgmv empty segment f32", f32, 7, 512, 0, {{0, 512}}, {8}, 8, false, {3, 0, 4}, {}},
      {"sgmv prefill 300 tokens, ranks 16/80 over 64-rank chunks, gate_up-like bf16", bf16, 300, 4096, 0,
       {{0, 11008}, {11008, 11008}}, {16, 80}, 96, false, {120, 180}, {}},
      {"sgmv unaligned weights, in 1008 bf16", bf16, 21, 1008, 0, {{0, 300}}, {16, 8}, 16, false, {11, 10}, {}, 0, {},
       true},
      {"sgmv down-like in 11008, skewed + base segment f16", f16, 50, 11008, 0, {{0, 4096}}, {16, 8}, 16, false,
       {30, 5, 15}, {}, 0, {1}},
      // Prefill with one adapter: few row tiles, where the shrink splits `in` over a cluster (sm_90+).
      {"sgmv prefill 512 tokens, 1 adapter, qkv r16 bf16", bf16, 512, 4096, 0, qkv, {16}, 16, false, {512}, {}},
      {"sgmv prefill 512 tokens, 1 adapter, down-like in 11008 r16 bf16", bf16, 512, 11008, 0, {{0, 4096}}, {16}, 16,
       false, {512}, {}},
      {"sgmv 16 tokens, 1 adapter, in 4112 (odd number of 16s) r64 f16", f16, 16, 4112, 0, {{0, 512}}, {64}, 64,
       false, {16}, {}},
      {"bgmv zipf decode qkv bf16", bf16, 32, 4096, 0, qkv, {16, 8, 32, 64}, 64, true, {}, zipf, 8},
      {"bgmv down-like in 11008, x row padding, ranks 16/8 f16", f16, 9, 11008, 8, {{0, 4096}}, {16, 8}, 16, true,
       {}, {0, 1, 2, -1, 3, 0, 1, 2, 3}, 4},
      {"bgmv distinct f32", f32, 8, 2048, 0, {{0, 2048}}, {16, 8}, 16, true, {}, {0, 1, 2, 3, 4, 5, 6, 7}, 8},
      {"bgmv lm_head-like 32000 out f32", f32, 4, 512, 0, {{0, 32000}}, {8}, 8, true, {}, {1, 0, -1, 1}, 2},
      {"bgmv unaligned weights, rank 12 bf16", bf16, 5, 1000, 0, {{0, 999}}, {12, 7}, 16, true, {},
       {0, 1, 1, -1, 0}, 2, {}, true},
  };
  for (const Case& c : cases) {
    run(c, -1, rng);
    // The tensor-core shrink takes 16-bit SGMV with `in` a multiple of 16 (unaligned A included): the device's
    // default, and each block count explicitly.
    if (!c.bgmv && c.d != f32 && c.in % 16 == 0)
      for (int cluster : {0, 1, 4, 8}) run(c, cluster, rng);
  }
  for (int in : {4096, 11008})
    for (int cluster : {0, 1, 8}) shrink_batch_invariance(in, cluster, rng);
}

}  // namespace gt
