// Runs native work on the libuv thread pool and settles a Promise with its result on the JS thread: a step of
// the executor (model_wrap.cc) or an adapter's staging (staged_adapter_wrap.cc). Errors become a rejection
// "<prefix><reason>".
#pragma once
#include <napi.h>

#include <functional>
#include <string>
#include <utility>

namespace weft::napi {

template <class Result>
class AsyncCall : public Napi::AsyncWorker {
 public:
  using Run = std::function<Result()>;
  // Gets the result by reference: it may move out of it (a unique_ptr handed to a JS object).
  using ToJs = std::function<Napi::Value(Napi::Env, Result&)>;
  AsyncCall(Napi::Env env, Run run, ToJs to_js, std::string error_prefix)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), run_(std::move(run)),
        to_js_(std::move(to_js)), prefix_(std::move(error_prefix)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      result_ = run_();
    } catch (const std::exception& e) {
      SetError(prefix_ + e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(to_js_(Env(), result_)); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Run run_;
  ToJs to_js_;
  std::string prefix_;
  Result result_{};
};

template <class Result>
Napi::Promise queue_call(Napi::Env env, typename AsyncCall<Result>::Run run, typename AsyncCall<Result>::ToJs to_js,
                         std::string error_prefix = "") {
  auto* call = new AsyncCall<Result>(env, std::move(run), std::move(to_js), std::move(error_prefix));  // deleted by
  Napi::Promise p = call->promise();                                                               // node-addon-api
  call->Queue();
  return p;
}

}  // namespace weft::napi
