// The MoE routing (kernels/src/model/moe_route.h, which the CUDA kernel and the CPU executor run) and the CUDA host row grouping
// (kernels/src/cuda/model/moe_plan.cc) built with g++ and composed on the CPU as cuda_moe.cc composes them
// (test/emulated/moe_host.cc), against a direct per-token MoE. The kernels themselves run in test/gpu.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const gxx = spawnSync('g++', ['--version'], { encoding: 'utf8' });

test('MoE routing (softmax; sigmoid with bias, groups, routed scale, a shared expert) and the CUDA row grouping give the direct MoE; ties and bad ids',
  { skip: gxx.status !== 0 ? 'g++ is not installed here' : false }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-moe-host-'));
    try {
      const bin = join(dir, 'moe');
      const build = spawnSync('g++', ['-std=c++20', '-O2', '-I', 'kernels/src', 'test/emulated/moe_host.cc',
        'kernels/src/cuda/model/moe_plan.cc', '-o', bin], { encoding: 'utf8' });
      assert.equal(build.status, 0, `build failed:\n${build.stderr}`);
      const run = spawnSync(bin, [], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(run.status, 0, `a check failed:\n${run.stdout}\n${run.stderr}`);
      assert.match(run.stdout, /^30 cases, 0 failed$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
