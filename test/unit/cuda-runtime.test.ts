// The CUDA runtime layer as this machine sees it. Development machines and CI have nvcc (so the addon is built with
// the CUDA backend) but no GPU, driver, cuBLAS or NCCL: there every answer must be a clear "no" with the reason,
// never a crash. On a machine with a GPU (and NCCL), the GPU-only branch checks the positive answers instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableBackends } from '../../kernels/index.js';
import { assertCudaUsable, cudaInfo, ncclUniqueId, NCCL_UNIQUE_ID_BYTES } from '../../kernels/cuda.js';

const info = cudaInfo();

test('cudaInfo() has the documented shape', () => {
  assert.equal(typeof info.compiled, 'boolean');
  assert.equal(typeof info.available, 'boolean');
  assert.equal(typeof info.reason, 'string');
  assert.ok(Array.isArray(info.devices));
  if (info.available) {
    assert.equal(info.reason, '');
    assert.ok(info.devices.length > 0);
  } else {
    assert.ok(info.reason.length > 0, 'a reason whenever CUDA is not available');
    assert.ok(!info.reason.endsWith('.'), 'the reason is embedded in sentences, so it has no trailing period');
    assert.deepEqual(info.devices, []);
  }
  for (const d of info.devices) {
    assert.equal(typeof d.name, 'string');
    assert.ok(d.name.length > 0);
    assert.ok(Number.isInteger(d.totalMemory) && d.totalMemory > 0);
    assert.match(d.computeCapability, /^\d+\.\d+$/);
    assert.ok(Number.isInteger(d.multiProcessors) && d.multiProcessors > 0);
    assert.ok(d.nominalBandwidth > 0);
  }
});

test('backends list cuda exactly when the addon was compiled with it', () => {
  assert.equal(availableBackends.includes('cuda'), info.compiled);
  assert.ok(availableBackends.includes('cpu'));
});

test('without a usable GPU: available is false and the reason names the driver or the device', (t) => {
  if (info.available) {
    t.skip(`a GPU is usable here: ${info.devices.map((d) => `${d.name} (sm ${d.computeCapability})`).join(', ')}`);
    return;
  }
  if (info.compiled) {
    assert.match(info.reason, /driver|device/i);
  } else {
    assert.match(info.reason, /nvcc/);
  }
});

test('assertCudaUsable() throws the --device cuda message exactly when no GPU is usable', () => {
  if (info.available) {
    assert.doesNotThrow(() => assertCudaUsable());
    return;
  }
  assert.throws(() => assertCudaUsable(), (e: unknown) => {
    assert.ok(e instanceof Error);
    assert.equal(e.message,
      `--device cuda: ${info.reason}. Use --device cpu, or run on a machine with an NVIDIA GPU and driver`);
    return true;
  });
});

test('ncclUniqueId(): 128 bytes where NCCL is installed, else an error that names libnccl', (t) => {
  let id: Uint8Array | undefined;
  let error: Error | undefined;
  try {
    id = ncclUniqueId();
  } catch (e) {
    error = e as Error;
  }
  if (error) {
    // Without NCCL (or without the CUDA backend) the error must say which library is missing and what to do.
    assert.match(error.message, /libnccl\.so\.2/);
    if (info.compiled) {
      const missing = /could not load libnccl/.test(error.message);
      if (info.available && !missing) assert.fail(`NCCL is installed next to a GPU, yet: ${error.message}`);
      if (missing) assert.match(error.message, /Install NCCL/);
    }
    t.diagnostic(`ncclUniqueId unavailable here, so the 128-byte assertions are skipped: ${error.message}`);
    return;
  }
  assert.ok(id instanceof Uint8Array);
  assert.equal(id.length, NCCL_UNIQUE_ID_BYTES);
  assert.ok(id.some((b) => b !== 0), 'a unique id is not all zeros');
  const again = ncclUniqueId();
  assert.notDeepEqual(Buffer.from(again), Buffer.from(id), 'every call makes a new id');
});
