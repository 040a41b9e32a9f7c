// The MoE routing (kernels/src/model/moe_route.h, which the CUDA kernel and the CPU executor run) and the CUDA host row
// grouping (kernels/src/cuda/model/moe_plan.cc) built with g++ and composed on the CPU as cuda_moe.cc composes them
// (test/emulated/moe_host.cc), against a direct per-token MoE. The kernels themselves run in test/gpu.
import { test } from 'node:test';
import { buildAndRunHost, noGxx } from '../helpers/host-build.js';

test('MoE routing (softmax, also within groups; sigmoid with bias, groups, routed scale, a shared expert; gpt-oss\'s logit bias; Llama 4\'s input-scaled experts; Phi-3.5-MoE\'s sparsemixer) and the CUDA row grouping give the direct MoE; ties and bad ids',
  { skip: noGxx }, () => {
    buildAndRunHost(['test/emulated/moe_host.cc', 'kernels/src/cuda/model/moe_plan.cc'], 65);
  });
