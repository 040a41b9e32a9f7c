// The C++ model plan of one rank (ModelPlanConfig) from a model's spec, its partition and the load options: sizes,
// this rank's slice widths, per-architecture switches. Split from load-weights.ts, which fills the plan's weights.
import type { ModelPlanConfig } from '../../kernels/index.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../formats/index.js';
import type { LoadOptions } from './load-weights.js';
import { mambaPlan } from './mamba-weights.js';
import { rangeLen, type Partition } from './partition.js';
import type { ModelSpec } from './spec.js';

/** x rounded to float32, or to bf16 / fp16 (nearest even): transformers multiplies Gemma's embedding scale in the weights' dtype. */
export function roundToDtype(x: number, dtype: 'float32' | 'bfloat16' | 'float16'): number {
  if (dtype === 'bfloat16') return bf16ToF32(f32ToBf16(x));
  if (dtype === 'float16') return f16ToF32(f32ToF16(x));
  return Math.fround(x);
}

export function planConfig(spec: ModelSpec, part: Partition, opts: LoadOptions): ModelPlanConfig {
  return {
    hidden: spec.hidden,
    layers: spec.layers,
    headDim: spec.headDim,
    headsLocal: rangeLen(part.heads),
    kvHeadsLocal: rangeLen(part.kvHeads),
    intermediateLocal: rangeLen(part.intermediate),
    vocab: spec.vocab,
    vocabChunk: part.vocabChunk,
    vocabLocal: rangeLen(part.vocab),
    norm: spec.norm,
    normEps: spec.normEps,
    mlp: spec.mlp,
    learnedPositions: spec.learnedPositions,
    maxPositions: spec.maxPositions,
    rotaryDim: spec.rope?.rotaryDim ?? 0,
    invFreq: spec.rope?.invFreq ?? new Float32Array(0),
    ropeAttentionFactor: spec.rope?.attentionFactor ?? 1,
    slidingWindow: spec.slidingWindow,
    attnScale: spec.attnScale,
    qkNorm: spec.qkNorm,
    ...(spec.qkNormPostRope ? { qkNormPostRope: true } : {}),
    qkNormFull: spec.qkNormFull,
    qkLayerNorm: spec.qkLayerNorm,
    qkvClip: spec.qkvClip,
    ...(spec.queryScale ? { qScaleBeta: spec.queryScale.beta, qScalePeriod: spec.queryScale.period,
      qScaleOffset: spec.queryScale.offset ?? 0, qScaleNopeOnly: spec.queryScale.nopeOnly === true } : {}),
    qkNormAfterRope: spec.qkNormAfterRope,
    ...(spec.layerChunked ? { attentionChunk: spec.attentionChunk, layerChunked: spec.layerChunked } : {}),
    ...(spec.bidirectional ? { bidirectional: true } : {}),
    preNorms: spec.preNorms,
    parallelBlock: spec.parallelBlock,
    parallelMlpNorm: spec.parallelMlpNorm,
    // Gemma's scale is a buffer in the weights' dtype; Granite's multiplier a Python float (not rounded).
    embedScale: spec.normPlusOne ? roundToDtype(spec.embedScale, opts.dtype ?? (opts.device === 'cuda' ? 'bfloat16' : 'float32'))
      : Math.fround(spec.embedScale),
    postNorms: spec.postNorms,
    ropeInterleaved: spec.ropeInterleaved,
    attnSoftcap: spec.attnSoftcap,
    finalSoftcap: spec.finalSoftcap,
    attnSinks: spec.attnSinks,
    ...(spec.gluLimit !== undefined ? { gluLimit: spec.gluLimit } : {}),
    residualScale: spec.residualScale,
    logitsDivisor: spec.logitsDivisor,
    ...(spec.layerSliding ? { layerSliding: spec.layerSliding } : {}),
    ...(spec.layerRope ? { layerRope: spec.layerRope } : {}),
    ...(spec.ropeLocal ? { invFreqLocal: spec.ropeLocal.invFreq, ropeAttentionFactorLocal: spec.ropeLocal.attentionFactor } : {}),
    ...(spec.rope?.long ? { invFreqLong: spec.rope.long.invFreq } : {}),
    ...(spec.mropeSection ? { mropeSection: [...spec.mropeSection], ...(spec.mropeInterleaved ? { mropeInterleaved: true } : {}) } : {}),
    ...(spec.moe ? {
      numExperts: spec.moe.experts, expertsPerToken: spec.moe.perToken, expertIntermediateLocal: rangeLen(part.expertIntermediate),
      moeRenormalize: spec.moe.renormalize, ...(spec.moe.layers ? { layerMoe: spec.moe.layers } : {}),
      moeSigmoid: spec.moe.sigmoid, moeSharedExpert: spec.moe.sharedExpert, moeGroups: spec.moe.groups,
      moeTopkGroups: spec.moe.topkGroups, moeRoutedScale: spec.moe.routedScale,
      ...(spec.moe.sharedIntermediate ? { moeSharedIntermediateLocal: rangeLen(part.sharedIntermediate) } : {}),
      moeSharedGate: spec.moe.sharedGate === true, moeGroupMax: spec.moe.groupMax === true,
      moeChoiceBias: spec.moe.choiceBias === true, moeRenormMin: spec.moe.renormMin ?? 0,
      moeLogitBias: spec.moe.logitBias === true, moeExpertBias: spec.moe.expertBias === true, moeScaleInput: spec.moe.scaleInput === true,
      ...(spec.moe.mixerThreshold !== undefined ? { moeSparsemixer: true, moeMixerThreshold: spec.moe.mixerThreshold } : {}),
    } : {}),
    ...(spec.mla ? { mlaQRank: spec.mla.qRank, mlaKvRank: spec.mla.kvRank, mlaNopeDim: spec.mla.nopeDim, mlaVDim: spec.mla.vDim } : {}),
    ...(spec.mamba ? mambaPlan(spec.mamba, part) : {}),
    numBlocks: opts.numBlocks,
    blockSize: opts.blockSize,
    adapterSlots: opts.adapterSlots,
    device: opts.device ?? 'cpu',
    dtype: opts.dtype ?? (opts.device === 'cuda' ? 'bfloat16' : 'float32'),
    cpuThreads: opts.cpuThreads ?? 0,
  };
}

