// LoRA on the token embedding (kernels/src/cuda/kernels/lora_embed.cu) against cpu::lora_embedding_add: fp32,
// bf16 and fp16 factors, ranks 1..64, a hidden size that is not a multiple of the block, rows of the base model,
// an entry without an embedding part, and repeated tokens.
#include "harness.h"

namespace gt {
namespace {
namespace wc = weft::cuda;
namespace cpu = weft::cpu;

void embed_case(const std::string& name, DType d, int64_t vocab, int64_t hidden, std::vector<int> ranks, std::mt19937& rng) {
  guard(name, [&] {
    const int E = static_cast<int>(ranks.size()) + 1;  // the last entry has no embedding part
    const std::vector<int32_t> tokens = {3, 17, 3, static_cast<int32_t>(vocab - 1), 0, 9, 17};
    const std::vector<int32_t> entry = {0, -1, 1, E - 1, 0, static_cast<int32_t>(ranks.size() > 2 ? 2 : 0), -1};
    const int64_t T = static_cast<int64_t>(tokens.size());
    std::vector<float> h = randn(static_cast<size_t>(T * hidden), rng, 1.0f);
    std::vector<float> ref = h;
    std::vector<DevBuf> bufs;
    std::vector<const void*> a_ptr(static_cast<size_t>(E), nullptr), b_ptr(static_cast<size_t>(E), nullptr);
    std::vector<int32_t> rank_v(static_cast<size_t>(E), 0);
    std::vector<float> scale_v(static_cast<size_t>(E), 0.0f);
    std::vector<std::vector<float>> as(static_cast<size_t>(E)), bs(static_cast<size_t>(E));
    for (int e = 0; e + 1 < E; ++e) {
      const int r = ranks[static_cast<size_t>(e)];
      as[e] = randn(static_cast<size_t>(r) * vocab, rng, 0.5f, d);
      bs[e] = randn(static_cast<size_t>(hidden) * r, rng, 0.5f, d);
      bufs.push_back(upload(as[e], d));
      a_ptr[e] = bufs.back().get();
      bufs.push_back(upload(bs[e], d));
      b_ptr[e] = bufs.back().get();
      rank_v[e] = r;
      scale_v[e] = 1.5f + e;
    }
    for (int64_t t = 0; t < T; ++t) {
      const int e = entry[static_cast<size_t>(t)];
      if (e < 0 || rank_v[e] == 0) continue;
      cpu::lora_embedding_add(ref.data(), hidden, tokens.data(), t, t + 1, as[e].data(), bs[e].data(), rank_v[e], vocab, scale_v[e]);
    }
    DevBuf dh = upload(h, DType::kF32), dtok = upload_vec(tokens), dent = upload_vec(entry), da = upload_vec(a_ptr),
           db = upload_vec(b_ptr), dr = upload_vec(rank_v), ds = upload_vec(scale_v);
    wc::LoraArgs args{};
    args.dtype = d;
    args.tokens = T;
    args.num_slices = 1;
    args.num_entries = E;
    args.a = da.as<const void*>();
    args.b = db.as<const void*>();
    args.rank = dr.as<int32_t>();
    args.scale = ds.as<float>();
    args.max_rank = 64;
    args.token_entry = dent.as<int32_t>();
    CK(wc::lora_embedding(args, dtok.as<int32_t>(), vocab, dh.as<float>(), hidden, nullptr));
    expect_close(name, download(dh.get(), h.size(), DType::kF32), ref, 1e-5);
  });
}

}  // namespace

void run_lora_embed_tests(std::mt19937& rng) {
  embed_case("lora embedding f32 vocab 40 hidden 300 r4/r16/r1", DType::kF32, 40, 300, {4, 16, 1}, rng);
  embed_case("lora embedding bf16 vocab 512 hidden 4096 r16/r64", DType::kBF16, 512, 4096, {16, 64}, rng);
  embed_case("lora embedding f16 vocab 97 hidden 64 r8", DType::kF16, 97, 64, {8}, rng);
}

}  // namespace gt
