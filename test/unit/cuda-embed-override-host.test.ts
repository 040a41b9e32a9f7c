// The CUDA backend's embedding-row overrides (vision-language models' image features) checked on the CPU: the packing
// and the kernel body of kernels/src/cuda/kernels/embed_override_body.h with the real step plan's row order
// (test/emulated/embed_override_host.cc). The kernel itself runs on a GPU in test/gpu/model-llava.test.ts.
import { test } from 'node:test';
import { buildAndRunHost, noGxx } from '../helpers/host-build.js';

test('embedding overrides: each feature row lands on its token\'s plan row, other rows untouched, any grid',
  { skip: noGxx }, () => {
    buildAndRunHost(['test/emulated/embed_override_host.cc', 'kernels/src/cuda/model/step_plan.cc'], 30, '-O1');
  });
