#include "cuda/model/moe_plan.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace weft::cuda {

std::vector<int64_t> plan_moe_rows(const int32_t* ids, int64_t tokens, int64_t k, int64_t experts,
                                   const int32_t* row_entry, int32_t* rows, int32_t* entries, int32_t* src_row,
                                   int32_t* src_w) {
  const int64_t n = tokens * k;
  std::vector<int64_t> offset(static_cast<size_t>(experts + 1), 0);
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= experts) throw std::runtime_error("moe: the router chose no valid expert");
    offset[static_cast<size_t>(ids[i]) + 1]++;
  }
  std::partial_sum(offset.begin(), offset.end(), offset.begin());
  std::vector<int64_t> cursor(offset.begin(), offset.end() - 1);
  std::vector<int32_t> order(static_cast<size_t>(k));
  for (int64_t t = 0; t < tokens; ++t) {
    const int32_t* mine = ids + t * k;
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return mine[a] < mine[b]; });
    for (int64_t j = 0; j < k; ++j) {
      const int32_t jj = order[static_cast<size_t>(j)];
      const int64_t r = cursor[static_cast<size_t>(mine[jj])]++;
      rows[r] = static_cast<int32_t>(t);
      entries[r] = row_entry[t];
      src_row[t * k + j] = static_cast<int32_t>(r);
      src_w[t * k + j] = static_cast<int32_t>(t * k + jj);
    }
  }
  return offset;
}

}  // namespace weft::cuda
