// The CUDA model executor against the CPU executor (the oracle), on random-weight plans built right here, so
// it needs nothing from shard/: GQA and MQA, partial rotary, sliding window, LayerNorm with biases, learned
// positions and GELU, gpt-oss's attention sinks and clamped SwiGLU; LoRA on every module (lm_head included) with several ranks; prefill, decode and mixed
// steps over many steps; CUDA graphs on and off (bucket padding, replays, adapters swapped under a captured
// graph, a rank-cap change forcing a new capture); fp32, bf16 and fp16.
// On a machine without a usable GPU the GPU tests are skipped with the reason, and the backend-selection
// errors are checked instead.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createModel, type ForwardBatch, type ModelPlanConfig, type NativeModel } from '../../kernels/index.js';
import { cudaInfo } from '../../kernels/cuda.js';
import { Rng } from '../helpers/reference-ops.js';
import { maxAbsDiff } from '../helpers/golden.js';
import { stepBatch } from '../helpers/forward-batch.js';

const info = cudaInfo();
const noGpu = info.available ? false : `no usable GPU: ${info.reason}`;

type Variant = { name: string; plan: ModelPlanConfig; biases: boolean };

function invFreq(rotaryDim: number, theta = 10000): Float32Array {
  return Float32Array.from({ length: rotaryDim / 2 }, (_, i) => 1 / theta ** ((2 * i) / rotaryDim));
}

function plan(p: Partial<ModelPlanConfig>): ModelPlanConfig {
  const base: ModelPlanConfig = {
    hidden: 64, layers: 2, headDim: 16, headsLocal: 4, kvHeadsLocal: 2, intermediateLocal: 96, vocab: 300,
    vocabChunk: 300, vocabLocal: 300, norm: 'rms', normEps: 1e-5, mlp: 'gated_silu', learnedPositions: false,
    maxPositions: 64, rotaryDim: 16, invFreq: invFreq(16), ropeAttentionFactor: 1, slidingWindow: 0,
    attnScale: 0.25, numBlocks: 64, blockSize: 4, adapterSlots: 2,
  };
  return { ...base, ...p };
}

const VARIANTS: Variant[] = [
  { name: 'llama-like (GQA, qkv bias)', plan: plan({}), biases: true },
  { name: 'partial rotary, sliding window 5, MQA', biases: false,
    plan: plan({ kvHeadsLocal: 1, rotaryDim: 8, invFreq: invFreq(8), slidingWindow: 5, ropeAttentionFactor: 1.1 }) },
  { name: 'gpt2-like (LayerNorm, biases, learned positions, gelu_tanh)', biases: true,
    plan: plan({ norm: 'layer', mlp: 'gelu_tanh', learnedPositions: true, rotaryDim: 0, invFreq: new Float32Array(0),
      kvHeadsLocal: 4, intermediateLocal: 128 }) },
  { name: 'gelu_erf, odd intermediate', biases: false,
    plan: plan({ mlp: 'gelu_erf', intermediateLocal: 72, kvHeadsLocal: 4 }) },
  // Gemma 3's parts: GeGLU, the scaled embedding, q/k norms, post-block norms, a sliding layer with its own RoPE
  // base beside a full-attention one (Qwen3 is the q/k-norm part alone).
  { name: 'gemma3-like (GeGLU, embed scale, q/k + post norms, sliding/full layers)', biases: false,
    plan: plan({ mlp: 'gated_gelu_tanh', embedScale: 8, qkNorm: true, postNorms: true, slidingWindow: 5,
      layerSliding: [true, false], invFreqLocal: invFreq(16, 100), attnScale: 0.3 }) },
  { name: 'qwen3-like (q/k norms, qkv + o biases)', biases: true, plan: plan({ qkNorm: true }) },
  { name: 'granite-like (embedding, residual and logits multipliers)', biases: true,
    plan: plan({ embedScale: 12, residualScale: 0.22, logitsDivisor: 8, attnScale: 0.015625 }) },
  { name: 'gemma2-like (attention and final-logit softcaps, alternating windows)', biases: false,
    plan: plan({ mlp: 'gated_gelu_tanh', embedScale: 8, postNorms: true, slidingWindow: 5, layerSliding: [true, false],
      attnSoftcap: 2, finalSoftcap: 3, attnScale: 0.3 }) },
  // gpt-oss's attention and activation on a dense MLP (its MoE parts run in the golden cases): sinks in prefill,
  // decode and captured decode graphs, the clamped SwiGLU (a low limit, so the clamps act), alternating windows.
  { name: 'gpt-oss-like dense (attention sinks, clamped SwiGLU, alternating windows, biases)', biases: true,
    plan: plan({ mlp: 'clamped_swiglu', gluLimit: 0.5, attnSinks: true, slidingWindow: 5, layerSliding: [true, false] }) },
];

