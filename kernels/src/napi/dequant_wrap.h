// The CPU dequantization entry points (cpuOps.dequant*), registered on the ops object by define_ops.
#pragma once
#include <napi.h>

namespace weft::napi {

void define_dequant_ops(Napi::Env env, Napi::Object ops);

}  // namespace weft::napi
