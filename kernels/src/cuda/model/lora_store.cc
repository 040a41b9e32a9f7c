#include "cuda/model/lora_store.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cuda/runtime/check.h"

namespace weft::cuda {

namespace {
LoraData data_of(DType d) { return d == DType::kBF16 ? LoraData::kBF16 : d == DType::kF16 ? LoraData::kF16 : LoraData::kF32; }

// One array of a part into the staged memory: float32 through the uploader (converted on the device), 16-bit
// patterns already in the model's format copied as they are (half the PCIe bytes, no conversion).
void put(const void* src, int64_t n, LoraData data, void* dst, DType dt, Uploader& up, cudaStream_t stream) {
  if (data == LoraData::kF32) {
    up.enqueue(static_cast<const float*>(src), n, dst, dt, stream);
    return;
  }
  if (n > 0) WEFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(uint16_t) * static_cast<size_t>(n), cudaMemcpyHostToDevice, stream));
}

const char* module_name(int module) {
  switch (module) {
    case kQkv: return "qkv";
    case kO: return "o";
    case kUp: return "up";
    case kDown: return "down";
    case kQb: return "q_b";
    case kKvb: return "kv_b";
    case kLmHead: return "lm_head";
    case kEmbed: return "embed";
  }
  return "?";
}
}  // namespace

LoraStore::LoraStore(const ModelConfig& cfg, DType dtype)
    : cfg_(cfg), dtype_(dtype), entries_(static_cast<int32_t>(cfg.adapter_slots)),
      num_dense_tables_(static_cast<int>(cfg.layers) * kNumLayerModules + 2),
      num_tables_(num_dense_tables_ + static_cast<int>(cfg.layers * experts_held(cfg) * 2)) {
  size_t at = 0;
  layouts_.resize(static_cast<size_t>(num_tables_));
  for (int t = 0; t < num_tables_; ++t) {
    const size_t n = slices_of(module_of(t), expert_of(t)).size(), e = n * static_cast<size_t>(entries_);
    Layout& l = layouts_[t];
    l.base = at;
    l.a = at;
    l.b = l.a + e * sizeof(void*);
    l.mag = l.b + e * sizeof(void*);
    l.rank = l.mag + e * sizeof(void*);
    l.scale = l.rank + e * sizeof(int32_t);
    l.out_offset = l.scale + e * sizeof(float);
    l.out_len = l.out_offset + n * sizeof(int32_t);
    l.end = round_up(l.out_len + n * sizeof(int32_t), 16);
    at = l.end;
  }
  blob_.ensure(at);
  std::memset(blob_.as<uint8_t>(), 0, at);
  for (int t = 0; t < num_tables_; ++t) {
    const std::vector<Slice> s = slices_of(module_of(t), expert_of(t));
    for (size_t k = 0; k < s.size(); ++k) {
      host<int32_t>(t, &Layout::out_offset)[k] = s[k].offset;
      host<int32_t>(t, &Layout::out_len)[k] = s[k].len;
    }
  }
  dirty_.assign(static_cast<size_t>(num_tables_), true);
  device_.allocate(blob_.bytes());
  slots_.resize(static_cast<size_t>(entries_));
  const char* d = device_.as<const char>();
  for (int t = 0; t < num_tables_; ++t) {
    const Layout& l = layouts_[t];
    LoraTable x;
    x.a = reinterpret_cast<const void* const*>(d + l.a);
    x.b = reinterpret_cast<const void* const*>(d + l.b);
    x.mag = reinterpret_cast<const float* const*>(d + l.mag);
    x.rank = reinterpret_cast<const int32_t*>(d + l.rank);
    x.scale = reinterpret_cast<const float*>(d + l.scale);
    x.out_offset = reinterpret_cast<const int32_t*>(d + l.out_offset);
    x.out_len = reinterpret_cast<const int32_t*>(d + l.out_len);
    for (const Slice& s : slices_of(module_of(t), expert_of(t))) {
      x.num_slices++;
      x.max_out_len = std::max(x.max_out_len, s.len);
    }
    x.num_entries = entries_;
    tables_.push_back(x);
  }
}

