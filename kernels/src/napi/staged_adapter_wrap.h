// JS handle to an adapter staged by Model.stageAdapter / stageAdapterSync (model/executor.h StagedAdapter):
// `bytes` and `release()`; Model.installAdapter(slot, staged) takes what it holds. The handle keeps its
// executor alive, so staged device memory is always freed by a live executor.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "model/executor.h"

namespace weft::napi {

class StagedAdapterWrap : public Napi::ObjectWrap<StagedAdapterWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Make(Napi::Env env, std::shared_ptr<ModelExecutor> owner, std::unique_ptr<StagedAdapter> staged);
  explicit StagedAdapterWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StagedAdapterWrap>(info) {}
  // What the handle holds, handed over (to install_adapter); throws when it was installed or released already,
  // or is not a StagedAdapter of `owner`.
  static std::unique_ptr<StagedAdapter> take(const Napi::Value& v, const ModelExecutor* owner);

 private:
  Napi::Value Bytes(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);
  std::shared_ptr<ModelExecutor> owner_;
  std::unique_ptr<StagedAdapter> staged_;  // after owner_: destroyed first
};

// Model.stageAdapter's parts argument: [{layer, module, outOffset, rank, scale, a, b}] (Float32Arrays) as
// references into the arrays' memory, which the caller keeps alive and unchanged while they are staged.
std::vector<LoraPartRef> parse_lora_parts(const Napi::Value& v);

// Model.loraWeightNormsSq(parts): DoRA's per-row squared weight norms (this rank's share) on the libuv pool.
// [Float32Array] from rows (loraWeightNormsSq's result).
Napi::Value float_arrays(Napi::Env env, const std::vector<std::vector<float>>& rows);
Napi::Promise lora_weight_norms_sq_async(Napi::Env env, std::shared_ptr<ModelExecutor> model, const Napi::Value& parts);

// Stages on the libuv thread pool (beside steps); resolves with a StagedAdapter handle, rejects with the reason.
Napi::Promise stage_adapter_async(Napi::Env env, std::shared_ptr<ModelExecutor> model, const Napi::Value& parts);

}  // namespace weft::napi
