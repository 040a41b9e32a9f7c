// The host half of a CUDA MoE layer (cuda_moe.cc): a step's routed rows grouped by expert. Plain host code, also
// built with g++ and checked on the CPU (test/emulated/moe_host.cc).
#pragma once
#include <cstdint>
#include <vector>

namespace weft::cuda {

// ids [tokens·k]: each token's chosen experts (moe_route's order); row_entry [tokens]: each row's adapter entry
// (-1 base). Writes, for the N = tokens·k routed rows grouped by expert (each expert's rows in token order, so a
// sequence's rows stay one run of its adapter):
//   rows[r]     the token routed row r copies;   entries[r]  its adapter entry;
//   src_row[t·k + j], src_w[t·k + j]  token t's j-th expert in ascending expert order: its routed row and the index
//   of its weight in moe_route's [tokens, k] output.
// Returns offset [experts + 1]: expert e's rows are [offset[e], offset[e + 1]). Throws std::runtime_error on an id
// outside [0, experts).
std::vector<int64_t> plan_moe_rows(const int32_t* ids, int64_t tokens, int64_t k, int64_t experts,
                                   const int32_t* row_entry, int32_t* rows, int32_t* entries, int32_t* src_row,
                                   int32_t* src_w);

}  // namespace weft::cuda
