// POSIX shared-memory collective: a sense-counting barrier plus one staging buffer per rank.
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "collectives/collective.h"

namespace weft {

void SoloCollective::all_gather(const float* in, int64_t n, float* out) { std::memcpy(out, in, sizeof(float) * n); }

namespace {

struct alignas(64) ShmHeader {
  std::atomic<uint32_t> arrived;
  std::atomic<uint32_t> generation;
  std::atomic<uint32_t> attached;
};
static_assert(std::atomic<uint32_t>::is_always_lock_free, "cross-process atomics need lock-free uint32");

class ShmCollective final : public Collective {
 public:
  ShmCollective(const std::string& name, int rank, int world, int64_t max_floats, int64_t timeout_ms)
      : name_(name), rank_(rank), world_(world), max_floats_(max_floats), timeout_ms_(timeout_ms) {
    if (world < 1 || rank < 0 || rank >= world) throw std::invalid_argument("shm collective: rank must be in [0, world)");
    if (name.empty() || name[0] != '/') throw std::invalid_argument("shm collective: name must start with '/'");
    bytes_ = sizeof(ShmHeader) + sizeof(float) * static_cast<size_t>(max_floats) * world;
    const int fd = shm_open(name.c_str(), O_CREAT | O_RDWR, 0600);
    if (fd < 0) throw std::runtime_error("shm collective: shm_open(" + name + ") failed: " + std::strerror(errno));
    if (ftruncate(fd, static_cast<off_t>(bytes_)) != 0) {
      const std::string err = std::strerror(errno);
      close(fd);
      throw std::runtime_error("shm collective: ftruncate(" + name + ") failed: " + err);
    }
    base_ = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base_ == MAP_FAILED) throw std::runtime_error("shm collective: mmap failed: " + std::string(std::strerror(errno)));
    header_ = static_cast<ShmHeader*>(base_);
    bufs_ = reinterpret_cast<float*>(static_cast<char*>(base_) + sizeof(ShmHeader));
    header_->attached.fetch_add(1);
  }
  ~ShmCollective() override {
    munmap(base_, bytes_);
    shm_unlink(name_.c_str());  // first rank to leave removes the name; the mapping lives on for the others
  }
  int rank() const override { return rank_; }
  int world() const override { return world_; }

  void all_reduce_sum(float* data, int64_t n) override {
    for (int64_t off = 0; off < n; off += max_floats_) {
      const int64_t len = n - off < max_floats_ ? n - off : max_floats_;
      std::memcpy(buf(rank_), data + off, sizeof(float) * len);
      barrier();
      for (int64_t i = 0; i < len; ++i) {
        float s = 0;
        for (int r = 0; r < world_; ++r) s += buf(r)[i];  // same order on every rank
        data[off + i] = s;
      }
      barrier();  // nobody overwrites its buffer before all have read it
    }
  }

  void all_gather(const float* in, int64_t n, float* out) override {
    for (int64_t off = 0; off < n; off += max_floats_) {
      const int64_t len = n - off < max_floats_ ? n - off : max_floats_;
      std::memcpy(buf(rank_), in + off, sizeof(float) * len);
      barrier();
      for (int r = 0; r < world_; ++r) std::memcpy(out + r * n + off, buf(r), sizeof(float) * len);
      barrier();
    }
  }

 private:
  float* buf(int r) { return bufs_ + static_cast<int64_t>(r) * max_floats_; }

  void barrier() {
    const uint32_t gen = header_->generation.load(std::memory_order_acquire);
    if (header_->arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == static_cast<uint32_t>(world_)) {
      header_->arrived.store(0, std::memory_order_relaxed);
      header_->generation.fetch_add(1, std::memory_order_release);
      return;
    }
    const auto start = std::chrono::steady_clock::now();
    for (uint64_t spins = 0; header_->generation.load(std::memory_order_acquire) == gen; ++spins) {
      if (spins < 2000) {
        sched_yield();
        continue;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      if ((spins & 255) == 0 && std::chrono::steady_clock::now() - start > std::chrono::milliseconds(timeout_ms_)) {
        throw std::runtime_error("shm collective '" + name_ + "': rank " + std::to_string(rank_) + " waited " +
                                 std::to_string(timeout_ms_) + " ms at a barrier; a peer rank is not responding");
      }
    }
  }

  std::string name_;
  int rank_, world_;
  int64_t max_floats_, timeout_ms_;
  size_t bytes_ = 0;
  void* base_ = nullptr;
  ShmHeader* header_ = nullptr;
  float* bufs_ = nullptr;
};

}  // namespace

std::unique_ptr<Collective> make_shm_collective(const std::string& name, int rank, int world, int64_t max_floats,
                                                int64_t timeout_ms) {
  return std::make_unique<ShmCollective>(name, rank, world, max_floats, timeout_ms);
}

}  // namespace weft
