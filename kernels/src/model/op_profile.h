// Where a step's time goes, op by op, when a model's op profile is on (set_op_profile): the step marks the start
// of each op with a label; an op runs until the next mark, the last one until the step ends. The CPU backend
// reads the host clock at each mark (its ops are synchronous); the CUDA backend records an event on its stream
// (cuda/model/op_events.h). Totals are per label, in the order labels first appeared, until taken.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace weft {

struct OpTime {
  std::string op;
  double ms = 0;
  int64_t calls = 0;
};

class OpTotals {
 public:
  void add(const char* op, double ms) {
    auto [it, fresh] = index_.try_emplace(op, ops_.size());
    if (fresh) ops_.push_back({op, 0.0, 0});
    ops_[it->second].ms += ms;
    ops_[it->second].calls += 1;
  }
  std::vector<OpTime> take() {
    index_.clear();
    return std::move(ops_);
  }

 private:
  std::vector<OpTime> ops_;
  std::unordered_map<std::string, size_t> index_;
};

// The CPU backend's clock: mark(op) ends the running op and starts `op`; finish() ends the last. Off: no-ops.
class HostOpClock {
 public:
  void set(bool on) {
    on_ = on;
    op_ = nullptr;
  }
  void mark(const char* op) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    if (op_) totals_.add(op_, std::chrono::duration<double, std::milli>(now - t0_).count());
    op_ = op;
    t0_ = now;
  }
  void finish() {
    if (!on_ || !op_) return;
    totals_.add(op_, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count());
    op_ = nullptr;
  }
  std::vector<OpTime> take() { return totals_.take(); }

 private:
  bool on_ = false;
  const char* op_ = nullptr;
  std::chrono::steady_clock::time_point t0_;
  OpTotals totals_;
};

}  // namespace weft
