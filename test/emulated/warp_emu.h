// Host emulation of what the tensor-core kernel bodies (kernels/src/cuda/kernels/*_body.h) need from a GPU:
// a block's 128 threads as std::threads, __syncthreads, lane shuffles, and mma.sync m16n8k16 computed from
// the PTX ISA's fragment layouts (each lane's registers are gathered into the full A and B tiles). Slow and
// exact: for tests of kernel indexing and data movement on machines without a GPU.
#pragma once
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "cuda/kernels/prefill_mma_body.h"

namespace weft::emu {
using weft::cuda::DType;
namespace pm = weft::cuda::prefill_mma;

// 16-bit storage formats, round to nearest even.
inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return 0x7fc0;
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float bf16_value(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t f16_bits(float f) {
  const _Float16 h = static_cast<_Float16>(f);
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}
inline float f16_value(uint16_t b) {
  _Float16 h;
  std::memcpy(&h, &b, 2);
  return static_cast<float>(h);
}
inline uint16_t to_bits(DType d, float f) { return d == DType::kBF16 ? bf16_bits(f) : f16_bits(f); }
inline float from_bits(DType d, uint16_t b) { return d == DType::kBF16 ? bf16_value(b) : f16_value(b); }

// n values drawn from N(0, scale), kept in storage form by `store` (bits) and as read back by `load` (vals): a
// kernel gets bits, its oracle exactly the stored values.
template <class E, class Rng, class Store, class Load>
void draw_stored(int64_t n, float scale, Rng& rng, std::vector<E>& bits, std::vector<float>& vals, Store store,
                 Load load) {
  std::normal_distribution<float> nd(0.0f, scale);
  bits.resize(n);
  vals.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    bits[i] = store(nd(rng));
    vals[i] = load(bits[i]);
  }
}

// What the threads of one block share: the block barrier and, per warp, a barrier and the exchange slots.
struct Warp {
  std::barrier<> bar{32};
  uint32_t a[32][4], b[32][2];
  float f[32];
  const uint16_t* row[32];  // ldmatrix row addresses
};
struct Block {
  std::barrier<> bar{pm::kThreads};
  Warp warps[pm::kWarps];
};
inline thread_local Block* tl_block = nullptr;
inline thread_local int tl_thread = 0;

// cp.async as the PTX memory model allows it at its laziest: a copy lands in shared memory only when a
// cp.async.wait_group retires its group, so a kernel that reads a stage before waiting reads stale data.
struct AsyncCopy {
  uint16_t* dst;
  const uint16_t* src;
};
inline thread_local std::vector<AsyncCopy> tl_cp_open;                 // issued, not yet committed
inline thread_local std::vector<std::vector<AsyncCopy>> tl_cp_groups;  // committed, oldest first

template <DType kD> struct EmuOps {  // the Ops interface of prefill_mma_body.h
  static constexpr bool kSplitP = kD == DType::kBF16;
  static Warp& warp() { return tl_block->warps[tl_thread / 32]; }
  static int lane() { return tl_thread % 32; }
  static void sync() { tl_block->bar.arrive_and_wait(); }
  static float shfl_xor(float v, int o) {
    Warp& w = warp();
    w.f[lane()] = v;
    w.bar.arrive_and_wait();
    const float r = w.f[lane() ^ o];
    w.bar.arrive_and_wait();
    return r;
  }
  static float exp2(float x) { return std::exp2(x); }
  static float to_f(uint16_t bits) { return from_bits(kD, bits); }
  static uint16_t from_f(float v) { return to_bits(kD, v); }
  // 16-byte moves are one vector access on a GPU, which faults unless both addresses are 16-byte aligned.
  static void copy16(uint16_t* dst, const uint16_t* src) {
    if (((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) & 15u) != 0) std::abort();
    std::memcpy(dst, src, 16);
  }
  static void stream16(uint16_t* dst, const uint16_t* src) { copy16(dst, src); }  // a cache hint on a GPU
  static void zero16(uint16_t* dst) {
    if ((reinterpret_cast<uintptr_t>(dst) & 15u) != 0) std::abort();
    std::memset(dst, 0, 16);
  }
  static uint32_t pack(float lo, float hi) { return pm::halves(to_bits(kD, lo), to_bits(kD, hi)); }
  static void cp_async16(uint16_t* dst, const uint16_t* src) {
    if (((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) & 15u) != 0) std::abort();
    tl_cp_open.push_back({dst, src});
  }
  static void cp_async_commit() {
    tl_cp_groups.push_back(std::move(tl_cp_open));
    tl_cp_open.clear();
  }
  // Completes every committed group but the newest n (copies issued after the last commit are not waited for).
  template <int n> static void cp_async_wait() {
    while (tl_cp_groups.size() > static_cast<size_t>(n)) {
      for (const AsyncCopy& c : tl_cp_groups.front()) std::memcpy(c.dst, c.src, 16);
      tl_cp_groups.erase(tl_cp_groups.begin());
    }
  }
  // ldmatrix.sync.aligned.m8n8.x4(.trans).b16: `row` is this lane's row address (row lane % 8 of matrix
  // lane / 8); register m gets matrix m's (row lane / 4, cols 2(lane % 4), +1), or with kTrans its
  // (rows 2(lane % 4), +1 of col lane / 4). Rows must be 16-byte aligned.
  template <bool kTrans> static void ldmatrix_x4(uint32_t (&r)[4], const uint16_t* row) {
    if ((reinterpret_cast<uintptr_t>(row) & 15u) != 0) std::abort();
    Warp& w = warp();
    const int me = lane();
    w.row[me] = row;
    w.bar.arrive_and_wait();
    for (int m = 0; m < 4; ++m) {
      const uint16_t* const* rows = w.row + 8 * m;
      const int a = me / 4, b = 2 * (me % 4);
      r[m] = kTrans ? pm::halves(rows[b][a], rows[b + 1][a]) : pm::halves(rows[a][b], rows[a][b + 1]);
    }
    w.bar.arrive_and_wait();  // the slots may be overwritten by the next call from here on
  }
  static float round(float v) { return from_bits(kD, to_bits(kD, v)); }
  // D = A·B + C for this lane's four accumulator positions, A and B rebuilt from every lane's registers.
  static void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    Warp& w = warp();
    const int me = lane();
    std::memcpy(w.a[me], a, sizeof a);
    std::memcpy(w.b[me], b, sizeof b);
    w.bar.arrive_and_wait();
    float A[16][16], B[16][8];
    for (int L = 0; L < 32; ++L) {
      const int g = L / 4, t = L % 4;
      for (int r = 0; r < 4; ++r)
        for (int h = 0; h < 2; ++h)
          A[g + ((r & 1) ? 8 : 0)][2 * t + h + ((r & 2) ? 8 : 0)] = from_bits(kD, (w.a[L][r] >> (16 * h)) & 0xffffu);
      for (int r = 0; r < 2; ++r)
        for (int h = 0; h < 2; ++h) B[2 * t + h + 8 * r][g] = from_bits(kD, (w.b[L][r] >> (16 * h)) & 0xffffu);
    }
    w.bar.arrive_and_wait();  // the slots may be overwritten by the next call from here on
    const int g = me / 4, t = me % 4;
    for (int e = 0; e < 4; ++e) {
      const int row = g + (e >> 1) * 8, col = 2 * t + (e & 1);
      float acc = c[e];
      for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
      c[e] = acc;
    }
  }
};

// Calls f(EmuOps<kBF16>{}) or f(EmuOps<kF16>{}) for the 16-bit type d: the Ops a kernel body is instantiated with.
template <class F> void with_ops(DType d, F&& f) {
  if (d == DType::kBF16) f(EmuOps<DType::kBF16>{});
  else f(EmuOps<DType::kF16>{});
}

// Runs body(BlockIndex) for every block of a (gx, gy, gz) grid, one block at a time, kThreads threads each.
inline void run_blocks(int gx, int gy, int gz, const std::function<void(const pm::BlockIndex&)>& body) {
  for (int z = 0; z < gz; ++z) {
    for (int y = 0; y < gy; ++y) {
      for (int x = 0; x < gx; ++x) {
        Block blk;
        std::vector<std::thread> threads;
        for (int th = 0; th < pm::kThreads; ++th) {
          threads.emplace_back([&, th] {
            tl_block = &blk;
            tl_thread = th;
            body(pm::BlockIndex{th, x, y, z});
            if (!tl_cp_open.empty() || !tl_cp_groups.empty()) std::abort();  // a copy nobody waited for
          });
        }
        for (std::thread& t : threads) t.join();
      }
    }
  }
}

}  // namespace weft::emu
