// LoRA pairs on a MoE layer's experts, as this rank's parts (one per expert and sub-block, tagged with the expert).
// Two layouts exist: one pair per expert module (adapters trained on transformers 4, where each expert's
// gate/up/down — Mixtral's w1/w3/w2 — was an nn.Linear), and PEFT's target_parameters on transformers 5's stacked
// expert tensors: one pair for all experts' gate_up_proj (or down_proj), lora_A [r·E, in] (expert e's rows
// e·r…e·r+r−1) and lora_B [out, r·E] (expert e's columns e, E+e, 2E+e, …: PEFT reshapes it to [out, r, E]).
import { LoraModuleId } from '../../kernels/index.js';
import { expertSubBlocks, expertWidth, rowParallelInput, type ModuleRef } from './layout.js';
import { rangeLen, type Partition } from './partition.js';
import type { ModelSpec } from './spec.js';
import { deinterleaveGateUp } from './in-out-experts.js';

export interface ExpertPairError { message: string }

type Pair = { a: Float32Array; b: Float32Array; rank: number; inDim: number; outDim: number };
type Part = { layer: number; module: number; expert: number; outOffset: number; rank: number; scale: number; a: Float32Array; b: Float32Array };

/**
 * The parts of one expert pair (ref.expert set) or of a stacked pair (ref.stackedExperts). Returns a message
 * instead when the shapes fit neither the expert module nor (stacked) either of the two stacked parameters.
 */
export function expertParts(spec: ModelSpec, part: Partition, ref: ModuleRef, pair: Pair, scale: number,
  stackedScale: (param: 'gate_up_proj' | 'down_proj') => { rank: number; scale: number }): Part[] | string {
  if (ref.stackedExperts) return stackedParts(spec, part, ref.layer, pair, stackedScale);
  const e = ref.expert!, H = spec.hidden, I = expertWidth(spec, e);
  if (ref.module === 'down') {
    if (pair.inDim !== I || pair.outDim !== H) return `expects lora_A [r, ${I}] and lora_B [${H}, r] (an expert's down projection)`;
    return [downPart(spec, part, ref.layer, e, pair.a, pair.b, pair.rank, pair.inDim, scale)];
  }
  // one role (gate_proj, up_proj) or both in one pair (Granite MoE's shared input_linear: [gate | up] rows)
  const out = I * ref.roles.length;
  if (pair.inDim !== H || pair.outDim !== out) return `expects lora_A [r, ${H}] and lora_B [${out}, r] (an expert's ${ref.roles.join(' | ')} projection)`;
  return ref.roles.map((role, k) => {
    const bl = expertSubBlocks(spec, part, e).find((b) => b.role === role)!;
    return { layer: ref.layer, module: LoraModuleId.up, expert: e, outOffset: bl.localOffset, rank: pair.rank, scale, a: pair.a,
      b: pair.b.slice((k * I + bl.local.start) * pair.rank, (k * I + bl.local.end) * pair.rank) };
  });
}

function downPart(spec: ModelSpec, part: Partition, layer: number, expert: number, a: Float32Array, b: Float32Array,
  rank: number, inDim: number, scale: number): Part {
  const cols = rowParallelInput(spec, part, 'down', expert);
  const w = rangeLen(cols);
  const sliced = new Float32Array(rank * w);
  for (let r = 0; r < rank; r++) sliced.set(a.subarray(r * inDim + cols.start, r * inDim + cols.end), r * w);
  return { layer, module: LoraModuleId.down, expert, outOffset: 0, rank, scale, a: sliced, b };
}

/** Which stacked parameter a target_parameters pair (lora_A [r·E, in], lora_B [out, r·E]) adapts, from its shapes. */
export function stackedExpertParam(spec: ModelSpec, inDim: number, outDim: number): 'gate_up_proj' | 'down_proj' | null {
  const H = spec.hidden, I = spec.moe?.intermediate ?? 0;
  return inDim === H && outDim === 2 * I ? 'gate_up_proj' : inDim === I && outDim === H ? 'down_proj' : null;
}

/**
 * stackedScale: the rank and scale the adapter's config gives the parameter (PEFT matches rank_pattern / alpha_pattern
 * against `<layer>.mlp.experts.<parameter>`; transformers 4 adapters loaded by PEFT get gate_up_proj at twice r).
 */
function stackedParts(spec: ModelSpec, part: Partition, layer: number, pair: Pair,
  stackedScale: (param: 'gate_up_proj' | 'down_proj') => { rank: number; scale: number }): Part[] | string {
  const H = spec.hidden, I = spec.moe!.intermediate, E = spec.moe!.experts;
  const param = stackedExpertParam(spec, pair.inDim, pair.outDim);
  const gateUp = param === 'gate_up_proj', down = param === 'down_proj';
  if (!param) {
    return `is a pair on all ${E} experts (target_parameters) that fits neither gate_up_proj (lora_A [r·${E}, ${H}], ` +
      `lora_B [${2 * I}, r·${E}]) nor down_proj (lora_A [r·${E}, ${I}], lora_B [${H}, r·${E}])`;
  }
  const { rank: r, scale } = stackedScale(gateUp ? 'gate_up_proj' : 'down_proj');
  if (pair.rank !== r * E) {
    return `is the ${gateUp ? 'gate_up_proj' : 'down_proj'} pair of ${E} experts at rank ${r} (r / rank_pattern), so ` +
      `lora_A needs ${r * E} rows; the config does not belong to these weights`;
  }
  const out: Part[] = [];
  for (let e = 0; e < E; e++) {
    const a = pair.a.slice(e * r * pair.inDim, (e + 1) * r * pair.inDim);
    const b = new Float32Array(pair.outDim * r);  // B_e[o, j] = B[o, j·E + e]
    for (let o = 0; o < pair.outDim; o++) for (let j = 0; j < r; j++) b[o * r + j] = pair.b[o * pair.rank + j * E + e]!;
    if (down) {
      out.push(downPart(spec, part, layer, e, a, b, r, pair.inDim, scale));
      continue;
    }
    // gate rows 0…I−1, up rows I…2I−1 of the stacked gate_up_proj (gpt-oss's alternate: de-interleaved first)
    const rows = spec.moe!.gateUpInterleaved ? deinterleaveGateUp(b, r, 0, I) : b;
    for (const bl of expertSubBlocks(spec, part, e)) {
      out.push({ layer, module: LoraModuleId.up, expert: e, outOffset: bl.localOffset, rank: r, scale, a,
        b: rows.slice((bl.fullOffset + bl.local.start) * r, (bl.fullOffset + bl.local.end) * r) });
    }
  }
  return out;
}
