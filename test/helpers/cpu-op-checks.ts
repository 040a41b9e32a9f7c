// Checks the CPU-op tests share (test/unit/cpu-ops.test.ts, cpu-attention.test.ts): element-wise closeness and
// identity with the first offending index, argument errors that name the argument, and a child process for calls
// that could crash the native addon.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
// ---------------------------------------------------------------------------------------------------
// Helpers.

/** |actual - expected| <= atol + rtol * |expected| element-wise, with the first offending index in the message. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, rtol = 1e-5, atol = 1e-6): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    const err = Math.abs(a - e);
    const tol = atol + rtol * Math.abs(e);
    if (!(err <= tol) && (worst < 0 || err - tol > worstExcess)) {
      worst = i;
      worstExcess = err - tol;
    }
  }
  if (worst >= 0) {
    assert.fail(`${what}: index ${worst}: got ${actual[worst]}, expected ${expected[worst]} ` +
      `(|diff| ${Math.abs(actual[worst]! - expected[worst]!)})`);
  }
}

/** Bit-identical (===) element-wise. */
export function assertSame(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) assert.fail(`${what}: index ${i}: ${actual[i]} !== ${expected[i]}`);
  }
}

export function rows(a: Float32Array, width: number, from: number, count: number): Float32Array {
  return a.slice(from * width, (from + count) * width);
}

/** Asserts fn throws an Error whose message matches re (the argument's name). */
export function assertArgError(fn: () => unknown, re: RegExp, what: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Error, `${what}: expected an Error, got ${String(e)}`);
    assert.match(e.message, re, `${what}: message should name the argument`);
    return true;
  }, what);
}

const kernelsUrl = new URL('../../kernels/index.js', import.meta.url).href;

/**
 * Runs `(ops) => ...` in a child node process (so a native crash cannot take the test runner down) and returns how
 * it ended: the process's exit status/signal and what the call did (returned, or threw with a message).
 */
export function runIsolated(body: string): { status: number | null; signal: string | null; outcome: string; stderr: string } {
  const script = `import { cpuOps } from ${JSON.stringify(kernelsUrl)};\n` +
    `try { const r = (${body})(cpuOps); console.log('RETURNED ' + String(r && r.length)); }\n` +
    `catch (e) { console.log('THREW ' + (e instanceof Error ? 'Error: ' + e.message : String(e))); }\n`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, signal: r.signal, outcome: (r.stdout ?? '').trim(), stderr: (r.stderr ?? '').trim().slice(0, 400) };
}

export function assertIsolatedArgError(body: string, re: RegExp): void {
  const r = runIsolated(body);
  assert.equal(r.signal, null, `the process crashed with ${r.signal} instead of throwing (stderr: ${r.stderr})`);
  assert.equal(r.status, 0, `exit status ${r.status} (stderr: ${r.stderr})`);
  assert.match(r.outcome, /^THREW Error: /, `expected a thrown Error, got: ${r.outcome}`);
  assert.match(r.outcome, re);
}

