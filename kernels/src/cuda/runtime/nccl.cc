#include "cuda/runtime/nccl.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"

namespace weft::cuda {

namespace {

void nccl_check(nccl_abi::Result r, const char* call, const std::string& context) {
  if (r != nccl_abi::kSuccess)
    throw std::runtime_error(std::string("NCCL ") + call + " failed: " + nccl_result_text(r) + " (" + context + ")");
}

int nccl_type(NcclType t) {
  switch (t) {
    case NcclType::kF32: return nccl_abi::kFloat32;
    case NcclType::kF16: return nccl_abi::kFloat16;
    case NcclType::kBF16: return nccl_abi::kBfloat16;
  }
  return nccl_abi::kFloat32;
}

}  // namespace

NcclUniqueId nccl_unique_id() {
  const NcclApi& api = nccl();
  nccl_abi::UniqueId raw{};
  nccl_check(api.get_unique_id(&raw), "ncclGetUniqueId", api.path);
  NcclUniqueId id{};
  std::memcpy(id.data(), raw.internal, id.size());
  return id;
}

NcclCollective::NcclCollective(const NcclUniqueId& id, int rank, int world, int device, cudaStream_t stream)
    : rank_(rank), world_(world), device_(device), stream_(stream) {
  if (world < 1 || rank < 0 || rank >= world)
    throw std::invalid_argument("NCCL collective: rank " + std::to_string(rank) + " is outside world " +
                                std::to_string(world));
  std::string why;
  if (!cuda_available(&why)) throw std::runtime_error("NCCL collective needs a GPU: " + why);
  api_ = &nccl();
  // NCCL binds the communicator (and the stream below) to the device current at init; the caller's current
  // device is restored afterwards, as everywhere in the runtime.
  DeviceScope scope(device);
  if (!stream_) {
    WEFT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    owns_stream_ = true;
  }
  nccl_abi::UniqueId raw{};
  std::memcpy(raw.internal, id.data(), id.size());
  const nccl_abi::Result r = api_->comm_init_rank(&comm_, world, raw, rank);
  if (r != nccl_abi::kSuccess) {
    if (owns_stream_) cudaStreamDestroy(stream_);
    nccl_check(r, "ncclCommInitRank",
               "rank " + std::to_string(rank) + " of " + std::to_string(world) + " on device " + std::to_string(device));
  }
}

NcclCollective::~NcclCollective() {
  // Work still queued must finish before the communicator goes away; errors here have no one left to tell.
  if (stream_) cudaStreamSynchronize(stream_);
  if (comm_) api_->comm_destroy(comm_);
  if (owns_stream_ && stream_) cudaStreamDestroy(stream_);
}

void NcclCollective::all_reduce_sum(float* data, int64_t n) { all_reduce_sum(data, n, NcclType::kF32); }

void NcclCollective::all_gather(const float* in, int64_t n, float* out) { all_gather(in, n, out, NcclType::kF32); }

void NcclCollective::all_reduce_sum(void* data, int64_t n, NcclType type) {
  if (n < 0) throw std::invalid_argument("NCCL all_reduce_sum: n must be >= 0");
  if (n == 0) return;
  nccl_check(api_->all_reduce(data, data, static_cast<size_t>(n), nccl_type(type), nccl_abi::kSum, comm_, stream_),
             "ncclAllReduce", std::to_string(n) + " elements, rank " + std::to_string(rank_));
}

void NcclCollective::all_gather(const void* in, int64_t n, void* out, NcclType type) {
  if (n < 0) throw std::invalid_argument("NCCL all_gather: n must be >= 0");
  if (n == 0) return;
  nccl_check(api_->all_gather(in, out, static_cast<size_t>(n), nccl_type(type), comm_, stream_), "ncclAllGather",
             std::to_string(n) + " elements per rank, rank " + std::to_string(rank_));
}

void NcclCollective::synchronize() { WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

std::unique_ptr<Collective> make_nccl_collective(const NcclUniqueId& id, int rank, int world, int device,
                                                 cudaStream_t stream) {
  return std::make_unique<NcclCollective>(id, rank, world, device, stream);
}

}  // namespace weft::cuda