std::vector<LoraStore::Slice> LoraStore::slices_of(int module, int expert) const {
  if (expert >= 0) {  // an expert's gate|up or down
    const auto inter = static_cast<int32_t>(expert_width(cfg_, expert));
    if (module == kUp) return {{0, inter}, {inter, inter}};
    return {{0, static_cast<int32_t>(cfg_.hidden)}};
  }
  const auto q = static_cast<int32_t>(cfg_.heads_local * cfg_.head_dim);
  const auto kv = static_cast<int32_t>(cfg_.kv_heads_local * cfg_.head_dim);
  const auto inter = static_cast<int32_t>(cfg_.intermediate_local);
  switch (module) {
    case kQkv:
      if (is_mla(cfg_)) {  // [q_a or q | kv_a | k_rope]
        const auto qa = static_cast<int32_t>(cfg_.mla_q_rank > 0 ? cfg_.mla_q_rank : q);
        const auto kvr = static_cast<int32_t>(cfg_.mla_kv_rank), rope = static_cast<int32_t>(cfg_.rotary_dim);
        return {{0, qa}, {qa, kvr}, {qa + kvr, rope}};
      }
      return {{0, q}, {q, kv}, {q + kv, kv}};
    case kQb: case kKvb:
      if (module_out(cfg_, module) < 0) return {};
      return {{0, static_cast<int32_t>(module_out(cfg_, module))}};
    case kUp:
      if (gated_mlp(cfg_)) return {{0, inter}, {inter, inter}};
      return {{0, inter}};
    case kO: case kDown: return {{0, static_cast<int32_t>(cfg_.hidden)}};
    case kLmHead: return {{0, static_cast<int32_t>(cfg_.vocab_local)}};
    case kEmbed: return {{0, static_cast<int32_t>(cfg_.hidden)}};
  }
  return {};
}

int LoraStore::table_index(int layer, int module, int expert) const {
  if (expert >= 0) return num_dense_tables_ + static_cast<int>((layer * experts_held(cfg_) + expert) * 2) + (module == kDown ? 1 : 0);
  return module == kEmbed ? num_dense_tables_ - 1 : module == kLmHead ? num_dense_tables_ - 2 : layer * kNumLayerModules + module;
}

std::unique_ptr<StagedLora> LoraStore::stage(const std::vector<LoraPartRef>& parts, Uploader& up,
                                             cudaStream_t stream) const {
  auto staged = std::make_unique<StagedLora>();
  staged->owner_ = this;
  const size_t ds = dtype_bytes(dtype_);
  std::vector<bool> taken(static_cast<size_t>(num_tables_) * kMaxSlices, false);
  std::vector<size_t> a_at(parts.size()), b_at(parts.size()), mag_at(parts.size());
  size_t total = 0;
  int64_t most = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const LoraPartRef& part = parts[i];
    check_lora_part(cfg_, part);
    const std::string where = "lora: layer " + std::to_string(part.layer) + " module " + module_name(part.module) +
                              (part.expert >= 0 ? " expert " + std::to_string(part.expert) : std::string());
    if (part.data != LoraData::kF32 && part.data != data_of(dtype_))
      throw std::invalid_argument(where + ": the part is stored as " + lora_data_name(part.data) +
                                  " but the model holds " + lora_data_name(data_of(dtype_)) +
                                  "; plan it in float32 or in the model's dtype");
    if (part.rank > kMaxRank)
      throw std::invalid_argument(where + ": rank " + std::to_string(part.rank) +
                                  " is above the CUDA backend's limit " + std::to_string(kMaxRank));
    const std::vector<Slice> slices = slices_of(part.module, part.expert);
    int k = 0;
    while (k < static_cast<int>(slices.size()) &&
           (slices[k].offset != part.out_offset || slices[k].len != part.out_len))
      ++k;
    if (k == static_cast<int>(slices.size()))
      throw std::invalid_argument(where + ": the part covers output rows " + std::to_string(part.out_offset) + "+" +
                                  std::to_string(part.out_len) +
                                  ", which is not one whole sub-block of the module (q|k|v, gate|up); the CUDA "
                                  "backend holds one part per sub-block");
    const int t = table_index(part.layer, part.module, part.expert);
    if (taken[static_cast<size_t>(t) * kMaxSlices + k])
      throw std::invalid_argument(where + ": sub-block " + std::to_string(k) +
                                  " has two parts (the CUDA backend holds one part per sub-block)");
    taken[static_cast<size_t>(t) * kMaxSlices + k] = true;
    // 256-byte aligned like cudaMalloc, which the 16-byte kernel paths rely on.
    a_at[i] = total;
    b_at[i] = round_up(a_at[i] + static_cast<size_t>(part.a_len) * ds, 256);
    total = round_up(b_at[i] + static_cast<size_t>(part.b_len) * ds, 256);
    // DoRA's channel scale stays float32 (it multiplies the whole output; rounding it would shift every value).
    mag_at[i] = total;
    if (part.mag) total = round_up(mag_at[i] + sizeof(float) * static_cast<size_t>(part.mag_len), 256);
    if (part.data == LoraData::kF32) most = std::max({most, part.a_len, part.b_len});  // the uploader's staging
    staged->entries_.push_back({t, k, nullptr, nullptr, nullptr, static_cast<int32_t>(part.rank), part.scale});
    staged->bytes_ += (part.a_len + part.b_len) * static_cast<int64_t>(ds) + part.mag_len * static_cast<int64_t>(sizeof(float));
    staged->dora_ = staged->dora_ || part.mag;
    staged->embed_ = staged->embed_ || part.module == kEmbed;
    staged->rank_cap_ =
        std::max(staged->rank_cap_, static_cast<int32_t>(round_up(static_cast<size_t>(part.rank), 16)));
  }
  staged->mem_ = StreamBuffer(total, stream);
  up.reserve(most);
  char* base = staged->mem_.as<char>();
  for (size_t i = 0; i < parts.size(); ++i) {
    put(parts[i].a, parts[i].a_len, parts[i].data, base + a_at[i], dtype_, up, stream);
    put(parts[i].b, parts[i].b_len, parts[i].data, base + b_at[i], dtype_, up, stream);
    staged->entries_[i].a = base + a_at[i];
    staged->entries_[i].b = base + b_at[i];
    if (parts[i].mag) {
      WEFT_CUDA_CHECK(cudaMemcpyAsync(base + mag_at[i], parts[i].mag, sizeof(float) * static_cast<size_t>(parts[i].mag_len),
                                      cudaMemcpyHostToDevice, stream));
      staged->entries_[i].mag = reinterpret_cast<const float*>(base + mag_at[i]);
    }
  }
  // One wait for the whole adapter (the parts' host memory is the caller's until this returns).
  WEFT_CUDA_CHECK(cudaStreamSynchronize(stream));
  return staged;
}

