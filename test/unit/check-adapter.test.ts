// `weft check-adapter`: an adapter's checks without a server — what it holds, the bytes its slot takes (equal to
// what a CPU shard's slot then holds), DoRA detected, and the exit code and message of a refused one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkAdapter } from '../../deploy/check-adapter.js';
import { LocalEngine } from '../../shard/index.js';
import { loadGoldenCase } from '../helpers/golden.js';
import { writeDoraAdapter } from '../helpers/dora.js';

const CLI = fileURLToPath(new URL('../../deploy/cli.js', import.meta.url));

test('a golden adapter: its modules, ranks and scales, and the bytes a CPU slot then holds', () => {
  const c = loadGoldenCase('llama');
  const qv = c.adapters.find((a) => a.name === 'qv_r4')!;
  const report = checkAdapter({ model: c.modelDir, adapter: qv.dir, numShard: 1, maxLoraRank: 64, dtype: 'float32' });
  assert.equal(report.architecture, 'llama');
  assert.deepEqual(report.config, { r: 4, loraAlpha: 32, useRslora: false, useDora: false });
  assert.equal(report.modules.length, 2 * 2);  // q and v of both layers
  assert.ok(report.modules.every((m) => m.rank === 4 && m.scale === 8));
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 8, blockSize: 4, adapterSlots: 1 });
  try {
    engine.loadAdapter(0, qv.dir);
    assert.equal(report.shards[0]!.bytes, engine.model.native.adapterBytes(0));
    assert.equal(report.estimatedBytes, engine.model.native.adapterBytes(0));
  } finally {
    engine.dispose();
  }
  // Two shards: each holds a slice; bf16 halves the bytes.
  const two = checkAdapter({ model: c.modelDir, adapter: qv.dir, numShard: 2, maxLoraRank: 64, dtype: 'bfloat16' });
  assert.equal(two.shards.length, 2);
  assert.ok(two.shards.every((s) => s.bytes > 0 && s.bytes < report.shards[0]!.bytes / 2 + 1));
});

test('trainable tokens are reported as the rank-k pairs they are served as, with the bytes the slot holds', () => {
  const c = loadGoldenCase('llama_tokens');
  const a = c.adapters.find((x) => x.name === 'qv_tok_head')!;
  const report = checkAdapter({ model: c.modelDir, adapter: a.dir, numShard: 1, maxLoraRank: 64, dtype: 'float32' });
  const rank = (path: string): number | undefined => report.modules.find((m) => m.path === path)?.rank;
  assert.deepEqual([rank('model.embed_tokens'), rank('lm_head'), rank('model.layers.0.self_attn.q_proj')], [3, 2, 8]);
  // The estimate before a load is an upper bound here (it counts an lm_head pair per token set).
  assertHeldBytes(c.modelDir, a.dir, report);
});

/** A CPU slot holds what the report says once the adapter is loaded; the pre-load estimate is at least that. */
function assertHeldBytes(modelDir: string, adapterDir: string, report: ReturnType<typeof checkAdapter>): void {
  const engine = LocalEngine.open(modelDir, { numBlocks: 8, blockSize: 4, adapterSlots: 1 });
  try {
    engine.loadAdapter(0, adapterDir);
    assert.equal(report.shards[0]!.bytes, engine.model.native.adapterBytes(0));
    assert.ok(report.estimatedBytes >= report.shards[0]!.bytes, `${report.estimatedBytes} < ${report.shards[0]!.bytes}`);
  } finally {
    engine.dispose();
  }
}

test('LoRA on MoE experts (target_parameters) is reported per parameter, its rank per expert', () => {
  const c = loadGoldenCase('mixtral');
  const a = c.adapters.find((x) => x.name === 'qv_experts_r4')!;
  const report = checkAdapter({ model: c.modelDir, adapter: a.dir, numShard: 1, maxLoraRank: 64, dtype: 'float32' });
  const of = (path: string) => report.modules.find((m) => m.path === path);
  // PEFT's v4 -> v5 conversion: w1 + w3 fused into gate_up_proj at rank 2r, alpha 2·alpha (the same scale)
  assert.deepEqual(of('model.layers.1.mlp.experts.gate_up_proj'), { path: 'model.layers.1.mlp.experts.gate_up_proj', rank: 8, scale: 2, experts: 4 });
  assert.deepEqual(of('model.layers.1.mlp.experts.down_proj'), { path: 'model.layers.1.mlp.experts.down_proj', rank: 4, scale: 2, experts: 4 });
  assert.equal(report.maxRank, 8);
  assert.equal(report.shards[0]!.parts, 2 * (2 + 4 * 3));  // per layer: q, v, and each expert's gate, up and down
  assertHeldBytes(c.modelDir, a.dir, report);
});

test('a DoRA adapter is reported as one; a refused adapter exits 1 with the reason', () => {
  const c = loadGoldenCase('llama');
  const root = mkdtempSync(join(tmpdir(), 'weft-check-'));
  try {
    writeDoraAdapter(c.modelDir, join(root, 'dora'), { seed: 2, rank: 2, alpha: 4, modules: ['q_proj', 'o_proj'] });
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'check-adapter', '--model', c.modelDir, ...args], { encoding: 'utf8' });
    const ok = run('--adapter', join(root, 'dora'));
    assert.equal(ok.status, 0, ok.stderr);
    const report = JSON.parse(ok.stdout);
    assert.equal(report.dora, true);
    assert.equal(report.maxRank, 2);
    const tooBig = run('--adapter', c.adapters.find((a) => a.name === 'rslora_r16')!.dir, '--max-lora-rank', '8');
    assert.equal(tooBig.status, 1);
    assert.match(tooBig.stderr, /^weft: .*has rank 16, above --max-lora-rank 8/);
    const wrongModel = spawnSync(process.execPath, [CLI, 'check-adapter', '--model', loadGoldenCase('phi3').modelDir,
      '--adapter', c.adapters[0]!.dir], { encoding: 'utf8' });
    assert.equal(wrongModel.status, 1);
    assert.match(wrongModel.stderr, /expects lora_A \[r, \d+\] and lora_B \[\d+, r\], got .*\(adapter made for a different base model\?\)/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
