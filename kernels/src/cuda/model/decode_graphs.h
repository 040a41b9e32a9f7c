// CUDA graphs of the decode step, one per shape: rows bucketed to 1, 2, 4, ..., 128 (padded sequences),
// block-table width bucketed to a power of two (it sets the attention grid), with or without LoRA launches,
// DoRA's and the token embedding's LoRA. A graph is captured on first use and replayed after; it bakes in every
// device address and launch shape of the step, so the executor stamps each capture with a generation it bumps
// whenever a buffer the step touches is reallocated (or the LoRA rank cap grows); a stale graph is captured again.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <map>
#include <tuple>

namespace weft::cuda {

struct GraphKey {
  int32_t rows = 0, table_stride = 0;
  bool lora = false;
  bool dora = false;   // some row uses a DoRA adapter: the graph has the DoRA scale launches (cuda_lora.cc)
  bool embed = false;  // some row's adapter has LoRA on the token embedding: the graph has its launch
  bool operator<(const GraphKey& o) const {
    return std::tie(rows, table_stride, lora, dora, embed) < std::tie(o.rows, o.table_stride, o.lora, o.dora, o.embed);
  }
};

class DecodeGraphs {
 public:
  static constexpr int32_t kMaxRows = 128;
  // Smallest bucket (1, 2, 4, ..., 128) holding n rows; 0 when n > 128.
  static int32_t bucket_rows(int64_t n);
  // Smallest power of two >= n (n >= 1).
  static int32_t bucket_stride(int64_t n);

  DecodeGraphs() = default;
  ~DecodeGraphs() { clear(); }
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  // Launches key's graph on `stream`; first captures `enqueue` (which must only enqueue work on `stream`:
  // no host synchronisation, no allocation, and it must be safe to run twice) when there is none or it
  // carries another stamp, after one eager warm-up run. Throws with the reason when capture or instantiation
  // fails; the stream is left out of capture mode.
  void launch(const GraphKey& key, uint64_t stamp, cudaStream_t stream, const std::function<void()>& enqueue);
  void clear() noexcept;
  size_t size() const { return graphs_.size(); }

 private:
  struct Entry {
    cudaGraphExec_t exec = nullptr;
    uint64_t stamp = 0;
  };
  std::map<GraphKey, Entry> graphs_;
};

}  // namespace weft::cuda
