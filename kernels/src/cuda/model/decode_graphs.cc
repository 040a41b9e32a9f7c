#include "cuda/model/decode_graphs.h"

#include <stdexcept>
#include <string>

#include "cuda/runtime/check.h"

namespace weft::cuda {

int32_t DecodeGraphs::bucket_rows(int64_t n) {
  for (int32_t b = 1; b <= kMaxRows; b *= 2)
    if (n <= b) return b;
  return 0;
}

int32_t DecodeGraphs::bucket_stride(int64_t n) {
  int64_t b = 1;
  while (b < n) b *= 2;
  return static_cast<int32_t>(b);
}

void DecodeGraphs::clear() noexcept {
  for (auto& [key, e] : graphs_)
    if (e.exec) cudaGraphExecDestroy(e.exec);
  graphs_.clear();
}

void DecodeGraphs::launch(const GraphKey& key, uint64_t stamp, cudaStream_t stream,
                          const std::function<void()>& enqueue) {
  auto it = graphs_.find(key);
  if (it != graphs_.end() && it->second.stamp != stamp) {
    cudaGraphExecDestroy(it->second.exec);
    graphs_.erase(it);
    it = graphs_.end();
  }
  if (it == graphs_.end()) {
    const std::string what = "CUDA graph of the decode step (" + std::to_string(key.rows) + " rows, block tables " +
                             std::to_string(key.table_stride) + (key.lora ? ", LoRA)" : ")");
    const std::string hint = "; create the model with cudaGraphs: false to run without graphs";
    // Warm-up: one eager run loads every kernel module (lazy loading) and makes the cuBLASLt plans outside the
    // capture. Running the step twice is harmless: it rewrites the same KV slots and recomputes the rest.
    enqueue();
    WEFT_CUDA_CHECK(cudaStreamSynchronize(stream));
    // Thread-local mode: other threads (another model, a JS-thread upload) are not forbidden anything meanwhile.
    WEFT_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    try {
      enqueue();
    } catch (const std::exception& e) {
      cudaGraph_t broken = nullptr;
      cudaStreamEndCapture(stream, &broken);
      if (broken) cudaGraphDestroy(broken);
      cudaGetLastError();
      throw std::runtime_error("capturing the " + what + " failed: " + e.what() + hint);
    }
    cudaGraph_t graph = nullptr;
    cudaError_t err = cudaStreamEndCapture(stream, &graph);
    cudaGraphExec_t exec = nullptr;
    if (err == cudaSuccess) err = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw std::runtime_error("capturing the " + what + " failed: " + cudaGetErrorName(err) + " (" +
                               cudaGetErrorString(err) + ")" + hint);
    }
    it = graphs_.emplace(key, Entry{exec, stamp}).first;
  }
  WEFT_CUDA_CHECK(cudaGraphLaunch(it->second.exec, stream));
}

}  // namespace weft::cuda
