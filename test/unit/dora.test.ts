// DoRA (PEFT use_dora): the CPU kernels against PEFT's own DoRA layer (fixture made by PEFT's dora.py), and whole
// models serving a DoRA adapter against the same model with the adapter merged as PEFT merges it — alone and in
// heterogeneous batches beside the base model and plain LoRA adapters (whose rows must stay on the golden logits).
// Tensor parallelism is covered in test/integration/tensor-parallel.test.ts.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuOps } from '../../kernels/index.js';
import { estimateAdapterBytes } from '../../coordinator/adapters/size-estimate.js';
import { loadAdapterDir } from '../../shard/adapters/index.js';
import { mergeAdapters } from '../../shard/adapters/merge.js';
import { planAdapter, readModelSpec } from '../../shard/models/index.js';
import { partitionFor } from '../../shard/models/partition.js';
import { loadGoldenCase, maxAbsDiff, type GoldenCase } from '../helpers/golden.js';
import { writeDoraAdapter, writeDoraMerged, type DoraAdapterOptions } from '../helpers/dora.js';
import { expectMixedBatch, openMergedOracle, type MergedOracle } from '../helpers/merged-oracle.js';

const TOL = 1e-4;
const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/dora/dora_linear.json', import.meta.url));

interface PeftCase { name: string; in: number; out: number; rank: number; scaling: number; W: number[]; bias: number[] | null;
  A: number[]; B: number[]; magnitude: number[]; x: number[]; y: number[] }

test("the CPU kernels give PEFT's DoraLinearLayer output (with and without bias)", () => {
  const { cases } = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { cases: PeftCase[] };
  assert.equal(cases.length, 2);
  for (const c of cases) {
    const f = (v: number[]) => Float32Array.from(v);
    const tokens = c.x.length / c.in;
    const bias = c.bias ? f(c.bias) : null;
    const base = cpuOps.gemm(f(c.x), tokens, c.in, f(c.W), c.out, bias);
    const withLora = cpuOps.lora(f(c.x), f(c.A), f(c.B), c.scaling, base, c.out, 0, c.rank);
    const normsSq = cpuOps.loraWeightNormsSq(f(c.W), f(c.A), f(c.B), c.rank, c.scaling);
    const mag = Float32Array.from(c.magnitude, (m, o) => m / Math.sqrt(normsSq[o]!));
    const y = cpuOps.doraScale(withLora, c.out, 0, mag, bias);
    const err = maxAbsDiff(y, f(c.y));
    assert.ok(err <= 1e-5, `${c.name}: max abs error ${err} against PEFT`);
    // The DoRA term matters here: plain LoRA is far from PEFT's output.
    assert.ok(maxAbsDiff(withLora, f(c.y)) > 1e-2, `${c.name}: the fixture does not exercise the magnitude`);
  }
});

const MODULES: Record<string, string[]> = {
  llama: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  llama_bias: ['q_proj', 'v_proj', 'o_proj', 'down_proj'],
  qwen2: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'],
  phi3: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'],
  gpt2: ['c_attn', 'c_proj', 'c_fc'],  // Conv1D (fan_in_fan_out), biases on every module
};

for (const [name, modules] of Object.entries(MODULES)) {
  describe(`DoRA on golden ${name}`, () => {
    const opts: DoraAdapterOptions = { seed: 11, rank: 4, alpha: 8, modules };
    let c: GoldenCase, root: string, oracle: MergedOracle;
    before(() => {
      c = loadGoldenCase(name);
      root = mkdtempSync(join(tmpdir(), 'weft-dora-'));
      writeDoraAdapter(c.modelDir, join(root, 'dora'), opts);
      writeDoraMerged(c.modelDir, join(root, 'dora'), join(root, 'merged'), opts);
      oracle = openMergedOracle(c, join(root, 'dora'), join(root, 'merged'));
    });
    after(() => {
      oracle?.dispose();
      rmSync(root, { recursive: true, force: true });
    });

    test('the merged model\'s logits, alone and beside the base model and a plain LoRA adapter', async () => {
      await expectMixedBatch(oracle, c, TOL);
    });

    test('the registry\'s size estimate is what the slot holds (magnitudes included)', () => {
      assert.equal(estimateAdapterBytes({ dir: join(root, 'dora') }, 4), oracle.served.model.native.adapterBytes(0));
    });
  });
}

describe('DoRA refusals', () => {
  let root: string, c: GoldenCase;
  before(() => {
    c = loadGoldenCase('llama');
    root = mkdtempSync(join(tmpdir(), 'weft-dora-no-'));
    writeDoraAdapter(c.modelDir, join(root, 'dora'), { seed: 3, rank: 2, alpha: 2, modules: ['q_proj', 'o_proj'] });
    writeDoraAdapter(c.modelDir, join(root, 'head'), { seed: 4, rank: 2, alpha: 2, modules: ['lm_head'] });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('per-request merges of a DoRA adapter are refused', () => {
    const dora = loadAdapterDir(join(root, 'dora'));
    const plain = loadAdapterDir(c.adapters[0]!.dir);
    assert.throws(() => mergeAdapters([plain, dora], { weights: [1, 1], strategy: 'linear', density: null, majoritySignMethod: 'total', seed: 0 }),
      /adapter 1 is a DoRA adapter \(use_dora\): DoRA adapters cannot be merged per request/);
  });

  test('DoRA on lm_head is refused by name; on a 16-bit (GPU) shard its parts stay float32', () => {
    const spec = readModelSpec(c.modelDir);
    const layout = { spec, partition: partitionFor(spec, 0, 1) };
    assert.throws(() => planAdapter(layout, loadAdapterDir(join(root, 'head')), 'head', 64), /'lm_head' is a DoRA module on lm_head, which is not supported/);
    const plan = planAdapter({ ...layout, loraStorage: 'bfloat16' }, loadAdapterDir(join(root, 'dora')), 'dora', 64);
    assert.equal(plan.storage, 'float32');
    assert.ok(plan.parts.every((p) => p.a instanceof Float32Array && p.b instanceof Float32Array && p.storage === undefined));
    assert.equal(plan.parts.filter((p) => p.magnitude).length, plan.parts.length, 'every part carries its magnitude');
    const plain = planAdapter({ ...layout, loraStorage: 'bfloat16' }, loadAdapterDir(c.adapters[0]!.dir), 'plain', 64);
    assert.equal(plain.storage, 'bfloat16');
  });
});
