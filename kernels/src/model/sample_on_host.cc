// The default forward_sample: run the step, then sample every logit row on the host with cpu::sample_token.
// The CPU executor uses it as is (sampling then runs on the libuv worker with the step, off Node's main
// thread); the CUDA executor falls back to it where the logits live on the host anyway (host-staged TP).
#include <stdexcept>
#include <string>

#include "cpu/parallel.h"
#include "model/executor.h"

namespace weft {

std::vector<cpu::SampleResult> sample_on_host(const float* logits, int64_t vocab, const std::vector<RowSampling>& rows) {
  std::vector<cpu::SampleResult> out(rows.size());
  // Rows are independent: each is sampled by exactly one thread of the pool.
  cpu::parallel_for(static_cast<int64_t>(rows.size()), 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const RowSampling& s = rows[r];
      out[r] = cpu::sample_token(logits + r * vocab, vocab, s.params, s.penalty_tokens.data(),
                                 static_cast<int64_t>(s.penalty_tokens.size()), s.top_n);
    }
  });
  return out;
}

void check_sampling_rows(const Batch& batch, const std::vector<RowSampling>& rows) {
  if (rows.size() != batch.logit_rows.size())
    throw std::invalid_argument("forwardSample: " + std::to_string(rows.size()) + " sampling rows for " +
                                std::to_string(batch.logit_rows.size()) + " logit rows; give one per logit row");
}

std::vector<cpu::SampleResult> ModelExecutor::forward_sample(const Batch& batch, const std::vector<RowSampling>& rows) {
  check_sampling_rows(batch, rows);
  const std::vector<float> logits = forward(batch);
  if (rows.empty()) return {};
  return sample_on_host(logits.data(), config().vocab, rows);
}

}  // namespace weft
