// The pool behind parallel_for (parallel.h): persistent workers parked on a condition variable; a loop is
// published as a generation number, each worker takes its own chunk index, and the caller runs chunk 0 and
// waits for the rest. The pool object is never destroyed: workers parked at process exit are simply ended.
#include "cpu/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace weft::cpu {
namespace {

thread_local bool t_in_chunk = false;

class Pool {
 public:
  void resize(int threads) {
    std::lock_guard<std::mutex> busy(run_mu_);  // never while a loop runs
    const int want = std::max(threads, 1) - 1;
    while (static_cast<int>(workers_.size()) < want) {
      const int index = static_cast<int>(workers_.size()) + 1;
      workers_.emplace_back([this, index] { work(index); });
      workers_.back().detach();
    }
    active_.store(want + 1);
  }
  int threads() const { return active_.load(); }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
    const int64_t max_chunks = grain > 0 ? (n + grain - 1) / grain : n;
    const int chunks = static_cast<int>(std::min<int64_t>(threads(), max_chunks));
    std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
    if (chunks <= 1 || t_in_chunk || !busy.owns_lock()) {
      f(0, n);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      f_ = &f;
      n_ = n;
      chunks_ = chunks;
      pending_ = chunks - 1;
      error_ = nullptr;
      generation_++;
    }
    cv_.notify_all();
    run_chunk(0);
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return pending_ == 0; });
    f_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void run_chunk(int c) {
    const int64_t begin = n_ * c / chunks_, end = n_ * (c + 1) / chunks_;
    t_in_chunk = true;
    try {
      if (begin < end) (*f_)(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
    }
    t_in_chunk = false;
  }

  void work(int index) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (index >= chunks_) continue;  // fewer chunks than workers this time
      }
      run_chunk(index);
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  std::mutex run_mu_;  // one loop at a time
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  std::atomic<int> active_{1};
  const std::function<void(int64_t, int64_t)>* f_ = nullptr;
  int64_t n_ = 0;
  int chunks_ = 0, pending_ = 0;
  uint64_t generation_ = 0;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool* p = new Pool();  // intentionally never destroyed (see the file comment)
  return *p;
}

}  // namespace

void set_num_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  pool().resize(n);
}

int num_threads() { return pool().threads(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  if (n <= 0) return;
  pool().run(n, grain, f);
}

}  // namespace weft::cpu
