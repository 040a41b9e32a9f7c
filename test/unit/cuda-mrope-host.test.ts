// Qwen2-VL's multimodal RoPE and Gemma 3's image spans on the CUDA backend, host halves built with g++ and checked on
// the CPU (test/emulated/mrope_host.cc): the position the rope kernels take per (token, frequency) (mrope_body.h)
// against cpu::rope_mrope, and the step plan's packing of the (t, h, w) positions (decode graphs included) and of
// the prefill sequences' image spans. The attention mask itself: test/unit/tensor-core-emulated.test.ts.
import { test } from 'node:test';
import { buildAndRunHost, noGxx } from '../helpers/host-build.js';

test('M-RoPE positions per frequency == cpu::rope_mrope; the step plan packs (t, h, w) rows and image spans',
  { skip: noGxx }, () => {
    buildAndRunHost(['test/emulated/mrope_host.cc', 'kernels/src/cuda/model/step_plan.cc', 'kernels/src/cpu/elementwise.cc'],
      17, '-O1');
  });
