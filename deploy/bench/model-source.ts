// Where a benchmark's model and adapters come from: `--model preset:<name>` (random weights, generated
// once into a temporary directory), a model directory, or the built-in demo model; and which backend runs.
import { assertCudaUsable } from '../../kernels/cuda.js';
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { homedir, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import type { Device } from '../config/index.js';
import { ensureDemoModel } from '../demo-model/index.js';
import { paramCounts } from './bounds.js';
import { PRESETS, presetOf, shapeFromModelDir, type ModelShape } from './shapes.js';
import { ensureBuilt, writeRandomAdapters, writeRandomModel } from './synthetic.js';

// 2: half-precision weights written as bits (different random values), tokenizer.json for the serve scenario.
const GENERATOR_VERSION = 2;
const MARKER = '.weft-bench-complete';

export interface BenchModel {
  /** What --model said (or 'demo'). */
  label: string;
  dir: string;
  shape: ModelShape;
}

export interface Backend {
  device: Device;
  /** Bytes per weight / KV element as the engine holds them (the CPU backend computes in fp32). */
  weightBytes: number;
  kvBytes: number;
}

/** Fails clearly (with the reason) unless the requested backend is usable here. CUDA runs bf16 weights and KV. */
export function resolveBackend(device: Device): Backend {
  if (device === 'cuda') {
    assertCudaUsable();
    return { device, weightBytes: 2, kvBytes: 2 };
  }
  return { device, weightBytes: 4, kvBytes: 4 };
}

export function benchCacheRoot(): string {
  return join(tmpdir(), 'weft-bench');
}

/** Resolves --model; generates a preset's random checkpoint on first use (reused afterwards). */
export async function resolveModel(model: string | null, log: (msg: string) => void): Promise<BenchModel> {
  const preset = presetOf(model);
  if (preset) {
    const shape = PRESETS[preset];
    const dir = join(benchCacheRoot(), `preset-${preset}-v${GENERATOR_VERSION}`);
    ensureBuilt(dir, MARKER, (tmp) => {
      log(`generating preset:${preset} (${(paramCounts(shape).total / 1e6).toFixed(1)} M random ${shape.dtype} parameters) in ${dir}`);
      writeRandomModel(tmp, shape, 1, log);
    });
    return { label: model!, dir, shape };
  }
  if (model === null) {
    const dir = await ensureDemoModel(join(homedir(), '.cache', 'weft', 'demo-model'));
    return { label: 'demo', dir, shape: shapeFromModelDir(dir) };
  }
  const dir = resolve(model);
  return { label: model, dir, shape: shapeFromModelDir(dir) };
}

/** Refuses a model that cannot fit in this machine's memory as the backend holds it. */
export function checkFits(m: BenchModel, b: Backend, extraBytes = 0): void {
  const need = paramCounts(m.shape).total * b.weightBytes + extraBytes;
  const have = totalmem();
  if (b.device === 'cpu' && need > 0.8 * have) {
    throw new Error(`--model ${m.label}: the CPU backend holds weights as fp32, ${(need / 1e9).toFixed(1)} GB, and this machine ` +
      `has ${(have / 1e9).toFixed(1)} GB; use a smaller model (preset:small) or the GPU machine`);
  }
}

/** Random adapters `bench-0` … `bench-<count-1>` of one rank for a model, generated once and reused. */
export function ensureAdapters(m: BenchModel, rank: number, count: number, dora = false): string[] {
  const key = createHash('sha256').update(`${realpathSync(m.dir)}\n${JSON.stringify(m.shape)}`).digest('hex').slice(0, 12);
  const root = join(benchCacheRoot(), `adapters-${key}-v${GENERATOR_VERSION}`, `r${rank}-n${count}${dora ? '-dora' : ''}`);
  const names = Array.from({ length: count }, (_, i) => `bench-${i}`);
  ensureBuilt(root, MARKER, (tmp) => {
    writeRandomAdapters(tmp, m.shape, { names, rank, dtype: m.shape.dtype, dora });
  });
  return names.map((n) => join(root, n));
}

/** The shape --model names, without generating any weights (presets) — for scenarios that need no checkpoint. */
export async function resolveShape(model: string | null): Promise<{ label: string; shape: ModelShape; dir: string | null }> {
  const preset = presetOf(model);
  if (preset) return { label: model!, shape: PRESETS[preset], dir: null };
  const m = await resolveModel(model, () => {});
  return { label: m.label, shape: m.shape, dir: m.dir };
}
