// A tiny random-weight model plan driven through the native surface (createModel), for tests of the
// executor itself: two layers, GQA, RoPE, gated SiLU; adapters on every module and the lm_head.
import { createModel, LoraModuleId, type ForwardBatch, type LoraPartInput, type ModelPlanConfig, type NativeModel } from '../../kernels/index.js';
import { Rng } from './reference-ops.js';
import { stepBatch } from './forward-batch.js';

export const PLAN: ModelPlanConfig = {
  hidden: 32, layers: 2, headDim: 8, headsLocal: 4, kvHeadsLocal: 2, intermediateLocal: 48, vocab: 64,
  vocabChunk: 64, vocabLocal: 64, norm: 'rms', normEps: 1e-5, mlp: 'gated_silu', learnedPositions: false,
  maxPositions: 64, rotaryDim: 8, invFreq: Float32Array.from({ length: 4 }, (_, i) => 1 / 10000 ** (i / 4)),
  ropeAttentionFactor: 1, slidingWindow: 0, attnScale: 1 / Math.sqrt(8), numBlocks: 32, blockSize: 4, adapterSlots: 2,
};
export const WEIGHTS = ['embed', 'final_norm.weight', 'lm_head', ...[0, 1].flatMap((l) => ['attn_norm.weight', 'qkv.weight',
  'o.weight', 'mlp_norm.weight', 'up.weight', 'down.weight'].map((s) => `layers.${l}.${s}`))];

export function randomArray(n: number, rng: Rng, scale: number): Float32Array {
  return Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
}

/** The plan with random weights (`extra` picks the device, dtype, ...), finalized. */
export function model(seed = 1, extra: Partial<ModelPlanConfig> = {}): NativeModel {
  const m = createModel({ ...PLAN, ...extra });
  const rng = new Rng(seed);
  for (const name of WEIGHTS) {
    const n = m.expectedSize(name);
    m.setWeight(name, name.includes('norm') ? new Float32Array(n).fill(1) : randomArray(n, rng, 0.3));
  }
  m.finalize();
  return m;
}

/** An adapter on every module of both layers (q|k|v and gate|up as one part per sub-block) and the lm_head. */
export function adapter(seed: number, rank = 4): LoraPartInput[] {
  const rng = new Rng(seed);
  const { hidden: H, intermediateLocal: I, vocab: V } = PLAN;
  const q = PLAN.headsLocal * PLAN.headDim, kv = PLAN.kvHeadsLocal * PLAN.headDim;
  const parts: LoraPartInput[] = [];
  const mk = (layer: number, module: number, outOffset: number, inDim: number, outLen: number): void => {
    parts.push({ layer, module, outOffset, rank, scale: 2, a: randomArray(rank * inDim, rng, 0.5),
      b: randomArray(outLen * rank, rng, 0.5) });
  };
  for (const l of [0, 1]) {
    mk(l, 0, 0, H, q); mk(l, 0, q, H, kv); mk(l, 0, q + kv, H, kv);
    mk(l, 1, 0, q, H);
    mk(l, 2, 0, H, I); mk(l, 2, I, H, I);
    mk(l, 3, 0, I, H);
  }
  mk(-1, LoraModuleId.lmHead, 0, H, V);
  return parts;
}

/** One prefill of 5 tokens on `slot` (-1 = base) in fresh KV blocks: the logits of its last token. */
export function prefill(slot: number): ForwardBatch {
  return stepBatch([{ tokens: [3, 14, 15, 9, 2], pos0: 0, n: 5, slot, table: [0, 1], all: false }], PLAN.blockSize);
}
