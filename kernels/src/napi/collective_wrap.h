#pragma once
#include <napi.h>

#include <memory>

#include "collectives/collective.h"

namespace weft::napi {

// JS handle to a Collective: new Collective({kind: 'solo'}) or
// new Collective({kind: 'shm', name, rank, world, maxFloats, timeoutMs}).
class CollectiveWrap : public Napi::ObjectWrap<CollectiveWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit CollectiveWrap(const Napi::CallbackInfo& info);
  std::shared_ptr<Collective> get() const { return coll_; }

 private:
  Napi::Value AllReduceSum(const Napi::CallbackInfo& info);
  Napi::Value AllGather(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  std::shared_ptr<Collective> live(Napi::Env env) const;
  std::shared_ptr<Collective> coll_;
};

}  // namespace weft::napi
