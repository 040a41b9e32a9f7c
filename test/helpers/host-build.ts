// Host builds of native code that the GPU build also compiles (the CUDA step plan, the MoE routing and row grouping):
// g++ builds the sources with a test driver from test/emulated, runs it, and checks it printed "N cases, 0 failed".
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Why host builds cannot run here (no g++), or false. */
export const noGxx: string | false =
  spawnSync('g++', ['--version'], { encoding: 'utf8' }).status !== 0 ? 'g++ is not installed here' : false;

/** Builds `sources` (the driver first) with -I kernels/src, runs it, and asserts exactly `cases` cases with none failed. */
export function buildAndRunHost(sources: string[], cases: number, optimize = '-O2'): void {
  const dir = mkdtempSync(join(tmpdir(), 'weft-host-'));
  try {
    const bin = join(dir, 'check');
    const build = spawnSync('g++', ['-std=c++20', optimize, '-I', 'kernels/src', ...sources, '-o', bin], { encoding: 'utf8' });
    assert.equal(build.status, 0, `build failed:\n${build.stderr}`);
    const run = spawnSync(bin, [], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, `a check failed:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, new RegExp(`^${cases} cases, 0 failed$`, 'm'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
