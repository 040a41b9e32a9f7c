// Runs the decode attention body (kernels/src/cuda/kernels/decode_attention_body.h — the code the CUDA kernel
// instantiates) and its partition merge on the CPU under the host warp emulator and checks them against
// cpu::paged_attention, at each loads-in-flight depth: 1 (the kernel measured on an H100), 4 and 8. A deeper ring
// only issues loads earlier, so every depth must give the bits depth 1 gives — checked exactly. Cases cover MHA
// and GQA groups of 2/4/6 (1, 2 and 4 heads per block), head sizes 32..256 (4..32 lanes per key), contexts across
// the 512/256-key partitions (workspace + merge), sliding windows, odd block sizes, multi-row sequences, fp32 and
// 16-bit storage, gpt-oss's attention sinks (within one partition and merged over several, also dominating), Llama 4's
// chunked attention (chunks smaller than, equal to and larger than a partition; alone, with a window, with sinks, on
// multi-row sequences), where the partitions before a row's chunk are skipped like those before its window.
// Build + run: test/unit/tensor-core-emulated.test.ts. One line per case; exit status 0 when all pass.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/ops.h"
#include "cuda/kernels/decode_attention_body.h"
#include "../gpu/paged_layout.h"
#include "../gpu/tolerance.h"
#include "warp_emu.h"