void LoraStore::set_entry(int t, int k, int slot, const void* a, const void* b, const float* mag, int32_t rank,
                          float scale) {
  const size_t e = static_cast<size_t>(k) * entries_ + slot;
  host<const void*>(t, &Layout::a)[e] = a;
  host<const void*>(t, &Layout::b)[e] = b;
  host<const float*>(t, &Layout::mag)[e] = mag;
  host<int32_t>(t, &Layout::rank)[e] = rank;
  host<float>(t, &Layout::scale)[e] = scale;
  dirty_[t] = true;
  any_dirty_ = true;
}

void LoraStore::install(int slot, StagedLora& staged, cudaStream_t step_stream) {
  if (staged.owner_ != this) throw std::invalid_argument("lora: the adapter was staged for another model");
  clear(slot);
  SlotState& st = slots_[slot];
  for (const StagedLora::Entry& x : staged.entries_) {
    set_entry(x.table, x.sub, slot, x.a, x.b, x.mag, x.rank, x.scale);
    st.entries.emplace_back(x.table, x.sub);
  }
  st.mem = std::move(staged.mem_);
  st.mem.free_on(step_stream);
  st.bytes = staged.bytes_;
  st.loaded = true;
  st.dora = staged.dora_;
  st.embed = staged.embed_;
  rank_cap_ = std::max(rank_cap_, staged.rank_cap_);
  staged.entries_.clear();
}

void LoraStore::clear(int slot) {
  SlotState& st = slots_[slot];
  for (const auto& [t, k] : st.entries) set_entry(t, k, slot, nullptr, nullptr, nullptr, 0, 0.0f);
  // The free is ordered on the step stream after every step that read the memory; the tables stop naming it
  // before the next step (sync_tables).
  slots_[slot] = SlotState{};
}

void LoraStore::sync_tables(cudaStream_t stream) {
  if (!any_dirty_) return;
  for (int t = 0; t < num_tables_; ++t) {
    if (!dirty_[t]) continue;
    const Layout& l = layouts_[t];
    WEFT_CUDA_CHECK(cudaMemcpyAsync(device_.as<char>() + l.base, blob_.as<uint8_t>() + l.base, l.end - l.base,
                                    cudaMemcpyHostToDevice, stream));
    dirty_[t] = false;
  }
  any_dirty_ = false;
}

LoraTable LoraStore::table(int layer, int module, int expert) const { return tables_[table_index(layer, module, expert)]; }

}  // namespace weft::cuda
