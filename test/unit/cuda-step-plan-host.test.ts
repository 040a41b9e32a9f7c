// The CUDA step plan's host code (kernels/src/cuda/model/step_plan.cc) built with g++ and checked on the CPU
// (test/emulated/step_plan_host.cc): longrope's per-row marks follow the rows through the plan's reordering.
import { test } from 'node:test';
import { buildAndRunHost, noGxx } from '../helpers/host-build.js';

test('step plan: longrope marks follow each token to its row; padding is short; no field without long factors',
  { skip: noGxx }, () => {
    buildAndRunHost(['test/emulated/step_plan_host.cc', 'kernels/src/cuda/model/step_plan.cc'], 7, '-O1');
  });
