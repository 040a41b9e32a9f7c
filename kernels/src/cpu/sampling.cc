// Logits processing and token sampling, TGI/transformers semantics:
// repetition penalty -> temperature -> top-k -> top-p -> min-p -> typical-p -> (greedy | seeded multinomial).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>
#include <utility>

#include "cpu/ops.h"

namespace weft::cpu {
namespace {

// splitmix64: a stateless hash, so draw n of a sequence depends only on (seed, n) — never on the
// batch the sequence happened to share, or on how many other sequences sampled before it.
uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
double uniform01(uint64_t seed, uint64_t index) {
  return static_cast<double>(mix(mix(seed) ^ (index * 0xd1b54a32d192ed03ULL)) >> 11) * (1.0 / 9007199254740992.0);
}

// exp(s - max) in (0, 1] as a 2^40 fixed-point integer; the same expression as the GPU's fixed_weight.
uint64_t fixed_weight(double e) { return e > 0.0 ? static_cast<uint64_t>(e * 1099511627776.0 + 0.5) : 0; }

// min-p: a token is kept when its weight is at least min_p of the top token's, whose weight is fixed_weight(1).
bool min_p_keeps(uint64_t w, float min_p) { return static_cast<double>(w) >= static_cast<double>(min_p) * 1099511627776.0; }

// In the order `before` defines, the first token of `cand` whose inclusive prefix sum of weights `crossed`
// (a predicate monotone along the order, false at 0); *prefix gets the sum before it. -1 when none crosses.
// Quickselect: expected O(|cand|), and the answer is the sorted walk's, whichever pivots are taken.
template <class Before, class Crossed>
int32_t first_crossing(std::vector<int32_t>& cand, const std::vector<uint64_t>& w, const Before& before,
                       const Crossed& crossed, uint64_t* prefix) {
  uint64_t base = 0;  // weight of every token known to come before the working range
  auto lo = cand.begin(), hi = cand.end();
  while (lo != hi) {
    const int32_t pivot = *(lo + (hi - lo) / 2);
    const auto mid = std::partition(lo, hi, [&](int32_t t) { return before(t, pivot); });
    uint64_t ahead = 0;
    for (auto it = lo; it != mid; ++it) ahead += w[*it];
    if (crossed(base + ahead)) {
      hi = mid;
      continue;
    }
    if (crossed(base + ahead + w[pivot])) {
      *prefix = base + ahead;
      return pivot;
    }
    base += ahead + w[pivot];
    std::iter_swap(mid, std::find(mid, hi, pivot));
    lo = mid + 1;
  }
  *prefix = base;
  return -1;
}

// Typical decoding over a kept set of fixed-point weights summing to `total`: its entropy, summed over
// (token, weight) pairs in ascending token order — so the sorted walk and the selection, which hold the kept set
// in different orders, compute the same bits — and a token's measure |(-log p) - H| (infinite at weight 0).
double kept_entropy(const std::vector<std::pair<int32_t, uint64_t>>& ascending, uint64_t total) {
  double h = 0;
  for (const auto& [t, w] : ascending)
    if (w > 0) h -= static_cast<double>(w) / static_cast<double>(total) * std::log(static_cast<double>(w) / static_cast<double>(total));
  return h;
}
double typical_deviation(uint64_t w, uint64_t total, double entropy) {
  return w > 0 ? std::fabs(-std::log(static_cast<double>(w) / static_cast<double>(total)) - entropy) : INFINITY;
}

}  // namespace

float log_softmax_at(const float* logits, int64_t vocab, int32_t token) {
  double mx = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  return static_cast<float>(static_cast<double>(logits[token]) - mx - std::log(sum));
}

SampleResult sample_token(const float* logits, int64_t vocab, const SamplingParams& p, const int32_t* penalty_tokens,
                          int64_t num_penalty_tokens, int32_t top_n) {
  const bool sampling = p.do_sample && p.temperature > 0;
  const bool temper = sampling && p.temperature != 1.0f;
  // Penalty and temperature in float, exactly as the GPU's logits_process does, then held in double. A NaN
  // logit (an overflowed activation) becomes -inf: probability 0, last in the order, on both backends.
  const auto finite_or_low = [](float v) { return std::isnan(v) ? -INFINITY : v; };
  std::vector<double> s(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) s[i] = finite_or_low(temper ? logits[i] / p.temperature : logits[i]);
  // Penalties in float, on the raw logit, then temperature (repetition first, then the additive ones, as vLLM).
  std::unordered_map<int32_t, float> pen;  // token -> penalised logit
  if (p.repetition_penalty != 1.0f) {
    for (int64_t i = 0; i < num_penalty_tokens; ++i) {
      const int32_t t = penalty_tokens[i];
      if (t < 0 || t >= vocab || pen.count(t)) continue;
      const float v = logits[t];
      pen[t] = v < 0.0f ? v * p.repetition_penalty : v / p.repetition_penalty;
    }
  }
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    const int64_t generated = std::min<int64_t>(static_cast<int64_t>(p.draw_index), num_penalty_tokens);
    std::unordered_map<int32_t, int32_t> count;
    for (int64_t i = num_penalty_tokens - generated; i < num_penalty_tokens; ++i) {
      const int32_t t = penalty_tokens[i];
      if (t >= 0 && t < vocab) ++count[t];
    }
    for (const auto& [t, c] : count) {
      const auto it = pen.find(t);
      const float v = it == pen.end() ? logits[t] : it->second;
      pen[t] = v - p.frequency_penalty * static_cast<float>(c) - p.presence_penalty;
    }
  }
  for (const auto& [t, b] : p.logit_bias) {
    if (t < 0 || t >= vocab) continue;
    const auto it = pen.find(t);
    pen[t] = (it == pen.end() ? logits[t] : it->second) + b;
  }
  for (const auto& [t, v] : pen) s[t] = finite_or_low(temper ? v / p.temperature : v);
  if (!p.allowed_mask.empty()) {
    const int64_t covered = static_cast<int64_t>(p.allowed_mask.size()) * 8;
    for (int64_t i = 0; i < vocab; ++i)
      if (i >= covered || !(p.allowed_mask[i >> 3] & (1u << (i & 7)))) s[i] = -INFINITY;
  }
  // Log-probabilities of the processed distribution before truncation: what `details` reports.
  double mx = -INFINITY;
  for (double v : s) mx = std::max(mx, v);
  // exp(s - max) once: the log-sum-exp sums it, and a sampled draw weighs tokens by it (fixed_weight).
  std::vector<double> ex(sampling ? static_cast<size_t>(vocab) : 0);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    const double e = std::exp(s[i] - mx);
    sum += e;
    if (sampling) ex[i] = e;
  }
  const double lse = mx + std::log(sum);
  const auto logp = [&](int32_t t) { return static_cast<float>(s[t] - lse); };

  // The order is by value, ties to the lower id (so greedy equals argmax as torch computes it). Only the
  // prefix that is used gets sorted: top_n for greedy, max(top_k, top_n) with top-k, all of it for top-p alone.
  // A strict weak order even with NaN logits (std::sort must never be handed less): NaN sorts after every number.
  const auto before = [&](int32_t a, int32_t b) {
    const double x = s[a], y = s[b];
    if (x > y) return true;
    if (x < y) return false;
    const bool nx = std::isnan(x), ny = std::isnan(y);
    return nx == ny ? a < b : ny;
  };
  const int64_t n_top = std::min<int64_t>(std::max<int32_t>(top_n, 0), vocab);
  // Sampling without top-k draws by selection (the `select` block below) and sorts only the top list.
  const bool select = sampling && p.top_k <= 0 && mx > -INFINITY;
  int64_t prefix = n_top;
  if (sampling && !select) prefix = std::max<int64_t>(prefix, p.top_k > 0 ? std::min<int64_t>(p.top_k, vocab) : vocab);
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  if (prefix >= vocab) std::sort(order.begin(), order.end(), before);
  else if (prefix > 0) std::partial_sort(order.begin(), order.begin() + prefix, order.end(), before);

  SampleResult res{};
  for (int64_t i = 0; i < n_top; ++i) res.top.emplace_back(order[i], logp(order[i]));
  if (!sampling) {
    int32_t best = 0;
    for (int32_t i = 1; i < vocab; ++i)
      if (before(i, best)) best = i;
    res.token = best;
    res.logprob = logp(best);
    return res;
  }
  if (select) {
    // The sorted walk below, without the sort: the kept set (top-p) and the draw are each the first token whose
    // cumulative weight crosses a threshold, found by quickselect over the tokens of positive weight (a token of
    // weight 0 never crosses, and adds nothing to a sum). Same weights and comparisons, so the same token:
    // tests check it against top_k = vocab, which takes the sorted walk. 34 ms -> a few ms at a 128k vocabulary.
    std::vector<uint64_t> w(static_cast<size_t>(vocab));
    std::vector<int32_t> cand;
    cand.reserve(static_cast<size_t>(vocab));
    uint64_t total = 0;
    for (int32_t i = 0; i < vocab; ++i) {
      total += (w[i] = fixed_weight(ex[i]));
      if (w[i] > 0) cand.push_back(i);
    }
    uint64_t mass = total, before_sum = 0;
    int32_t last = -1;  // the walk's fallback when nothing crosses: the last kept token in order
    // Keeps the smallest prefix (in `order`) of the kept set whose mass reaches `fraction` of it: the first token
    // whose cumulative weight crosses, and all before it. `c > 0` too: first_crossing needs a predicate false at 0,
    // and a fraction of 0 keeps the first token alone (the walk's "at least one"), the first of positive weight.
    const auto keep_prefix = [&](float fraction, const auto& order) {
      const double thr = static_cast<double>(fraction) * static_cast<double>(mass);
      const auto reached = [&](uint64_t c) { return c > 0 && static_cast<double>(c) >= thr; };
      const int32_t boundary = first_crossing(cand, w, order, reached, &before_sum);
      if (boundary < 0) return;
      mass = before_sum + w[boundary];
      last = boundary;
      cand.erase(std::remove_if(cand.begin(), cand.end(), [&](int32_t t) { return t != boundary && !order(t, boundary); }),
                 cand.end());
    };
    if (p.top_p < 1.0f) keep_prefix(p.top_p, before);
    if (p.min_p > 0.0f) {  // the top token (weight 2^40) always stays
      cand.erase(std::remove_if(cand.begin(), cand.end(), [&](int32_t t) { return !min_p_keeps(w[t], p.min_p); }),
                 cand.end());
      mass = 0;
      for (const int32_t t : cand) mass += w[t];
      last = cand.front();
      for (const int32_t t : cand)
        if (before(last, t)) last = t;
    }
    if (last < 0) {  // every token is kept: the last in the whole order (weight 0 included)
      last = 0;
      for (int32_t i = 1; i < vocab; ++i)
        if (before(last, i)) last = i;
    }
    // Typical-p over the kept set: the walk's order becomes closeness to the entropy (ties in the order above),
    // and the kept set its smallest prefix reaching typical_p of the mass — the first crossing again.
    const bool typical = p.typical_p < 1.0f;
    std::vector<double> dev;
    if (typical) {
      std::vector<char> kept(static_cast<size_t>(vocab), 0);
      for (const int32_t t : cand) kept[t] = 1;
      std::vector<std::pair<int32_t, uint64_t>> ascending;
      ascending.reserve(cand.size());
      for (int32_t t = 0; t < vocab; ++t)
        if (kept[t]) ascending.emplace_back(t, w[t]);
      const double entropy = kept_entropy(ascending, mass);
      dev.assign(static_cast<size_t>(vocab), INFINITY);
      for (const int32_t t : cand) dev[t] = typical_deviation(w[t], mass, entropy);
    }
    const auto walk_before = [&](int32_t a, int32_t b) {
      if (!typical) return before(a, b);
      return dev[a] < dev[b] || (dev[a] == dev[b] && before(a, b));
    };
    if (typical) keep_prefix(p.typical_p, walk_before);
    const double u = uniform01(p.seed, p.draw_index) * static_cast<double>(mass);
    const int32_t pick =
        first_crossing(cand, w, walk_before, [&](uint64_t c) { return static_cast<double>(c) > u; }, &before_sum);
    res.token = pick >= 0 ? pick : last;
    res.logprob = logp(res.token);
    return res;
  }

  // The kept set and the draw work on fixed-point weights w_i = round(exp(s_i - max) * 2^40): integer sums are
  // exact in any order, so the GPU's parallel scans (cuda/kernels/sampling.cu) make the same choices as this
  // sequential loop, boundaries included. A token under 2^-41 of the top one's probability gets weight 0.
  size_t keep = order.size();
  if (p.top_k > 0) keep = std::min(keep, static_cast<size_t>(p.top_k));
  std::vector<uint64_t> w(keep);
  uint64_t total = 0;
  for (size_t i = 0; i < keep; ++i) total += (w[i] = fixed_weight(ex[order[i]]));
  if (p.top_p < 1.0f) {
    // Keep the smallest prefix whose mass reaches top_p (at least one token).
    const double thr = static_cast<double>(p.top_p) * static_cast<double>(total);
    uint64_t cum = 0;
    size_t k = 0;
    while (k < keep) {
      cum += w[k++];
      if (static_cast<double>(cum) >= thr) break;
    }
    keep = k;
  }
  if (p.min_p > 0.0f) {  // weights fall along the order, so the kept tokens are a prefix (the first always stays)
    size_t k = 1;
    while (k < keep && min_p_keeps(w[k], p.min_p)) ++k;
    keep = k;
    w.resize(keep);
  }
  if (p.typical_p < 1.0f) {
    // Typical decoding (transformers' TypicalLogitsWarper over the tokens that survived top-k/top-p, renormalised):
    // rank by |(-log p) - entropy|, keep the smallest set reaching typical_p of the mass, counted in the exact
    // fixed-point weights like top-p. Here with top-k; without it the `select` block does the same by selection.
    uint64_t kept_total = 0;
    std::vector<std::pair<int32_t, uint64_t>> ascending(keep);
    for (size_t i = 0; i < keep; ++i) {
      kept_total += w[i];
      ascending[i] = {order[i], w[i]};
    }
    std::sort(ascending.begin(), ascending.end());
    const double entropy = kept_entropy(ascending, kept_total);
    std::vector<double> dev(keep);
    for (size_t i = 0; i < keep; ++i) dev[i] = typical_deviation(w[i], kept_total, entropy);
    std::vector<size_t> idx(keep);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return dev[a] < dev[b]; });
    const double thr = static_cast<double>(p.typical_p) * static_cast<double>(kept_total);
    uint64_t cum = 0;
    std::vector<int32_t> kept_tokens;
    std::vector<uint64_t> kept_w;
    for (size_t i = 0; i < keep; ++i) {
      kept_tokens.push_back(order[idx[i]]);
      kept_w.push_back(w[idx[i]]);
      cum += w[idx[i]];
      if (cum > 0 && static_cast<double>(cum) >= thr) break;
    }
    for (size_t i = 0; i < kept_tokens.size(); ++i) order[i] = kept_tokens[i];
    w = kept_w;
    keep = kept_tokens.size();
  }
  uint64_t mass = 0;
  for (size_t i = 0; i < keep; ++i) mass += w[i];
  const double u = uniform01(p.seed, p.draw_index) * static_cast<double>(mass);
  uint64_t cum = 0;
  size_t pick = keep - 1;
  for (size_t i = 0; i < keep; ++i) {
    cum += w[i];
    if (static_cast<double>(cum) > u) {
      pick = i;
      break;
    }
  }
  res.token = order[pick];
  res.logprob = logp(res.token);
  return res;
}

}  // namespace weft::cpu
