// A hybrid Mamba model (Granite 4.0 H) through the scheduler and step runner: state slots are taken lowest-first and
// given back; a scheduler with drafts off gives none, not even to a request with a `prediction`, and the tokens are
// the plain ones; a shard refuses a new sequence that starts from cached blocks (a cached prefix has no state).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GREEDY, StepRunner, StepError } from '../../shard/index.js';
import { loadModel, parseModelSpec, readModelSpec } from '../../shard/models/index.js';
import { mambaHeads } from '../../shard/models/mamba-weights.js';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { LocalEngine } from '../../shard/index.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../shard/formats/index.js';
import { join } from 'node:path';
import { StateSlots } from '../../shard/engine/state-slots.js';
import { PROTOCOL_VERSION } from '../../protocol/index.js';
import { Scheduler, Sequence, type SequenceInit } from '../../coordinator/scheduler/index.js';
import { loadGoldenCase } from '../helpers/golden.js';

const BLOCK = 4;
const golden = loadGoldenCase('granitemoehybrid');
const open = () => loadModel(golden.modelDir, readModelSpec(golden.modelDir), { rank: 0, world: 1, numBlocks: 96, blockSize: BLOCK, adapterSlots: 1 });

test('state slots: lowest free first, given back on release, cleared', () => {
  const s = new StateSlots();
  assert.deepEqual(['a', 'b', 'c'].map((id) => s.take(id)), [0, 1, 2]);
  assert.equal(s.take('a'), 0);
  s.release('b');
  s.release('a');
  assert.equal(s.take('d'), 0);
  assert.equal(s.take('e'), 1);
  assert.equal(s.take('f'), 3);
  assert.equal(s.held, 4);
  s.clear();
  assert.equal(s.take('g'), 0);
});

async function generate(runner: StepRunner, seqs: SequenceInit[], drafts: boolean) {
  const sched = new Scheduler({ numBlocks: 96, blockSize: BLOCK, maxBatchSize: 8, maxBatchPrefillTokens: 5, maxTotalTokens: 64,
    maxActiveAdapters: 0, adapterCycleTimeS: 10, speculate: 4, drafts });
  for (const s of seqs) sched.add(new Sequence(s));
  const tokens = new Map<string, number[]>(seqs.map((s) => [s.seqId, []]));
  let drafted = 0;
  for (let scheduled = sched.schedule(); scheduled !== null; scheduled = sched.schedule()) {
    drafted += scheduled.step.running.reduce((n, r) => n + (r.draft ?? 0), 0);
    const outputs = await runner.run(scheduled.step);
    for (const ev of sched.update({ v: PROTOCOL_VERSION, type: 'step.result', stepId: scheduled.step.stepId, rank: 0, outputs, computeMs: 0 })) {
      assert.equal(ev.error, undefined);
      tokens.get(ev.seqId)!.push(ev.token);
    }
  }
  return { tokens, drafted };
}

test('drafts off: no drafts even for a prediction, and the greedy tokens of the golden case', async () => {
  const model = open();
  try {
    const seqs: SequenceInit[] = golden.sequences.map((promptTokens, i) => ({ seqId: `s${i}`, promptTokens, maxNewTokens: 6,
      sampling: { ...GREEDY, ...(i === 1 ? { prediction: golden.greedy[`base/seq${i}`]! } : {}) } }));
    const run = await generate(new StepRunner(model, 0), seqs, false);
    assert.equal(run.drafted, 0);
    for (const [i] of golden.sequences.entries()) {
      const want = golden.greedy[`base/seq${i}`]!;
      // (base/seq0 has a near tie at some step: compare up to the first token that differs only where it is not one)
      if (i !== 0) assert.deepEqual(run.tokens.get(`s${i}`), want, `seq${i}`);
    }
    // With drafts allowed the scheduler would have given the predicted sequence some (the shard then verifies none).
    const withDrafts = await generate(new StepRunner(model, 0), seqs, true);
    assert.ok(withDrafts.drafted > 0);
    assert.deepEqual(withDrafts.tokens, run.tokens);
  } finally {
    model.native.dispose();
  }
});

test('a hybrid model refuses a new sequence that starts from cached blocks', async () => {
  const model = open();
  try {
    const runner = new StepRunner(model, 0);
    const tokens = golden.sequences[1]!;
    await assert.rejects(runner.run({ v: PROTOCOL_VERSION, type: 'step', stepId: 1, running: [], finished: [],
      newSeqs: [{ seqId: 'x', adapterSlot: -1, tokens, cached: 4, blockTable: [0, 1, 2, 3], sampling: GREEDY, generated: [],
        logits: 'none', promptLogprobs: false, topN: 0 }] }), (e: Error) => e instanceof StepError && /no recurrent state/.test(e.message));
  } finally {
    model.native.dispose();
  }
});

