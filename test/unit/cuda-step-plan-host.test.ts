// The CUDA step plan's host code (kernels/src/cuda/model/step_plan.cc) built with g++ and checked on the CPU
// (test/emulated/step_plan_host.cc): longrope's per-row marks follow the rows through the plan's reordering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const gxx = spawnSync('g++', ['--version'], { encoding: 'utf8' });

test('step plan: longrope marks follow each token to its row; padding is short; no field without long factors',
  { skip: gxx.status !== 0 ? 'g++ is not installed here' : false }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-step-plan-'));
    try {
      const bin = join(dir, 'plan');
      const build = spawnSync('g++', ['-std=c++20', '-O1', '-I', 'kernels/src', 'test/emulated/step_plan_host.cc',
        'kernels/src/cuda/model/step_plan.cc', '-o', bin], { encoding: 'utf8' });
      assert.equal(build.status, 0, `build failed:\n${build.stderr}`);
      const run = spawnSync(bin, [], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(run.status, 0, `a check failed:\n${run.stdout}\n${run.stderr}`);
      assert.match(run.stdout, /^7 cases, 0 failed$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
