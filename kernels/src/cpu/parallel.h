// The CPU backend's worker threads: one process-wide pool that splits a loop over independent outputs
// (GEMM output rows, attention sequences, sampled rows) into contiguous chunks. Each output is computed by
// exactly the code a single thread would run, so results are bit-identical for any thread count — the CPU
// backend stays the test oracle while using the machine's cores.
#pragma once
#include <cstdint>
#include <functional>

namespace weft::cpu {

// Threads the pool uses, the calling thread included (1 = no workers). 0 = one per hardware thread.
// Set by the executor from the plan's cpuThreads; the last call in a process wins.
void set_num_threads(int n);
int num_threads();

// Runs f(begin, end) over [0, n) in at most num_threads() contiguous chunks of at least `grain` items, on the
// workers and the calling thread, and returns when every chunk is done. Runs f(0, n) on the caller when the work
// is one chunk, when called from inside a chunk (nesting), or when another loop holds the pool (two models in
// one process stepping at once) — never waits for the pool. An exception in a chunk is rethrown here.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

}  // namespace weft::cpu