test('hybrid specs: layer types, Mamba sizes and the TP split are checked by name', () => {
  const cfg = JSON.parse(readFileSync(join(golden.modelDir, 'config.json'), 'utf8'));
  const spec = parseModelSpec(cfg);
  assert.deepEqual(spec.mamba!.layers, [true, false, true, false]);
  assert.equal(spec.rope, null);  // position_embedding_type nope
  assert.equal(spec.mamba!.dtMax, 0);  // time_step_limit [0, inf]: no upper clamp
  assert.throws(() => parseModelSpec({ ...cfg, layer_types: ['mamba', 'conv', 'mamba', 'attention'] }), /layer type "conv"/);
  assert.throws(() => parseModelSpec({ ...cfg, mamba_d_head: 7 }), /mamba_d_head/);
  assert.throws(() => parseModelSpec({ ...cfg, mamba_n_groups: 3 }), /mamba_n_groups 3 must divide/);
  assert.throws(() => parseModelSpec({ ...cfg, position_embedding_type: 'alibi' }), /position_embedding_type 'alibi'/);
  assert.throws(() => mambaHeads(spec.mamba!, { rank: 0, world: 3 }), /mamba_n_heads 16 is not divisible by --num-shard 3/);
  const dense = parseModelSpec(JSON.parse(readFileSync(join(loadGoldenCase('granitemoehybrid_dense').modelDir, 'config.json'), 'utf8')));
  assert.equal(dense.moe, null);
  assert.equal(dense.intermediate, 48);  // the shared MLP's width
  assert.ok(dense.rope !== null);
  const bamba = parseModelSpec(JSON.parse(readFileSync(join(loadGoldenCase('bamba').modelDir, 'config.json'), 'utf8')));
  assert.deepEqual(bamba.mamba!.layers, [true, false, true, false]);
  assert.equal(bamba.rope!.rotaryDim, bamba.headDim / 2);
});

test('adapters on what a hybrid model cannot adapt are refused by name', () => {
  const c = loadGoldenCase('granitemoehybrid');
  const src = c.adapters.find((a) => a.name === 'attn_mamba_r8')!.dir;
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 16, blockSize: 4, adapterSlots: 1 });
  const tmp = mkdtempSync(join(tmpdir(), 'weft-hybrid-lora-'));
  try {
    const variant = (name: string, extra: (t: Record<string, TensorToWrite>, f: SafetensorsFile) => void): string => {
      const dir = join(tmp, name);
      mkdirSync(dir);
      copyFileSync(join(src, 'adapter_config.json'), join(dir, 'adapter_config.json'));
      const f = SafetensorsFile.open(join(src, 'adapter_model.safetensors'));
      const t: Record<string, TensorToWrite> = {};
      try {
        for (const n of f.names()) t[n] = { dtype: 'F32', shape: f.info(n).shape, data: f.readF32(n) };
        extra(t, f);
      } finally {
        f.close();
      }
      writeSafetensors(join(dir, 'adapter_model.safetensors'), t);
      return dir;
    };
    const p = 'base_model.model.model.layers.';
    // the conv of a Mamba layer (not a linear module), and attention in a Mamba layer (it has none)
    const conv = variant('conv', (t) => {
      t[`${p}0.mamba.conv1d.lora_A.weight`] = { dtype: 'F32', shape: [8, 4], data: new Float32Array(32) };
      t[`${p}0.mamba.conv1d.lora_B.weight`] = { dtype: 'F32', shape: [144, 8], data: new Float32Array(144 * 8) };
    });
    assert.throws(() => engine.loadAdapter(0, conv), /model\.layers\.0\.mamba\.conv1d', which is not a supported linear module/);
    const attn = variant('attn', (t) => {
      t[`${p}0.self_attn.q_proj.lora_A.weight`] = t[`${p}1.self_attn.q_proj.lora_A.weight`]!;
      t[`${p}0.self_attn.q_proj.lora_B.weight`] = t[`${p}1.self_attn.q_proj.lora_B.weight`]!;
    });
    assert.throws(() => engine.loadAdapter(0, attn), /model\.layers\.0\.self_attn\.q_proj', which is not a supported linear module/);
    const short = variant('short', (t) => {
      const b = t[`${p}0.mamba.in_proj.lora_B.weight`]!;
      t[`${p}0.mamba.in_proj.lora_B.weight`] = { ...b, shape: [b.shape[0]! - 16, 8], data: (b.data as Float32Array).slice(16 * 8) };
    });
    assert.throws(() => engine.loadAdapter(0, short), /mamba\.in_proj' expects lora_A \[r, 64\] and lora_B \[288, r\]/);
  } finally {
    engine.dispose();
    rmSync(tmp, { recursive: true, force: true });
  }
});
