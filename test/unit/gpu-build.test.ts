// The CUDA kernel test program (test/gpu/*.cu + the kernels + the CPU oracle) must build wherever nvcc exists,
// so a GPU session never starts with a link error: `bash test/gpu/run.sh --compile-only` builds it for both
// shipped targets (sm_80, sm_90a) without running it. Skipped, with the reason, where there is no nvcc.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const nvcc = spawnSync('nvcc', ['--version'], { encoding: 'utf8' });
const noNvcc = nvcc.status === 0 ? false : 'nvcc is not installed here: the CUDA test program cannot be compiled';

test('the CUDA kernel test program compiles and links (test/gpu/run.sh --compile-only)', { skip: noNvcc }, () => {
  const build = mkdtempSync(join(tmpdir(), 'weft-gpu-build-'));
  try {
    const r = spawnSync('bash', ['test/gpu/run.sh', '--compile-only'], { encoding: 'utf8', env: { ...process.env, WEFT_GPU_BUILD: build } });
    assert.equal(r.status, 0, `run.sh --compile-only failed:\n${r.stdout}\n${r.stderr}`);
    assert.ok(statSync(join(build, 'cuda-kernels')).size > 0, 'the test binary was written');
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
});
