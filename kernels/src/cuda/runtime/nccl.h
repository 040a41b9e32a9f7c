// The NCCL collective: a Collective (kernels/src/collectives/collective.h) whose buffers are device memory and
// whose work is enqueued on a CUDA stream. Rank 0 makes the unique id (nccl_unique_id), the TS side sends its 128
// bytes to every rank over NATS, and each rank builds its NcclCollective from it. libnccl.so.2 is loaded at run time.
//
// Ordering: all_reduce_sum and all_gather return once the collective is enqueued on stream(), like NCCL itself;
// kernels enqueued after them on the same stream see the result, the host must call synchronize() first.
// NCCL reduces each element once and broadcasts it, so every rank gets bit-identical sums, as the contract asks.
#pragma once
#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <memory>

#include "collectives/collective.h"
#include "cuda/runtime/dl_loader.h"

namespace weft::cuda {

using NcclUniqueId = std::array<uint8_t, nccl_abi::kUniqueIdBytes>;

// ncclGetUniqueId: called once, by rank 0. Throws when NCCL is missing or fails (the error names libnccl).
NcclUniqueId nccl_unique_id();

enum class NcclType { kF32, kF16, kBF16 };

class NcclCollective final : public Collective {
 public:
  // Joins the group `id` as `rank` of `world` on CUDA device `device`. Blocks until every rank has joined (that is
  // ncclCommInitRank's contract), so call it from a thread that may wait. `stream` null: the collective makes its
  // own non-blocking stream on `device`.
  NcclCollective(const NcclUniqueId& id, int rank, int world, int device, cudaStream_t stream = nullptr);
  ~NcclCollective() override;
  NcclCollective(const NcclCollective&) = delete;
  NcclCollective& operator=(const NcclCollective&) = delete;

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  bool device_pointers() const override { return true; }
  // `data` and `out` are device pointers (fp32). In place: all_reduce_sum; rank-major: all_gather out[world * n].
  void all_reduce_sum(float* data, int64_t n) override;
  void all_gather(const float* in, int64_t n, float* out) override;
  // The same for half-precision activations kept on the device.
  void all_reduce_sum(void* data, int64_t n, NcclType type);
  void all_gather(const void* in, int64_t n, void* out, NcclType type);

  cudaStream_t stream() const { return stream_; }
  int device() const { return device_; }
  // Waits for everything enqueued on stream() (throws with NCCL's or CUDA's reason when it failed).
  void synchronize();

 private:
  const NcclApi* api_ = nullptr;
  nccl_abi::Comm comm_ = nullptr;
  int rank_ = 0, world_ = 1, device_ = 0;
  cudaStream_t stream_ = nullptr;
  bool owns_stream_ = false;
};

std::unique_ptr<Collective> make_nccl_collective(const NcclUniqueId& id, int rank, int world, int device,
                                                 cudaStream_t stream = nullptr);

}  // namespace weft::cuda
