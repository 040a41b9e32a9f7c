// Per-environment state of the addon: the constructors that C++ needs to recognise or create JS objects.
// Per environment (napi instance data), not global: worker threads load the addon too (the shard's adapter
// readers decode bf16 with it), and a constructor of one thread's environment is not usable in another's.
#pragma once
#include <napi.h>

namespace weft::napi {

struct AddonData {
  Napi::FunctionReference collective_ctor;
  Napi::FunctionReference staged_adapter_ctor;
};

inline AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace weft::napi
