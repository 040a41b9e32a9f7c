// The performance model of DESIGN.md §9 as arithmetic: bytes a decode step must read, FLOPs a prefill
// must do, and the time bounds they give at a measured bandwidth / GEMM rate. Pure functions.
import type { ModelShape } from './shapes.js';

/** The 7 LoRA target modules of a Llama layer, as [in, out] for a shape. */
export function loraModuleDims(s: ModelShape): Record<string, [number, number]> {
  const q = s.heads * s.headDim, kv = s.kvHeads * s.headDim;
  return {
    q_proj: [s.hidden, q], k_proj: [s.hidden, kv], v_proj: [s.hidden, kv], o_proj: [q, s.hidden],
    gate_proj: [s.hidden, s.intermediate], up_proj: [s.hidden, s.intermediate], down_proj: [s.intermediate, s.hidden],
  };
}

/** Weights of the linear modules of one layer (q, k, v, o, gate, up, down). */
export function linearParamsPerLayer(s: ModelShape): number {
  return Object.values(loraModuleDims(s)).reduce((n, [i, o]) => n + i * o, 0);
}

export interface ParamCounts {
  /** Every layer's linear weights. */
  layers: number;
  lmHead: number;
  embedding: number;
  /** RMSNorm weights: two per layer and the final one. */
  norms: number;
  total: number;
}

export function paramCounts(s: ModelShape): ParamCounts {
  const layers = s.layers * linearParamsPerLayer(s);
  const lmHead = s.vocab * s.hidden, embedding = s.vocab * s.hidden, norms = (2 * s.layers + 1) * s.hidden;
  return { layers, lmHead, embedding, norms, total: layers + lmHead + embedding + norms };
}

/**
 * Base-model bytes one decode step reads: every layer weight, the norms and lm_head. The embedding
 * table is gathered (one row per sequence), not read whole, so it is left out.
 */
export function baseDecodeBytes(s: ModelShape, weightBytes: number): number {
  const p = paramCounts(s);
  return (p.layers + p.norms + p.lmHead) * weightBytes;
}

/** Bytes of one adapter of rank r on all 7 linear modules of every layer: A [r, in] + B [out, r]. */
export function adapterBytes(s: ModelShape, rank: number, weightBytes: number): number {
  const perLayer = Object.values(loraModuleDims(s)).reduce((n, [i, o]) => n + rank * (i + o), 0);
  return s.layers * perLayer * weightBytes;
}

/** KV cache bytes a decode step reads: context × layers × 2 (K and V) × kv_heads × head_dim × bytes × batch. */
export function kvReadBytes(s: ModelShape, context: number, batch: number, kvBytes: number): number {
  return context * s.layers * 2 * s.kvHeads * s.headDim * kvBytes * batch;
}

export interface DecodeBytes {
  base: number;
  adapters: number;
  kv: number;
  total: number;
}

export interface DecodeCase {
  batch: number;
  /** Distinct adapters in the batch (0: base model only). */
  adapters: number;
  rank: number;
  /** Tokens already in each sequence's KV cache. */
  context: number;
}

/** Bytes one decode step reads; `weightBytes` for base and adapters, `kvBytes` for the cache. */
export function decodeBytes(s: ModelShape, c: DecodeCase, weightBytes: number, kvBytes: number): DecodeBytes {
  const base = baseDecodeBytes(s, weightBytes);
  const adapters = c.adapters * adapterBytes(s, c.rank, weightBytes);
  const kv = kvReadBytes(s, c.context, c.batch, kvBytes);
  return { base, adapters, kv, total: base + adapters + kv };
}

export interface Bound {
  /** Lower bound on the step time, ms. */
  ms: number;
  /** Upper bound on tokens per second (batch tokens per step). */
  tokPerS: number;
}

/** The memory bound of a decode step: bytes ÷ bandwidth (bytes per second). */
export function decodeBound(bytes: number, bandwidth: number, batch: number): Bound {
  const ms = (bytes / bandwidth) * 1e3;
  return { ms, tokPerS: (batch / ms) * 1e3 };
}

/**
 * FLOPs of one prefill of `tokens` prompt tokens (one sequence, logits for the last position only):
 * 2·(layer weights)·tokens for the linear layers, 2·vocab·hidden for lm_head, and causal attention
 * (QKᵀ and PV: 2·layers·heads·head_dim·T·(T+1)). LoRA adds 2·rank·Σ(in+out)·tokens per layer.
 */
export function prefillFlops(s: ModelShape, tokens: number, rank = 0): number {
  const p = paramCounts(s);
  const lora = rank > 0 ? 2 * (adapterBytes(s, rank, 1)) * tokens : 0;
  const attention = 2 * s.layers * s.heads * s.headDim * tokens * (tokens + 1);
  return 2 * p.layers * tokens + 2 * p.lmHead + attention + lora;
}

/** The compute bound of a prefill: FLOPs ÷ FLOP rate (FLOP/s). */
export function prefillBound(flops: number, flopRate: number, tokens: number): Bound {
  const ms = (flops / flopRate) * 1e3;
  return { ms, tokPerS: (tokens / ms) * 1e3 };
}
