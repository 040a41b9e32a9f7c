// A hybrid model's Mamba-2 layers on one rank (DESIGN.md §3 applied to the mixer): heads split over the ranks —
// in_proj's z, x and dt rows of this rank's heads, B and C rows whole on every rank; the conv's x channels of its heads
// and every B/C channel; dt_bias, A_log, D and the gated norm's weight of its heads; out_proj's columns of its heads
// (row-parallel: partial sums all-reduced; the norm's sums of squares are added over the ranks in model/mamba.cc).
import type { ModelPlanConfig } from '../../kernels/index.js';
import type { TensorSource } from '../formats/index.js';
import { UnsupportedModelError } from './errors.js';
import type { MambaSpec } from './hybrid-spec.js';
import { rangeLen, type Partition, type Range } from './partition.js';
import type { SubBlock } from './layout.js';
import { concat } from './f32-matrix.js';

/** This rank's Mamba heads. */
export function mambaHeads(m: MambaSpec, part: Pick<Partition, 'rank' | 'world'>): Range {
  if (m.heads % part.world !== 0) {
    throw new UnsupportedModelError(`mamba_n_heads ${m.heads} is not divisible by --num-shard ${part.world}`);
  }
  const per = m.heads / part.world;
  return { start: part.rank * per, end: (part.rank + 1) * per };
}

/** in_proj's output rows [z | x | B C | dt] as sub-blocks (layout.ts SubBlock): what this rank keeps of each, where. */
export function inProjBlocks(m: MambaSpec, part: Pick<Partition, 'rank' | 'world'>): SubBlock[] {
  const heads = mambaHeads(m, part), hd = m.headDim, inner = m.heads * hd, gn = m.groups * m.state;
  const mine = { start: heads.start * hd, end: heads.end * hd }, il = rangeLen(mine);
  return [
    { role: 'z', fullOffset: 0, fullLen: inner, local: mine, localOffset: 0 },
    { role: 'x', fullOffset: inner, fullLen: inner, local: mine, localOffset: il },
    { role: 'bc', fullOffset: 2 * inner, fullLen: 2 * gn, local: { start: 0, end: 2 * gn }, localOffset: 2 * il },
    { role: 'dt', fullOffset: 2 * inner + 2 * gn, fullLen: m.heads, local: heads, localOffset: 2 * il + 2 * gn },
  ];
}

/** The executor plan's Mamba fields. */
export function mambaPlan(m: MambaSpec, part: Pick<Partition, 'rank' | 'world'>): Partial<ModelPlanConfig> {
  const heads = mambaHeads(m, part);
  return { layerMamba: m.layers, mambaHeads: m.heads, mambaHeadsLocal: rangeLen(heads), mambaHeadStart: heads.start,
    mambaHeadDim: m.headDim, mambaState: m.state, mambaGroups: m.groups, mambaConv: m.conv, mambaDtMin: m.dtMin, mambaDtMax: m.dtMax };
}

function need(store: TensorSource, name: string): string {
  if (!store.has(name)) throw new UnsupportedModelError(`weight '${name}' is missing from the checkpoint`);
  return name;
}

/** Rows `ranges` of a tensor's first dimension, back to back. */
function rows(store: TensorSource, name: string, ranges: Range[]): Float32Array {
  return concat(ranges.map((r) => store.readF32(need(store, name), { dim: 0, start: r.start, end: r.end })));
}

/** Layer `layer`'s mixer (checkpoint prefix `p`, e.g. `model.layers.0.`) as plan weights. */
export function loadMambaLayer(store: TensorSource, m: MambaSpec, part: Partition, p: string, layer: number,
  set: (name: string, data: Float32Array) => void): void {
  const blocks = inProjBlocks(m, part), at = (bl: SubBlock): Range => ({ start: bl.fullOffset + bl.local.start, end: bl.fullOffset + bl.local.end });
  const heads = mambaHeads(m, part), hd = m.headDim, inner = m.heads * hd, gn = m.groups * m.state;
  const q = `${p}mamba.`, l = `layers.${layer}.`;
  set(`${l}in_proj.weight`, rows(store, `${q}in_proj.weight`, blocks.map(at)));
  if (m.projBias) set(`${l}in_proj.bias`, rows(store, `${q}in_proj.bias`, blocks.map(at)));
  // conv1d [conv_dim, 1, kernel] over [x | B | C]: this rank's x channels and every B/C channel
  const convRows = [{ start: heads.start * hd, end: heads.end * hd }, { start: inner, end: inner + 2 * gn }];
  const [, one, kernel] = store.info(need(store, `${q}conv1d.weight`)).shape;
  if (one !== 1 || kernel !== m.conv) {
    throw new UnsupportedModelError(`'${q}conv1d.weight' has shape ${JSON.stringify(store.info(`${q}conv1d.weight`).shape)}, expected [${inner + 2 * gn}, 1, ${m.conv}]`);
  }
  set(`${l}conv.weight`, rows(store, `${q}conv1d.weight`, convRows));
  if (m.convBias) set(`${l}conv.bias`, rows(store, `${q}conv1d.bias`, convRows));
  for (const [dst, src] of [['dt_bias', 'dt_bias'], ['A_log', 'A_log'], ['D', 'D']] as const) set(`${l}${dst}`, rows(store, `${q}${src}`, [heads]));
  set(`${l}ssm_norm.weight`, rows(store, `${q}norm.weight`, [{ start: heads.start * hd, end: heads.end * hd }]));
  set(`${l}out_proj.weight`, store.readF32(need(store, `${q}out_proj.weight`), { dim: 1, start: heads.start * hd, end: heads.end * hd }));
  if (m.projBias) set(`${l}out_proj.bias`, store.readF32(need(store, `${q}out_proj.bias`)));
}

/** A LoRA part as load-adapter.ts plans it. */
export interface MambaLoraPart { layer: number; module: number; outOffset: number; rank: number; scale: number; a: Float32Array; b: Float32Array }

/**
 * A PEFT pair on a Mamba layer's in_proj (module id `qkv`: its B rows split by section like a fused qkv's) or out_proj
 * (`o`: row-parallel, A's columns of this rank's heads); an error message when the shapes do not fit.
 */
export function mambaLoraParts(m: MambaSpec, part: Partition, hidden: number, layer: number, which: 'in_proj' | 'out_proj',
  moduleId: number, pair: { a: Float32Array; b: Float32Array; rank: number; inDim: number; outDim: number }, scale: number): MambaLoraPart[] | string {
  const { a, b, rank, inDim, outDim } = pair, inner = m.heads * m.headDim;
  if (which === 'out_proj') {
    if (inDim !== inner || outDim !== hidden) return `expects lora_A [r, ${inner}] and lora_B [${hidden}, r]`;
    const heads = mambaHeads(m, part), c0 = heads.start * m.headDim, c1 = heads.end * m.headDim;
    const mine = new Float32Array(rank * (c1 - c0));
    for (let r = 0; r < rank; r++) mine.set(a.subarray(r * inDim + c0, r * inDim + c1), r * (c1 - c0));
    return [{ layer, module: moduleId, outOffset: 0, rank, scale, a: mine, b }];
  }
  const blocks = inProjBlocks(m, part), full = blocks.reduce((n, bl) => n + bl.fullLen, 0);
  if (inDim !== hidden || outDim !== full) return `expects lora_A [r, ${hidden}] and lora_B [${full}, r]`;
  return blocks.map((bl) => ({ layer, module: moduleId, outOffset: bl.localOffset, rank, scale, a,
    b: b.slice((bl.fullOffset + bl.local.start) * rank, (bl.fullOffset + bl.local.end) * rank) }));
}
