// Thread-block clusters (sm_90) for the host warp emulator (warp_emu.h): a cluster's blocks run at once, all
// their threads as std::threads; cluster_sync() is a barrier over every one of them, and peer(p, rank) maps an
// address in this block's shared memory to the same offset in block `rank`'s (distributed shared memory).
// Used by the emulator tests of the kernel bodies that reduce over a cluster (lora_bgmv_fused_emu.cc,
// lora_shrink_mma_emu.cc).
#pragma once
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "warp_emu.h"

namespace weft::emu {

// One cluster's shared state: its blocks' shared memory and the barrier over all of their threads.
struct Cluster {
  Cluster(int blocks, size_t smem_bytes)
      : bar(blocks * pm::kThreads), size(blocks), stride((smem_bytes + 127) / 128 * 128),
        mem(stride * blocks / sizeof(std::max_align_t) + 1) {
    // Shared memory starts undefined on a GPU: NaN bytes make a read of something never written show up.
    std::memset(mem.data(), 0xff, mem.size() * sizeof(std::max_align_t));
  }
  char* smem(int rank) { return reinterpret_cast<char*>(mem.data()) + stride * rank; }
  std::barrier<> bar;
  int size;
  size_t stride;
  std::vector<std::max_align_t> mem;
};
inline thread_local Cluster* tl_cluster = nullptr;
inline thread_local int tl_cluster_rank = 0;

template <DType kD> struct ClusterEmuOps : EmuOps<kD> {
  static void cluster_sync() { tl_cluster->bar.arrive_and_wait(); }
  template <class T> static T* peer(T* p, int rank) {
    const char* mine = tl_cluster->smem(tl_cluster_rank);
    const std::ptrdiff_t offset = reinterpret_cast<const char*>(p) - mine;
    if (offset < 0 || offset >= static_cast<std::ptrdiff_t>(tl_cluster->stride) || rank < 0 || rank >= tl_cluster->size)
      std::abort();  // not this block's shared memory, or no such block: a GPU would fault or read garbage
    return reinterpret_cast<T*>(tl_cluster->smem(rank) + offset);
  }
};

// Calls f(ClusterEmuOps<kBF16>{}) or f(ClusterEmuOps<kF16>{}) for the 16-bit type d.
template <class F> void with_cluster_ops(DType d, F&& f) {
  if (d == DType::kBF16) f(ClusterEmuOps<DType::kBF16>{});
  else f(ClusterEmuOps<DType::kF16>{});
}

// Runs body(BlockIndex, this block's shared memory) for every block of a (gx, gy, gz) grid whose clusters are
// `size` consecutive blocks along x (gx a multiple of size, as a launch requires): one cluster at a time, all
// of its blocks' threads at once.
inline void run_clusters(int size, int gx, int gy, int gz, size_t smem_bytes,
                         const std::function<void(const pm::BlockIndex&, void*)>& body) {
  if (size < 1 || gx % size != 0) std::abort();
  for (int z = 0; z < gz; ++z) {
    for (int y = 0; y < gy; ++y) {
      for (int x0 = 0; x0 < gx; x0 += size) {
        Cluster cl(size, smem_bytes);
        std::vector<Block> blocks(size);
        std::vector<std::thread> threads;
        for (int c = 0; c < size; ++c) {
          for (int th = 0; th < pm::kThreads; ++th) {
            threads.emplace_back([&, c, th] {
              tl_block = &blocks[c];
              tl_thread = th;
              tl_cluster = &cl;
              tl_cluster_rank = c;
              body(pm::BlockIndex{th, x0 + c, y, z}, cl.smem(c));
            });
          }
        }
        for (std::thread& t : threads) t.join();
      }
    }
  }
}

}  // namespace weft::emu
