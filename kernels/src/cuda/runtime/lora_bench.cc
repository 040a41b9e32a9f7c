// time_lora_kernel (lora_bench.h): the CUDA LoRA launchers of cuda/kernels/lora.cu timed alone, for
// `weft bench --scenario lora-kernels --device cuda`. Like the other device measurements it runs on a
// StreamTimer (stream_timer.h), so every handle is released on every path; failures name the call.
#include "cuda/runtime/lora_bench.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#include "cuda/runtime/stream_timer.h"

namespace weft::cuda {

namespace {

constexpr size_t kAlign = 256;                      // what cudaMalloc gives; lora.cu wants 16 for vector loads
constexpr int64_t kMaxRank = 1024;                  // lora.cu refuses max_rank above this
constexpr int64_t kMaxRowTiles = 65535;             // grid.y of one launch (lora.cu refuses more)
constexpr int64_t kMaxDim = int64_t(1) << 24;       // keeps every byte count far below 2^63
constexpr int64_t kMaxSets = 8192;                  // copies of the operands in cold-L2 mode
constexpr size_t kMaxColdBytes = size_t(4) << 30;   // and at most this much memory for them

size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Byte offsets inside one copy ("set") of the operands, and inside its block of device tables; 256-byte aligned.
struct Layout {
  size_t x = 0, y = 0, h = 0, a = 0, b = 0, data = 0;  // data: bytes of one set's operands
  size_t a_step = 0, b_step = 0;                       // adapter e's A at a + e·a_step, B at b + e·b_step
  size_t a_ptrs = 0, b_ptrs = 0, ranks = 0, scales = 0, out_offset = 0, out_len = 0, seg = 0, token_entry = 0;
  size_t tables = 0;                                   // bytes of one set's tables
};

Layout make_layout(const LoraKernelSpec& s) {
  const size_t elem = s.dtype == DType::kF32 ? 4 : 2;
  const size_t T = static_cast<size_t>(s.tokens), E = static_cast<size_t>(s.adapters),
               R = static_cast<size_t>(s.rank), in = static_cast<size_t>(s.in), out = static_cast<size_t>(s.out);
  Layout l;
  size_t at = 0;
  auto take = [&at](size_t bytes) {
    const size_t offset = at;
    at += round_up(bytes);
    return offset;
  };
  l.x = take(T * in * elem);
  l.y = take(T * out * elem);
  l.h = take(T * R * sizeof(float));  // [num_slices = 1, tokens, max_rank = rank]
  l.a_step = round_up(R * in * elem);
  l.b_step = round_up(out * R * elem);
  l.a = take(E * l.a_step);
  l.b = take(E * l.b_step);
  l.data = at;
  at = 0;
  l.a_ptrs = take(E * sizeof(void*));
  l.b_ptrs = take(E * sizeof(void*));
  l.ranks = take(E * sizeof(int32_t));
  l.scales = take(E * sizeof(float));
  l.out_offset = take(sizeof(int32_t));
  l.out_len = take(sizeof(int32_t));
  l.seg = take((E + 1) * sizeof(int32_t));
  l.token_entry = take(T * sizeof(int32_t));
  l.tables = at;
  return l;
}

void validate(const LoraKernelSpec& s) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("time_lora_kernel: " + what); };
  if (s.dtype != DType::kF32 && s.dtype != DType::kF16 && s.dtype != DType::kBF16) bad("unknown dtype");
  if (s.tokens < 1) bad("tokens must be >= 1, got " + std::to_string(s.tokens));
  if (s.adapters < 1) bad("adapters must be >= 1, got " + std::to_string(s.adapters));
  if (s.rank < 1 || s.rank > kMaxRank)
    bad("rank must be in [1, " + std::to_string(kMaxRank) + "], got " + std::to_string(s.rank));
  if (s.in < 1 || s.in > kMaxDim) bad("in must be in [1, 2^24], got " + std::to_string(s.in));
  if (s.out < 1 || s.out > kMaxDim) bad("out must be in [1, 2^24], got " + std::to_string(s.out));
  if (s.iterations < 1) bad("iterations must be >= 1, got " + std::to_string(s.iterations));
  if (s.warmup < 0) bad("warmup must be >= 0, got " + std::to_string(s.warmup));
  // lora.cu's grid: SGMV has ceil(tokens / 8) + segments row tiles, BGMV one per token; both ≤ 65535.
  const bool segments = s.kind == LoraKernelSpec::Kind::kSgmv;
  if (s.adapters > kMaxRowTiles || s.tokens > (segments ? int64_t(8) : int64_t(1)) * kMaxRowTiles)
    bad("too many tokens or adapters for one launch");
  const int64_t tiles = segments ? (s.tokens + 7) / 8 + s.adapters : s.tokens;
  if (tiles > kMaxRowTiles)
    bad(std::string(segments ? "SGMV" : "BGMV") + " with " + std::to_string(s.tokens) + " tokens and " +
        std::to_string(s.adapters) + " adapters needs " + std::to_string(tiles) +
        " row tiles, more than one launch takes (" + std::to_string(kMaxRowTiles) + ")");
}