function weightNames(p: ModelPlanConfig): string[] {
  const names = ['embed', 'pos_embed', 'final_norm.weight', 'final_norm.bias', 'lm_head'];
  for (let l = 0; l < p.layers; l++) {
    for (const s of ['attn_norm.weight', 'attn_norm.bias', 'qkv.weight', 'qkv.bias', 'o.weight', 'o.bias',
      'mlp_norm.weight', 'mlp_norm.bias', 'up.weight', 'up.bias', 'down.weight', 'down.bias', 'q_norm.weight',
      'k_norm.weight', 'post_attn_norm.weight', 'post_mlp_norm.weight', 'attn_sinks']) names.push(`layers.${l}.${s}`);
  }
  return names;
}

function randomWeights(v: Variant, oracle: NativeModel, rng: Rng): Map<string, Float32Array> {
  const w = new Map<string, Float32Array>();
  const H = v.plan.hidden;
  for (const name of weightNames(v.plan)) {
    const n = oracle.expectedSize(name);
    if (n <= 0) continue;
    if (name.endsWith('attn_sinks')) {  // logits near those of a few keys: a sink share the tolerances see
      w.set(name, Float32Array.from({ length: n }, () => rng.uniform(0, 2)));
      continue;
    }
    const bias = name.endsWith('.bias');
    if (bias && !v.biases && !name.includes('norm')) continue;
    const a = new Float32Array(n);
    const norm = name.includes('norm');
    const inDim = name.endsWith('o.weight') ? v.plan.headsLocal * v.plan.headDim
      : name.endsWith('down.weight') ? v.plan.intermediateLocal : H;
    const s = norm ? 0.1 : bias ? 0.05 : name === 'embed' || name === 'pos_embed' ? 0.8 : Math.sqrt(3 / inDim);
    for (let i = 0; i < n; i++) a[i] = (norm && !bias ? 1 : 0) + rng.uniform(-s, s);
    w.set(name, a);
  }
  return w;
}

interface Part { layer: number; module: number; outOffset: number; rank: number; scale: number; a: Float32Array; b: Float32Array }

/** LoRA parts of one adapter: every module (q and v only, or q/k/v), lm_head included when `lmHead`. */
function randomAdapter(p: ModelPlanConfig, rank: number, scale: number, rng: Rng, opts: { qkv: 'qv' | 'qkv'; lmHead: boolean }): Part[] {
  const q = p.headsLocal * p.headDim, kv = p.kvHeadsLocal * p.headDim, I = p.intermediateLocal, H = p.hidden;
  const parts: Part[] = [];
  const mk = (layer: number, module: number, outOffset: number, inDim: number, outLen: number): void => {
    const a = Float32Array.from({ length: rank * inDim }, () => rng.uniform(-1, 1) / Math.sqrt(inDim));
    const b = Float32Array.from({ length: outLen * rank }, () => rng.uniform(-0.15, 0.15));
    parts.push({ layer, module, outOffset, rank, scale, a, b });
  };
  for (let l = 0; l < p.layers; l++) {
    mk(l, 0, 0, H, q);
    if (opts.qkv === 'qkv') mk(l, 0, q, H, kv);
    mk(l, 0, q + kv, H, kv);
    mk(l, 1, 0, q, H);
    if (p.mlp === 'gated_silu' || p.mlp === 'gated_gelu_tanh' || p.mlp === 'clamped_swiglu') {
      mk(l, 2, 0, H, I);
      mk(l, 2, I, H, I);
    } else {
      mk(l, 2, 0, H, I);
    }
    mk(l, 3, 0, I, H);
  }
  if (opts.lmHead) mk(-1, 4, 0, H, p.vocabLocal);
  return parts;
}

/** Stages the parts on every model at once (a CUDA model uploads on its copy stream), then installs them. */
async function install(models: NativeModel[], slot: number, parts: Part[]): Promise<void> {
  const staged = await Promise.all(models.map((m) => m.stageAdapter(parts)));
  models.forEach((m, i) => m.installAdapter(slot, staged[i]!));
}

/** One sequence of the test: its tokens, adapter slot and blocks; `done` = tokens already in the KV cache. */
interface Seq { tokens: number[]; slot: number; table: number[]; done: number }

/** A step: each entry feeds `n` tokens of a sequence (all its logit rows when `all`). */
function batchOf(entries: { seq: Seq; n: number; all: boolean }[], blockSize: number): ForwardBatch {
  const batch = stepBatch(entries.map(({ seq, n, all }) => ({ tokens: seq.tokens, pos0: seq.done, n, slot: seq.slot,
    table: seq.table, all })), blockSize);
  for (const e of entries) e.seq.done += e.n;
  return batch;
}