namespace {
namespace da = weft::cuda::decode_attention;
namespace pm = weft::cuda::prefill_mma;
namespace wt = weft::testing;
using namespace weft::emu;
using weft::cuda::DType;
using weft::cuda::PagedAttention;

// The body's Ops on the host: storage bits (uint16_t for bf16/fp16, float for fp32), 16-byte aligned loads (a GPU
// faults on a misaligned vector load), the emulator's shuffles and barrier.
template <DType kD> struct DecodeEmuOps {
  using Elem = std::conditional_t<kD == DType::kF32, float, uint16_t>;
  struct Pack {
    Elem v[8];
  };
  static Pack load(const Elem* p) {
    if ((reinterpret_cast<uintptr_t>(p) & 15u) != 0) std::abort();
    Pack r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static float value(Elem e) {
    if constexpr (kD == DType::kF32) return e;
    else return from_bits(kD, e);
  }
  static void unpack(const Pack& p, float (&v)[8]) {
    for (int i = 0; i < 8; ++i) v[i] = value(p.v[i]);
  }
  static Elem from_f(float v) {
    if constexpr (kD == DType::kF32) return v;
    else return to_bits(kD, v);
  }
  static float shfl_xor(float v, int o) { return EmuOps<DType::kBF16>::shfl_xor(v, o); }
  static void sync() { EmuOps<DType::kBF16>::sync(); }
  static float exp(float x) { return std::exp(x); }
};

using Seq = wt::SeqShape;
using Case = wt::EmuCase;
Case chunked(Case c, int chunk) { return wt::chunked<Case>(c, chunk); }  // braced cases: no template deduction

// Output and workspace of one run; out starts NaN so a row the kernel forgets to write fails.
template <DType kD, int HPB, int L, int D>
std::vector<typename DecodeEmuOps<kD>::Elem> run_depth(const PagedAttention& base, const void* q) {
  using Ops = DecodeEmuOps<kD>;
  PagedAttention a = base;
  std::vector<typename Ops::Elem> out(static_cast<size_t>(a.num_tokens) * a.heads * a.head_dim, Ops::from_f(NAN));
  a.q = q;
  a.out = out.data();
  const int splits = static_cast<int>(da::splits(a));
  std::vector<float> ml(static_cast<size_t>(a.num_tokens) * a.heads * splits * 2, NAN);
  std::vector<float> acc(static_cast<size_t>(a.num_tokens) * a.heads * splits * a.head_dim, NAN);
  da::Shared<HPB> sm;
  run_blocks(a.heads / HPB, a.num_tokens, splits, [&](const pm::BlockIndex& ix) {
    da::block<Ops, HPB, L, D>(a, ml.data(), acc.data(), splits, ix, sm);
  });
  for (int row = 0; row < a.num_tokens; ++row)
    for (int h = 0; h < a.heads; ++h) da::merge<Ops>(a, ml.data(), acc.data(), splits, h, row, 0, 1);
  return out;
}

template <DType kD, int HPB, int L>
bool check(const Case& c, const PagedAttention& a, const void* q, const std::vector<float>& ref) {
  using Ops = DecodeEmuOps<kD>;
  const auto d1 = run_depth<kD, HPB, L, 1>(a, q);
  const auto d4 = run_depth<kD, HPB, L, 4>(a, q);
  const auto d8 = run_depth<kD, HPB, L, 8>(a, q);
  std::vector<float> got(d1.size());
  for (size_t i = 0; i < d1.size(); ++i) got[i] = Ops::value(d1[i]);
  const double worst = wt::scaled_err(got, ref), tol = wt::tol_for(c.d);
  const bool same = std::memcmp(d1.data(), d4.data(), d1.size() * sizeof d1[0]) == 0 &&
                    std::memcmp(d1.data(), d8.data(), d1.size() * sizeof d1[0]) == 0;
  const bool ok = worst <= tol && same;
  std::printf("%s %s (HPB %d, L %d; err %.3g, tol %.3g; depths 4 and 8 %s depth 1)\n", ok ? "ok  " : "FAIL",
              c.name.c_str(), HPB, L, worst, tol, same ? "bit-identical to" : "DIFFER from");
  std::fflush(stdout);
  return ok;
}

// The launcher's choices: heads per block from the GQA group, lanes per key from head_dim.
template <DType kD, int HPB>
bool dispatch_lanes(const Case& c, const PagedAttention& a, const void* q, const std::vector<float>& ref) {
  if (c.hd <= 32) return check<kD, HPB, 4>(c, a, q, ref);
  if (c.hd <= 64) return check<kD, HPB, 8>(c, a, q, ref);
  if (c.hd <= 128) return check<kD, HPB, 16>(c, a, q, ref);
  return check<kD, HPB, 32>(c, a, q, ref);
}
template <DType kD>
bool dispatch(const Case& c, const PagedAttention& a, const void* q, const std::vector<float>& ref) {
  const int group = c.heads / c.kv_heads;
  if (group % 4 == 0) return dispatch_lanes<kD, 4>(c, a, q, ref);
  if (group % 2 == 0) return dispatch_lanes<kD, 2>(c, a, q, ref);
  return dispatch_lanes<kD, 1>(c, a, q, ref);
}

template <DType kD> bool run_case(const Case& c, std::mt19937& rng) {
  using Ops = DecodeEmuOps<kD>;
  using Elem = typename Ops::Elem;
  const wt::PagedLayout L = wt::make_paged_layout(c.seqs, c.bs, rng);
  const int64_t kv_dim = static_cast<int64_t>(c.kv_heads) * c.hd, q_dim = static_cast<int64_t>(c.heads) * c.hd;
  const int64_t slots = static_cast<int64_t>(L.total_blocks) * c.bs;
  auto draw = [&](int64_t n, float scale, std::vector<Elem>& bits, std::vector<float>& vals) {
    draw_stored(n, scale, rng, bits, vals, Ops::from_f, Ops::value);
  };
  std::vector<Elem> qb, kb, vb;
  std::vector<float> qf, kf, vf;
  draw(L.tokens * q_dim, c.q_scale, qb, qf);
  draw(slots * kv_dim, 1.0f, kb, kf);
  draw(slots * kv_dim, 1.0f, vb, vf);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
  const std::vector<float> sinks = c.sinks ? wt::draw_sinks(c.heads, c.sink_shift, rng) : std::vector<float>();
  const float* sink_ptr = c.sinks ? sinks.data() : nullptr;
  std::vector<float> ref(L.tokens * q_dim);
  weft::cpu::paged_attention(qf.data(), c.heads, c.kv_heads, c.hd, L.cpu_seqs.data(), L.num_seqs, kf.data(),
                             vf.data(), c.bs, scale, c.window, ref.data(), c.softcap, sink_ptr, c.chunk);
  PagedAttention a = wt::paged_args(L, c.d, c.heads, c.kv_heads, c.hd, c.bs, c.window, scale);
  a.softcap = c.softcap;
  a.chunk = c.chunk;
  a.sinks = sink_ptr;
  a.k_cache = kb.data();
  a.v_cache = vb.data();
  a.cu_seqlens_q = L.cu_seqlens.data();
  a.context_lens = L.context_lens.data();
  a.block_tables = L.block_tables.data();
  return dispatch<kD>(c, a, qb.data(), ref);
}

}  // namespace

int main() {
  std::mt19937 rng(4321);
  const DType f32 = DType::kF32, bf16 = DType::kBF16, f16 = DType::kF16;
  const std::vector<Case> cases = {
      {"Gemma 2: softcap 5 on peaky scores, window 100, hd256 bf16", bf16, 4, 2, 256, 16, 100, {{1, 560}, {1, 50}}, 6.0f, 5.0f},
      {"MHA 4/4 hd128 bf16, contexts 1..1100 across 512-key partitions", bf16, 4, 4, 128, 16, 0,
       {{1, 1}, {1, 17}, {1, 512}, {1, 513}, {1, 1100}}},
      {"GQA 8/2 hd64 f16, contexts at the 256-key boundaries", f16, 8, 2, 64, 16, 0,
       {{1, 255}, {1, 256}, {1, 257}, {1, 600}}},
      {"GQA 8/1 hd128 f32 peaky, 4 heads per block", f32, 8, 1, 128, 16, 0, {{1, 700}, {1, 40}}, 4.0f},
      {"group 6 (12/2) hd80 bf16, 2 heads per block, 10 lanes of 16 active", bf16, 12, 2, 80, 16, 0, {{1, 300}, {1, 9}}},
      {"MHA 2/2 hd32 f32 (4 lanes per key), block size 7", f32, 2, 2, 32, 7, 0, {{1, 530}, {1, 3}}},
      {"GQA 4/2 hd256 bf16 (32 lanes per key)", bf16, 4, 2, 256, 16, 0, {{1, 270}}},
      {"sliding window 100 across partitions f16", f16, 4, 4, 64, 16, 100, {{1, 560}, {1, 50}}},
      {"multi-row sequences (3 rows on 600, 5 on 40) bf16", bf16, 4, 2, 64, 16, 0, {{3, 600}, {1, 1}, {5, 40}}},
      // gpt-oss's attention sinks: in the one-partition write and in the merge of several (a sink share of ~5-30 %).
      {"gpt-oss sinks: GQA 8/2 hd64 bf16, contexts 1..1100 across 256-key partitions, multi-row", bf16, 8, 2, 64, 16, 0,
       {{1, 1}, {1, 200}, {1, 256}, {1, 257}, {1, 1100}, {3, 600}}, 1.0f, 0.0f, true, 5.0f},
      {"gpt-oss sinks: sliding window 128 across partitions, MHA 4/4 hd64 f32", f32, 4, 4, 64, 16, 128,
       {{1, 700}, {1, 600}, {1, 50}}, 1.0f, 0.0f, true, 3.0f},
      {"gpt-oss sinks dominate (shift 12): group 6 (12/2) hd64 f32, 2 heads per block", f32, 12, 2, 64, 16, 0,
       {{1, 700}, {1, 40}}, 1.0f, 0.0f, true, 12.0f},
      // Llama 4: a row sees its own chunk's keys only. Smaller than a partition (rows whose chunk starts in an earlier
      // partition: merged; later partitions' rows: the partitions before skipped), as large as a partition (every
      // row within one: written directly however long its context), larger (chunks over several partitions).
      chunked({"MHA 4/4 hd128 bf16, contexts 1..1100 on 512-key partitions", bf16, 4, 4, 128, 16, 0,
               {{1, 1}, {1, 100}, {1, 101}, {1, 530}, {1, 1024}, {1, 1100}}}, 100),
      chunked({"GQA 8/2 hd64 f16, contexts at the 256-key boundaries, 4 heads per block", f16, 8, 2, 64, 16, 0,
               {{1, 255}, {1, 256}, {1, 257}, {1, 600}, {1, 1100}}}, 256),
      chunked({"GQA 8/2 hd64 bf16 over 256-key partitions", bf16, 8, 2, 64, 16, 0,
               {{1, 700}, {1, 701}, {1, 1500}, {1, 2000}, {1, 9}}}, 700),
      chunked({"Llama 4's golden shape: GQA 4/2 hd16 f32, block size 7", f32, 4, 2, 16, 7, 0,
               {{1, 1}, {1, 4}, {1, 5}, {1, 300}, {1, 514}}}, 4),
      chunked({"with a window of 100 (the later start wins either way), MHA 4/4 hd64 f32", f32, 4, 4, 64, 16, 100,
               {{1, 560}, {1, 600}, {1, 620}, {1, 50}}}, 300),
      chunked({"multi-row sequences (3 rows on 600, 5 on 40), group 6 (12/2) hd80 bf16", bf16, 12, 2, 80, 16, 0,
               {{3, 600}, {1, 1}, {5, 40}}}, 16),
      chunked({"with gpt-oss sinks, GQA 8/2 hd64 f32 across partitions", f32, 8, 2, 64, 16, 0,
               {{1, 1100}, {1, 200}, {1, 40}}, 1.0f, 0.0f, true, 4.0f}, 400),
  };
  int failed = 0;
  for (const Case& c : cases) {
    const bool ok = c.d == f32 ? run_case<DType::kF32>(c, rng)
                    : c.d == bf16 ? run_case<DType::kBF16>(c, rng)
                                  : run_case<DType::kF16>(c, rng);
    failed += ok ? 0 : 1;
  }
  std::printf("%zu cases, %d failed\n", cases.size(), failed);
  return failed == 0 ? 0 : 1;
}