using Launcher = cudaError_t (*)(const LoraArgs&, cudaStream_t);

}  // namespace

double time_lora_kernel(const LoraKernelSpec& s) {
  validate(s);
  device_info(s.device);  // existence + availability, with the reason when not
  DeviceScope scope(s.device);
  const bool shrink = s.op == LoraKernelSpec::Op::kShrink, segments = s.kind == LoraKernelSpec::Kind::kSgmv;
  const Launcher launch = segments ? (shrink ? lora_sgmv_shrink : lora_sgmv_expand)
                                   : (shrink ? lora_bgmv_shrink : lora_bgmv_expand);
  const char* const launch_name = segments ? (shrink ? "lora_sgmv_shrink" : "lora_sgmv_expand")
                                           : (shrink ? "lora_bgmv_shrink" : "lora_bgmv_expand");
  const Layout l = make_layout(s);
  const size_t set_bytes = l.data + l.tables;

  // How many copies of the operands: enough that 4× the L2 cache is read between two uses of one copy, within
  // kMaxSets, kMaxColdBytes and half the free memory; always at least one.
  int64_t sets = 1;
  if (s.cold_l2) {
    int l2 = 0;
    WEFT_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, s.device));
    size_t free_bytes = 0, total_bytes = 0;
    WEFT_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const size_t want = (4 * static_cast<size_t>(std::max(l2, 0)) + set_bytes - 1) / set_bytes;
    const size_t room = std::min(kMaxColdBytes, free_bytes / 2) / set_bytes;
    sets = static_cast<int64_t>(std::max<size_t>(1, std::min({want, room, static_cast<size_t>(kMaxSets)})));
  }
  const size_t data_bytes = l.data * static_cast<size_t>(sets), table_bytes = l.tables * static_cast<size_t>(sets);

  StreamTimer timer;
  const cudaStream_t stream = timer.stream();
  char* mem = static_cast<char*>(timer.alloc(data_bytes + table_bytes));
  // 0x3c bytes: small finite values in every dtype (bf16 0x3c3c ≈ 0.0115, fp16 ≈ 1.06, fp32 ≈ 0.0115), h included,
  // so expand adds finite values to y call after call.
  WEFT_CUDA_CHECK(cudaMemsetAsync(mem, 0x3c, data_bytes, stream));

  // The tables of every set, made on the host and copied once. Entries (= adapters) cover the tokens in equal
  // contiguous runs: SGMV segment e is rows [seg[e], seg[e+1]), and BGMV maps each of those rows to entry e.
  const int64_t T = s.tokens, E = s.adapters;
  std::vector<int32_t> seg(E + 1), token_entry(T);
  for (int64_t e = 0; e <= E; ++e) seg[e] = static_cast<int32_t>(e * T / E);
  for (int64_t e = 0; e < E; ++e)
    for (int64_t t = seg[e]; t < seg[e + 1]; ++t) token_entry[t] = static_cast<int32_t>(e);
  const std::vector<int32_t> ranks(E, static_cast<int32_t>(s.rank));
  const std::vector<float> scales(E, 1.0f);
  const int32_t out_offset = 0, out_len = static_cast<int32_t>(s.out);
  std::vector<unsigned char> host(table_bytes, 0);
  std::vector<const void*> a_ptrs(E), b_ptrs(E);
  std::vector<LoraArgs> args(sets);
  for (int64_t i = 0; i < sets; ++i) {
    char* data = mem + i * l.data;
    const size_t tables_at = data_bytes + i * l.tables;  // offset in mem, and (less data_bytes) in host
    unsigned char* h = host.data() + (tables_at - data_bytes);
    for (int64_t e = 0; e < E; ++e) {
      a_ptrs[e] = data + l.a + e * l.a_step;
      b_ptrs[e] = data + l.b + e * l.b_step;
    }
    std::memcpy(h + l.a_ptrs, a_ptrs.data(), E * sizeof(void*));
    std::memcpy(h + l.b_ptrs, b_ptrs.data(), E * sizeof(void*));
    std::memcpy(h + l.ranks, ranks.data(), E * sizeof(int32_t));
    std::memcpy(h + l.scales, scales.data(), E * sizeof(float));
    std::memcpy(h + l.out_offset, &out_offset, sizeof(int32_t));
    std::memcpy(h + l.out_len, &out_len, sizeof(int32_t));
    std::memcpy(h + l.seg, seg.data(), (E + 1) * sizeof(int32_t));
    std::memcpy(h + l.token_entry, token_entry.data(), T * sizeof(int32_t));
    char* d = mem + tables_at;

    LoraArgs& a = args[i];
    a = LoraArgs{};
    a.dtype = s.dtype;
    a.tokens = T;
    a.in = s.in;
    a.x = data + l.x;
    a.x_stride = s.in;
    a.h = reinterpret_cast<float*>(data + l.h);
    a.y = data + l.y;
    a.y_stride = s.out;
    a.num_slices = 1;
    a.out_offset = reinterpret_cast<const int32_t*>(d + l.out_offset);
    a.out_len = reinterpret_cast<const int32_t*>(d + l.out_len);
    a.max_out_len = out_len;
    a.num_entries = static_cast<int32_t>(E);
    a.a = reinterpret_cast<const void* const*>(d + l.a_ptrs);
    a.b = reinterpret_cast<const void* const*>(d + l.b_ptrs);
    a.rank = reinterpret_cast<const int32_t*>(d + l.ranks);
    a.scale = reinterpret_cast<const float*>(d + l.scales);
    a.max_rank = static_cast<int32_t>(s.rank);
    // Each launcher reads only its own table; the other stays null, as the executor passes it.
    if (segments) a.seg_starts = reinterpret_cast<const int32_t*>(d + l.seg);
    else a.token_entry = reinterpret_cast<const int32_t*>(d + l.token_entry);
  }
  WEFT_CUDA_CHECK(cudaMemcpyAsync(mem + data_bytes, host.data(), table_bytes, cudaMemcpyHostToDevice, stream));
  WEFT_CUDA_CHECK(cudaStreamSynchronize(stream));  // `host` may go now; the launches see filled memory

  // One counter over warm-up and timed calls: a set is reused only after every other set has been.
  int64_t call = 0;
  auto run = [&] {
    const cudaError_t err = launch(args[call++ % sets], stream);
    if (err != cudaSuccess) throw_cuda_error(err, launch_name, __FILE__, __LINE__);
  };
  for (int i = 0; i < s.warmup; ++i) run();
  const float ms = timer.time(s.iterations, run, launch_name);
  return static_cast<double>(ms) * 1e3 / s.iterations;
}

}  // namespace weft::cuda
