#pragma once
#include <napi.h>

#include <memory>

#include "collectives/collective.h"

namespace weft::napi {

// JS handle to a Collective: new Collective({kind: 'solo'}),
// new Collective({kind: 'shm', name, rank, world, maxFloats, timeoutMs}) or
// new Collective({kind: 'nccl', rank, world, uniqueId: Uint8Array(128), device}) (CUDA builds only).
// An nccl collective works on device memory: it is handed to a cuda Model, and allReduceSum / allGather on host
// arrays refuse it. Its construction blocks until every rank of the group has joined (ncclCommInitRank).
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
  // live(), and refuses a collective whose buffers are device memory (the host entry points are CPU-only).
  std::shared_ptr<Collective> live_host(Napi::Env env) const;
  std::shared_ptr<Collective> coll_;
};

}  // namespace weft::napi