function relL2(a: Float32Array, ref: Float32Array): number {
  assert.equal(a.length, ref.length);  // a short (or empty) result must not pass as a small error
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

test('backend selection: dtype other than float32 needs device cuda; unknown devices are refused', () => {
  const p = VARIANTS[0].plan;
  assert.throws(() => createModel({ ...p, dtype: 'bfloat16' }), /dtype 'bfloat16' needs device 'cuda'/);
  assert.throws(() => createModel({ ...p, device: 'tpu' as 'cpu' }), /device must be 'cpu' or 'cuda'/);
});

test('backend selection: without a usable GPU, device cuda throws with the reason', (t) => {
  if (info.available) {
    t.skip('a GPU is usable here');
    return;
  }
  const p = VARIANTS[0].plan;
  const want = info.compiled ? info.reason : 'this addon was built without CUDA';
  assert.throws(() => createModel({ ...p, device: 'cuda', dtype: 'float32' }), (e: unknown) => {
    assert.ok(e instanceof Error);
    assert.ok(e.message.includes(want), `'${e.message}' should include '${want}'`);
    return true;
  });
});

for (const v of VARIANTS) {
  describe(`CUDA executor vs CPU: ${v.name}`, { skip: noGpu }, () => {
    test('prefill, decode and mixed steps; graphs on and off; fp32, bf16, fp16; adapters swapped', (t) => runScenario(t, v));
  });
}

async function runScenario(t: { diagnostic(msg: string): void }, v: Variant): Promise<void> {
  const rng = new Rng(1234);
  const cpu = createModel(v.plan);
  const gpus = {
    graphs: createModel({ ...v.plan, device: 'cuda', dtype: 'float32', cudaGraphs: true }),
    eager: createModel({ ...v.plan, device: 'cuda', dtype: 'float32', cudaGraphs: false }),
    bf16: createModel({ ...v.plan, device: 'cuda', dtype: 'bfloat16', cudaGraphs: true }),
    fp16: createModel({ ...v.plan, device: 'cuda', dtype: 'float16', cudaGraphs: false }),
  };
  const all = [cpu, ...Object.values(gpus)];
  try {
    const weights = randomWeights(v, cpu, rng);
    for (const m of all) {
      for (const [name, data] of weights) m.setWeight(name, data);
      m.finalize();
    }
    await install(all, 0, randomAdapter(v.plan, 8, 2, rng, { qkv: 'qv', lmHead: true }));
    await install(all, 1, randomAdapter(v.plan, 16, 0.5, rng, { qkv: 'qkv', lmHead: false }));

    const bs = v.plan.blockSize;
    const V = v.plan.vocab;
    const seq = (i: number, slot: number): Seq => ({ slot, done: 0, table: Array.from({ length: 8 }, (_, k) => 8 * i + k),
      tokens: Array.from({ length: 32 }, () => rng.int(0, V - 1)) });
    const [A, B, C, D] = [seq(0, 0), seq(1, -1), seq(2, 1), seq(3, 0)];
    // Each model gets its own copy of the sequence states (batchOf advances them).
    const stepsFor = (): ((s: Seq[]) => ForwardBatch)[] => {
      const p = (x: Seq, n: number, all = false) => ({ seq: x, n, all });
      const steps: ((s: Seq[]) => ForwardBatch)[] = [
        ([a, b, c]) => batchOf([p(a, 9, true), p(b, 5, true), p(c, 7, true)], bs),
        ([a, b, c]) => batchOf([p(a, 1), p(b, 1), p(c, 1)], bs),
        // Embeddings: the final-normed hidden states of the logit rows follow the logits (a mixed step, then a
        // decode step — graphed where graphs are on).
        ([a, b, c, d]) => ({ ...batchOf([p(c, 1), p(d, 6, true), p(a, 1), p(b, 1)], bs), returnHidden: true }),
        ([a, b, c, d]) => ({ ...batchOf([p(a, 1), p(b, 1), p(c, 1), p(d, 1)], bs), returnHidden: true }),
        // Pooled embeddings: any rows' final-normed states after all of that, in the order asked — rows the CUDA
        // step reorders (one-row sequences after the prefill rows), and in a graphed decode step.
        ([a, b, c, d]) => ({ ...batchOf([p(c, 1), p(d, 6), p(a, 1), p(b, 1)], bs), returnHidden: true,
          hiddenRows: Int32Array.from([6, 1, 2, 0, 8]) }),
        ([a, b, c, d]) => ({ ...batchOf([p(a, 1), p(b, 1), p(c, 1), p(d, 1)], bs), hiddenRows: Int32Array.from([3, 0]) }),
      ];
      for (let i = 0; i < 4; i++) steps.push(([a, b, c, d]) => batchOf([p(a, 1), p(b, 1), p(c, 1), p(d, 1)], bs));
      steps.push(([a, , c]) => batchOf([p(a, 1), p(c, 1)], bs));
      return steps;
    };
    const clone = (s: Seq): Seq => ({ ...s, table: [...s.table], tokens: [...s.tokens] });
    const states = new Map(all.map((m) => [m, [A, B, C, D].map(clone)]));
    const steps = stepsFor();
    let worst = { graphs: 0, eager: 0, graphsVsEager: 0, bf16: 0, fp16: 0 };
    const runStep = async (k: number, make: (s: Seq[]) => ForwardBatch): Promise<void> => {
      const batches = all.map((m) => make(states.get(m)!));
      const outs = await Promise.all(all.map((m, i) => m.forward(batches[i]!)));
      const [ref, g, e, b16, f16] = outs;
      const what = `${v.name} step ${k}`;
      const rows = batches[0]!.logitRows.length;
      assert.equal(ref.length, rows * (V + (batches[0]!.returnHidden ? v.plan.hidden : 0)) +
        (batches[0]!.hiddenRows?.length ?? 0) * v.plan.hidden, `${what}: CPU output length`);
      assert.equal(g.length, ref.length, `${what}: logits length`);
      worst = { graphs: Math.max(worst.graphs, maxAbsDiff(g, ref)), eager: Math.max(worst.eager, maxAbsDiff(e, ref)),
        graphsVsEager: Math.max(worst.graphsVsEager, maxAbsDiff(g, e)), bf16: Math.max(worst.bf16, relL2(b16, ref)),
        fp16: Math.max(worst.fp16, relL2(f16, ref)) };
      assert.ok(maxAbsDiff(g, ref) <= 1e-3, `${what}: fp32 with graphs vs CPU: max abs error ${maxAbsDiff(g, ref)}`);
      assert.ok(maxAbsDiff(e, ref) <= 1e-3, `${what}: fp32 eager vs CPU: max abs error ${maxAbsDiff(e, ref)}`);
      assert.ok(maxAbsDiff(g, e) <= 1e-4, `${what}: graph replay vs eager: max abs difference ${maxAbsDiff(g, e)}`);
      // bf16 keeps 8 significant bits (unit roundoff 2^-9): a few percent of relative L2 error after two
      // layers of rounded activations; a wrong adapter or a wrong row order is off by tens of percent.
      assert.ok(relL2(b16, ref) <= 0.05, `${what}: bf16 relative L2 error ${relL2(b16, ref)}`);
      assert.ok(relL2(f16, ref) <= 0.02, `${what}: fp16 relative L2 error ${relL2(f16, ref)}`);
    };
    for (let k = 0; k < steps.length; k++) await runStep(k, steps[k]);
    // Swap slot 1's adapter under the captured 2-row graph (same rank cap) — staged while a step runs (a CUDA
    // model uploads on its copy stream beside the step), installed after it — then slot 0's with a larger rank
    // (the rank cap grows: the graph must be captured again).
    const swap = randomAdapter(v.plan, 16, 1.5, rng, { qkv: 'qkv', lmHead: true });
    const [, staged] = await Promise.all([
      runStep(99, ([a, , c]) => batchOf([{ seq: a, n: 1, all: false }, { seq: c, n: 1, all: false }], bs)),
      Promise.all(all.map((m) => m.stageAdapter(swap))),
    ]);
    all.forEach((m, i) => m.installAdapter(1, staged[i]!));
    await runStep(100, ([a, , c]) => batchOf([{ seq: a, n: 1, all: false }, { seq: c, n: 1, all: false }], bs));
    await install(all, 0, randomAdapter(v.plan, 24, 1, rng, { qkv: 'qv', lmHead: true }));
    await runStep(101, ([a, , c]) => batchOf([{ seq: a, n: 1, all: false }, { seq: c, n: 1, all: false }], bs));
    t.diagnostic(`${v.name}: worst max-abs error fp32 graphs ${worst.graphs.toExponential(2)}, eager ` +
      `${worst.eager.toExponential(2)}, graphs vs eager ${worst.graphsVsEager.toExponential(2)}; relative L2 bf16 ` +
      `${worst.bf16.toExponential(2)}, fp16 ${worst.fp16.toExponential(2)}`);
    // A cleared slot is refused like on the CPU.
    for (const m of all) m.clearAdapter(1);
    for (const m of all) {
      await assert.rejects(m.forward(batchOf([{ seq: clone(C), n: 1, all: false }], bs)), /adapter slot 1 is not loaded/);
    }
    // The CUDA backend holds one LoRA part per sub-block: a part that is not one is refused with the reason.
    const bad = randomAdapter(v.plan, 4, 1, rng, { qkv: 'qv', lmHead: false })[0];
    await assert.rejects(gpus.graphs.stageAdapter([{ ...bad, outOffset: 1, b: bad.b.subarray(0, bad.b.length - 4) }]),
      /not one whole sub-block/);
  } finally {
    for (const m of all) m.dispose();
  }
}
