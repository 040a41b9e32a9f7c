// Collectives used inside a tensor-parallel forward pass. One instance per rank.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace weft {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // Element-wise sum across ranks, in place. Every rank gets bit-identical results (fixed order).
  virtual void all_reduce_sum(float* data, int64_t n) = 0;
  // out = concat over ranks (rank-major) of each rank's `in` [n].
  virtual void all_gather(const float* in, int64_t n, float* out) = 0;
  // True when data/in/out are device pointers (NCCL); false for host floats (solo, shm). The CUDA executor
  // stages its device tensors through pinned host memory for a host collective.
  virtual bool device_pointers() const { return false; }
};

// World of one: no communication.
class SoloCollective final : public Collective {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  void all_reduce_sum(float*, int64_t) override {}
  void all_gather(const float* in, int64_t n, float* out) override;
};

// Ranks on one host exchange CPU tensors through a POSIX shared-memory segment.
// `name` must be unique per group (the launcher makes one per start); every rank opens the same name.
std::unique_ptr<Collective> make_shm_collective(const std::string& name, int rank, int world, int64_t max_floats,
                                                int64_t timeout_ms);

}  // namespace weft
