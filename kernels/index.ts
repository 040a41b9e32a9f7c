// The one TypeScript file that loads and types the native addon (kernels/build/Release/weft_kernels.node).
// Everything native is reached through here. The bindings check every argument (types, shapes, ranges)
// and throw JS errors; the model plan and batches are built by shard/ code that keeps them consistent.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { NativePixtralVisionModel, NativeQwenVisionModel, NativeVisionModel, PixtralVisionPlanConfig, QwenVisionPlanConfig, VisionPlanConfig } from './vision-types.js';

export type { NativePixtralVisionModel, NativeQwenVisionModel, NativeVisionModel, PixtralVisionPlanConfig, QwenVisionPlanConfig, VisionActivation, VisionLoraPart, VisionPlanConfig } from './vision-types.js';

export interface ModelPlanConfig {
  hidden: number;
  layers: number;
  headDim: number;
  headsLocal: number;
  kvHeadsLocal: number;
  intermediateLocal: number;
  vocab: number;
  /** ceil(vocab / world): every rank's lm_head slice is padded to this many rows for the all-gather. */
  vocabChunk: number;
  vocabLocal: number;
  norm: 'rms' | 'layer';
  normEps: number;
  /** xielu (Apertus): per-layer parameters in plan weight layers.<i>.xielu [alpha_p, alpha_n, beta, eps] (effective values). */
  mlp: 'gated_silu' | 'gated_gelu_tanh' | 'clamped_swiglu' | 'gelu_tanh' | 'gelu_erf' | 'relu2' | 'xielu';
  /** clamped_swiglu (gpt-oss): gate clamped above and up both ways at gluLimit (default 7), gate·σ(gluAlpha·gate)·(up + 1) (default 1.702). */
  gluAlpha?: number;
  gluLimit?: number;
  learnedPositions: boolean;
  maxPositions: number;
  rotaryDim: number;
  invFreq: Float32Array;
  ropeAttentionFactor: number;
  slidingWindow: number;
  attnScale: number;
  /** Qwen3: per-head RMSNorm of q and k (plan weights layers.<i>.q_norm.weight / k_norm.weight [headDim]). */
  qkNorm?: boolean;
  /** OLMo 2: q and k RMS-normalised over their full width (q_norm [headsLocal·headDim], k_norm [kvHeadsLocal·headDim]; sums over the ranks). */
  qkNormFull?: boolean;
  /** Command R+: q and k LayerNorm-ed per head with each head's own weights (q_norm [headsLocal·headDim], k_norm [kvHeadsLocal·headDim]). */
  qkLayerNorm?: boolean;
  /** OLMo / OLMoE clip_qkv: q, k, v clamped to [-qkvClip, qkvClip] after the projection and q/k norms (0/absent: none). */
  qkvClip?: number;
  /** Ministral 3 (llama_4_scaling_beta): after RoPE q times 1 + qScaleBeta·ln(1 + ⌊position / qScalePeriod⌋). */
  qScaleBeta?: number;
  qScalePeriod?: number;
  /** false (OLMo 2): no attn_norm / mlp_norm before the blocks (default true). */
  preNorms?: boolean;
  /** GPT-NeoX: with parallelBlock, the MLP reads its own norm of the block input (layers.<i>.mlp_norm.*). */
  parallelMlpNorm?: boolean;
  /** Cohere, Phi-1/2: attention and the MLP both read attn_norm's output (no mlp_norm); h + attn + mlp. Optional plan weight lm_head.bias. */
  parallelBlock?: boolean;
  /** Gemma: the gathered token embedding times this (default 1). */
  embedScale?: number;
  /** Gemma 3: plan weights layers.<i>.post_attn_norm.weight / post_mlp_norm.weight normalise each block's output. */
  postNorms?: boolean;
  /** Per layer: true = sliding window (slidingWindow) with invFreqLocal; false = full attention with invFreq. */
  layerSliding?: boolean[];
  invFreqLocal?: Float32Array;
  /** The sliding layers' RoPE attention factor with invFreqLocal (default 1). */
  ropeAttentionFactorLocal?: number;
  /** GLM-4: RoPE rotates dims (2i, 2i+1) together instead of (i, i + rotaryDim/2). */
  ropeInterleaved?: boolean;
  /** SmolLM3: per layer, false = no rotary embedding in that layer (NoPE); absent = every layer rotates. */
  layerRope?: boolean[];
  /** longrope: the long factors' frequencies, for the tokens a batch marks in ropeLong. */
  invFreqLong?: Float32Array;
  /** Multimodal RoPE (Qwen2-VL): frequencies per (temporal, height, width) section, summing to rotaryDim / 2; each
   * section turns by its coordinate of ForwardBatch.mropePositions. */
  mropeSection?: number[];
  /** Qwen3-VL: the sections interleaved (frequency i by the height when i mod 3 = 1 and i < 3 · section[1], by the
   * width when i mod 3 = 2 and i < 3 · section[2], else by the temporal position). */
  mropeInterleaved?: boolean;
  /** Gemma 2: tanh caps on the attention scores and on the final logits (0 or absent = none). */
  attnSoftcap?: number;
  finalSoftcap?: number;
  /** gpt-oss: each head's learned sink logit (plan weight layers.<i>.attn_sinks [headsLocal]) joins the attention softmax. */
  attnSinks?: boolean;
  /** Llama 4: the query-scale position offset (qScaleBeta's ⌊(pos + offset) / period⌋) and whether only NoPE layers scale. */
  qScaleOffset?: number;
  qScaleNopeOnly?: boolean;
  /** Llama 4 use_qk_norm: q and k RMS-normalised per head without weights after RoPE, in the RoPE layers. */
  qkNormAfterRope?: boolean;
  /** Hunyuan: qkNorm's per-head RMS norms (with their weights) after RoPE instead of before. */
  qkNormPostRope?: boolean;
  /** Llama 4: chunked attention (attentionChunk positions per chunk) in the layers layerChunked marks. */
  attentionChunk?: number;
  layerChunked?: boolean[];
  /** EmbeddingGemma (use_bidirectional_attention): attention is not causal — a query sees its whole sequence, or a
   * two-sided window (|i - j| < slidingWindow) in the sliding layers. Right only for prompts computed whole. */
  bidirectional?: boolean;
  /** Granite: block outputs times residualScale before the residual add; logits divided by logitsDivisor (default 1). */
  residualScale?: number;
  logitsDivisor?: number;
  /**
   * Mixture of experts (Mixtral, Qwen3-MoE; the CPU backend): numExperts > 0 makes the layers layerMoe marks (absent:
   * every layer) route each token to expertsPerToken experts (plan weights layers.<i>.router.weight,
   * layers.<i>.experts.<e>.up.weight [gate | up] / .down.weight, expertIntermediateLocal rows on this rank), their
   * weights the softmax over all experts' router logits, renormalised over the chosen ones when moeRenormalize.
   */
  numExperts?: number;
  expertsPerToken?: number;
  expertIntermediateLocal?: number;
  moeRenormalize?: boolean;
  layerMoe?: boolean[];
  /**
   * GLM-4.5's routing (kernels/src/model/moe_route.h): sigmoid scores, a choice bias (plan weight
   * layers.<i>.router.bias, float32), moeTopkGroups of moeGroups expert groups, weights times moeRoutedScale; and
   * moeSharedExpert: expert numExperts (experts.<E>.*) runs for every token with weight 1.
   */
  moeSigmoid?: boolean;
  moeSharedExpert?: boolean;
  moeGroups?: number;
  moeTopkGroups?: number;
  moeRoutedScale?: number;
  /**
   * The shared expert's own width on this rank (Qwen2-MoE, DeepSeek-V2; 0/absent: the routed experts'), and
   * moeSharedGate: its weight sigmoid(x · layers.<i>.shared_gate.weight) per token instead of 1 (Qwen2-MoE).
   */
  moeSharedIntermediateLocal?: number;
  moeSharedGate?: boolean;
  /** Softmax routing limited to the moeTopkGroups groups with the largest best probability (DeepSeek-V2). */
  moeGroupMax?: boolean;
  /** ERNIE 4.5 MoE: softmax routing whose choice adds layers.<i>.router.bias; weights renormalised by max(sum, moeRenormMin). */
  moeChoiceBias?: boolean;
  moeRenormMin?: number;
  /**
   * Phi-3.5-MoE's sparsemixer: each of the (two) stages takes the largest remaining logit, weighted by its softmax over
   * the remaining experts whose relative distance below it is at most moeMixerThreshold (2 · router_jitter_noise).
   */
  moeSparsemixer?: boolean;
  moeMixerThreshold?: number;
  /** gpt-oss: the router's bias (layers.<i>.router.bias) added to its logits before the softmax routing. */
  moeLogitBias?: boolean;
  /**
   * gpt-oss: expert biases, layers.<i>.experts.<e>.up.bias (this rank's [gate | up] rows) and .down.bias ([hidden],
   * whole on every rank; rank 0 adds it).
   */
  moeExpertBias?: boolean;
  /** Llama 4: each routed expert's input scaled by its routing weight (its output added whole). */
  moeScaleInput?: boolean;
  /**
   * Multi-head latent attention (DeepSeek-V2/V3, Kimi K2; kernels/src/model/executor.h ModelConfig::mla_*), on when
   * mlaKvRank > 0: qkv is the replicated first projection [q_a | kv_a | k_rope] (or [q | kv_a | k_rope] with
   * mlaQRank 0), plan weights layers.<i>.q_a_norm.weight, kv_a_norm.weight, q_b.weight, kv_b.weight; headDim =
   * mlaNopeDim + rotaryDim; o reads headsLocal·mlaVDim. LoRA modules q_b / kv_b adapt q_b_proj / kv_b_proj.
   */
  mlaQRank?: number;
  mlaKvRank?: number;
  mlaNopeDim?: number;
  mlaVDim?: number;
  mlaNormEps?: number;
  numBlocks: number;
  blockSize: number;
  adapterSlots: number;
  /**
   * Which executor runs the plan: 'cpu' (default; fp32, the reference) or 'cuda' (the GPU executor, only in an
   * addon built with nvcc: `availableBackends` lists 'cuda'; construction throws with the reason when no GPU
   * is usable — see cudaInfo() in kernels/cuda.ts).
   */
  device?: 'cpu' | 'cuda';
  /**
   * Weight and activation storage on the GPU (weights are converted from the float32 arrays on upload; math
   * accumulates in fp32 either way). Default 'bfloat16' on cuda; the CPU backend accepts only 'float32'.
   */
  dtype?: 'float32' | 'bfloat16' | 'float16';
  /** cuda only: replay captured CUDA graphs for decode-only steps of up to 128 sequences (default true). */
  cudaGraphs?: boolean;
  /**
   * Threads of the process-wide CPU pool (0 or absent = one per hardware thread): the CPU backend's compute
   * (bit-identical for any count: work is split over independent outputs only) and, on either device, the
   * conversion of half-precision weights while loading.
   */
  cpuThreads?: number;
  /**
   * Hybrid Mamba-2 / attention (Granite 4.0 H; CPU backend only): per layer, true = a Mamba-2 mixer in place of
   * attention; this rank's mambaHeadsLocal of mambaHeads heads from mambaHeadStart, each mambaHeadDim wide with a
   * state of mambaState; mambaGroups groups of B/C (whole on every rank); conv kernel mambaConv; dt clamped to
   * [mambaDtMin, mambaDtMax] (max 0: none). Each BatchSeq then carries its stateSlot.
   */
  layerMamba?: boolean[];
  mambaHeads?: number;
  mambaHeadsLocal?: number;
  mambaHeadStart?: number;
  mambaHeadDim?: number;
  mambaState?: number;
  mambaGroups?: number;
  mambaConv?: number;
  mambaDtMin?: number;
  mambaDtMax?: number;
}

/** Module ids understood by Model.stageAdapter (C++ LoraModule). */
export const LoraModuleId = { qkv: 0, o: 1, up: 2, down: 3, q_b: 4, kv_b: 5, lmHead: 6, embed: 7 } as const;
export type LoraModuleName = keyof typeof LoraModuleId;

export interface BatchSeq {
  tokenStart: number;
  numTokens: number;
  contextLen: number;
  adapterSlot: number;
  blockTable: Int32Array;
  /** A hybrid Mamba model's recurrent-state slot for the sequence (zeroed by a chunk that starts it); else absent. */
  stateSlot?: number;
  /** Gemma 3's images: [start, end) position pairs, sorted and disjoint, whose tokens attend to each other both ways
   * (a query inside one sees the span's later keys too); one holding a query of this step must end within contextLen.
   * CPU backend only. Absent: causal. */
  imageSpans?: Int32Array;
}
export interface ForwardBatch {
  tokens: Int32Array;
  positions: Int32Array;
  slotMapping: Int32Array;
  /** Per token, 1 = rotate with the model's invFreqLong (longrope past the original context); absent = none. */
  ropeLong?: Uint8Array;
  /** Multimodal RoPE (a model with mropeSection): [3 · T] — every token's temporal position, then every height, then
   * every width; absent = `positions` in all three (text). */
  mropePositions?: Int32Array;
  seqs: BatchSeq[];
  logitRows: Int32Array;
  /** forward() also returns each logit row's final hidden state (after the final norm), [logitRows.length,
   * hidden] after the logits (embeddings). */
  returnHidden?: boolean;
  /** forward() also returns these token rows' final hidden states, [hiddenRows.length, hidden], after all of that
   * (pooled embeddings: every prompt position). */
  hiddenRows?: Int32Array;
  /** Vision-language models: token row embedRows[i] starts from embedValues[i·hidden, (i+1)·hidden) instead of its
   * token's embedding (an image's projected features; CPU backend only). */
  embedRows?: Int32Array;
  embedValues?: Float32Array;
  /** Deepstack (Qwen3-VL): after decoder layer l (l < sets), token row deepstackRows[i] of the hidden state gets
   * deepstackValues[(l · rows + i) · hidden, …) added; deepstackValues is [sets, rows, hidden]. CPU backend only. */
  deepstackRows?: Int32Array;
  deepstackValues?: Float32Array;
}

/** How a LoRA part's arrays are stored: float32, or a 16-bit GPU model's own format (bit patterns in Uint16Array). */
export type LoraStorage = 'float32' | 'bfloat16' | 'float16';

/** One LoRA part for a slot: A [rank, in] and B [outLen, rank] (row-major), covering outputs outOffset.. of the module. */
export interface LoraPartInput {
  layer: number;
  module: number;
  outOffset: number;
  rank: number;
  scale: number;
  /** float32 values, or (storage 'bfloat16' / 'float16', a CUDA model of that dtype only) their 16-bit patterns. */
  a: Float32Array | Uint16Array;
  b: Float32Array | Uint16Array;
  storage?: LoraStorage;
  /** DoRA: the outputs' channel scale magnitude / ||W + scale·B·A|| (float32 [outLen]); absent for plain LoRA. */
  mag?: Float32Array;
  /** A MoE layer's expert whose up (gate | up) or down this part adapts; absent: the layer's own module. */
  expert?: number;
}

/** One op's total over the profiled steps (NativeModel.takeOpProfile). */
export interface OpTime {
  op: string;
  ms: number;
  /** Times it ran (per layer and step: a per-layer op of a 32-layer model runs 32 times a step). */
  calls: number;
}

/** An adapter staged by NativeModel.stageAdapter, held by the executor until installed or released. */
export interface StagedAdapter {
  /** What the slot will hold, in the executor's dtype. */
  readonly bytes: number;
  /** Frees the staged memory without installing it (a no-op once installed). */
  release(): void;
}

export interface NativeModel {
  expectedSize(name: string): number;
  setWeight(name: string, data: Float32Array): void;
  finalize(): void;
  /**
   * Checks an adapter's parts and copies them into the executor's memory (a CUDA model uploads them, on a copy
   * stream of its own) on the libuv thread pool, beside steps; no slot changes until installAdapter. The parts'
   * arrays must stay unchanged until the promise settles. Rejects naming the first bad part.
   */
  stageAdapter(parts: LoraPartInput[]): Promise<StagedAdapter>;
  /** stageAdapter on the calling thread. */
  stageAdapterSync(parts: LoraPartInput[]): StagedAdapter;
  /**
   * DoRA's squared weight norms, this rank's share, one Float32Array [outLen] per part: for each output row,
   * the sum over this rank's input columns of (W + scale·B·A)² (a row-parallel module's ranks add theirs up).
   * On the libuv pool, beside steps. The CPU backend only; a CUDA model rejects.
   */
  loraWeightNormsSq(parts: LoraPartInput[]): Promise<Float32Array[]>;
  /** loraWeightNormsSq on the calling thread. */
  loraWeightNormsSqSync(parts: LoraPartInput[]): Float32Array[];
  /** Replaces what `slot` holds with `staged` (from this model) and marks it loaded; quick. Between steps only. */
  installAdapter(slot: number, staged: StagedAdapter): void;
  clearAdapter(slot: number): void;
  adapterBytes(slot: number): number;
  /** Logits [logitRows.length, vocab], full vocabulary on every rank (then the hidden states: returnHidden's, hiddenRows'). */
  forward(batch: ForwardBatch): Promise<Float32Array>;
  /**
   * The step, then one sampled token per logit row (rows[i] for logitRows[i]) with the CPU's sampling rules.
   * A one-rank CUDA model samples on the GPU and copies back only the results; otherwise the logits are
   * sampled on the host, on the worker thread. Every rank of a group must call it (or forward) for each step.
   */
  forwardSample(batch: ForwardBatch, rows: RowSampling[]): Promise<SampleResult[]>;
  /**
   * Per-op time of the steps run while on: each op from its start to the next op's (host clock on the CPU, CUDA
   * events on the GPU). A CUDA model runs without decode graphs meanwhile, so its step times are not the usual ones.
   */
  setOpProfile(on: boolean): void;
  /** The per-op totals since the last call, in the order the ops first ran; resets them. */
  takeOpProfile(): OpTime[];
  dispose(): void;
}

export type CollectiveOptions =
  | { kind: 'solo' }
  | { kind: 'shm'; name: string; rank: number; world: number; maxFloats: number; timeoutMs?: number }
  /**
   * CUDA builds only: joins the NCCL group of rank 0's `uniqueId` (128 bytes, ncclUniqueId() in cuda.ts) on CUDA
   * device `device` (default 0). Blocks until every rank has joined. For a cuda Model only: its buffers are device
   * memory, so allReduceSum/allGather on host arrays throw.
   */
  | { kind: 'nccl'; rank: number; world: number; uniqueId: Uint8Array; device?: number };

export interface NativeCollective {
  allReduceSum(data: Float32Array): void;
  allGather(data: Float32Array): Float32Array;
  dispose(): void;
}

export interface SamplingOptions {
  temperature: number;
  topK: number;
  topP: number;
  typicalP: number;
  /** Keep tokens at least minP times as likely as the top one (after top-k/top-p, before typical-p); absent/0 = off. */
  minP?: number;
  repetitionPenalty: number;
  /** OpenAI's frequency / presence penalties on the generated tokens (the last drawIndex of penaltyTokens); 0 = off. */
  frequencyPenalty?: number;
  presencePenalty?: number;
  /** Added to these tokens' logits after the penalties, before temperature. */
  logitBias?: { token: number; bias: number }[];
  /** Structured output: bit t (byte t >> 3, bit t & 7) set = token t may be drawn; the rest get -inf. */
  allowedMask?: Uint8Array;
  doSample: boolean;
  seed: number;
  /** Which draw of this sequence (its generated-token count): the RNG depends only on (seed, drawIndex). */
  drawIndex: number;
}
/** How one logit row is sampled by forwardSample: the row's sampling options and the tokens it has seen. */
export interface RowSampling extends SamplingOptions {
  /** Prompt + generated tokens, for the penalties (empty when there are none). */
  penaltyTokens: Int32Array;
  /** How many most likely (token, logprob) pairs to return. */
  topN: number;
}
export interface SampleResult {
  token: number;
  logprob: number;
  top: [number, number][];
}

/** Output rows [o0, o1) and input columns [i0, i1) of a weight [out, in]. */
export interface DequantWindow { o0: number; o1: number; i0: number; i1: number }
/** Scales or zero points over a weight [out, in]: (o, i) reads data[⌊o / rowsPer⌋ · cols + ⌊i / colsPer⌋]. */
export interface DequantGrid<T extends Float32Array | Int32Array> { data: T; rowsPer: number; cols: number; colsPer: number }

export interface CpuOps {
  gemm(x: Float32Array, tokens: number, inDim: number, w: Float32Array, outDim: number, bias: Float32Array | null): Float32Array;
  rmsNorm(x: Float32Array, weight: Float32Array, eps: number): Float32Array;
  layerNorm(x: Float32Array, weight: Float32Array, bias: Float32Array, eps: number): Float32Array;
  rope(x: Float32Array, heads: number, headDim: number, rotaryDim: number, positions: Int32Array, invFreq: Float32Array,
    attentionFactor: number): Float32Array;
  siluMul(gate: Float32Array, up: Float32Array): Float32Array;
  gelu(x: Float32Array, kind: 'tanh' | 'erf'): Float32Array;
  pagedAttention(q: Float32Array, heads: number, kvHeads: number, headDim: number,
    seqs: { tokenStart: number; numTokens: number; contextLen: number; blockTable: Int32Array }[],
    kCache: Float32Array, vCache: Float32Array, blockSize: number, scale: number, slidingWindow: number): Float32Array;
  lora(x: Float32Array, a: Float32Array, b: Float32Array, scale: number, y: Float32Array, yStride: number,
    outOffset: number, rank: number): Float32Array;
  /** DoRA's squared weight-row norms: for each row o of W [rows, in], Σ_j (W + scale·B·A)[o, j]² (A [rank, in], B [rows, rank]). */
  loraWeightNormsSq(w: Float32Array, a: Float32Array, b: Float32Array, rank: number, scale: number): Float32Array;
  /** DoRA's channel scale on y [T, yStride] from outOffset: mag·(y − bias) + bias (bias null: mag·y); a copy. */
  doraScale(y: Float32Array, yStride: number, outOffset: number, mag: Float32Array, bias: Float32Array | null): Float32Array;
  sample(logits: Float32Array, params: SamplingOptions, penaltyTokens: Int32Array, topN: number): SampleResult;
  logSoftmaxAt(logits: Float32Array, token: number): number;
  /** memcpy of src into dst (same length) split over the CPU pool's threads. */
  parallelCopy(dst: Uint8Array, src: Uint8Array): void;
  /** Threads of the CPU pool (set by the last model created in this process; 1 before any). */
  cpuThreads(): number;
  /** fp16 (bf16 false) or bf16 bit patterns → float32 into out[outOffset…], exactly, on the CPU pool's threads. */
  decodeHalf(src: Uint16Array, bf16: boolean, out: Float32Array, outOffset: number): void;
  /** float32 → fp16 (bf16 false) or bf16 bit patterns, round to nearest even, on the CPU pool's threads. */
  encodeHalf(src: Float32Array, bf16: boolean, out: Uint16Array): void;
  /** Quantized checkpoints' weights dequantized for a window of [out, in] (shard/models/quantized/dequantize.ts), threaded. */
  dequantAwq(qweight: Int32Array, qzeros: Int32Array, scales: Float32Array, outDim: number, inDim: number, groupSize: number, window: DequantWindow): Float32Array;
  dequantGptq(qweight: Int32Array, qzeros: Int32Array, scales: Float32Array, gIdx: Int32Array | null, outDim: number, inDim: number,
    bits: number, groupSize: number, zeroOffset: number, window: DequantWindow): Float32Array;
  dequantPacked(packed: Int32Array, scales: Float32Array, groups: number, colsPerGroup: number, gIdx: Int32Array | null,
    zeroPoint: Int32Array | null, outDim: number, inDim: number, bits: number, window: DequantWindow): Float32Array;
  dequantBnb4(packed: Uint8Array, absmax: Float32Array, code: Float32Array, outDim: number, inDim: number, blocksize: number, window: DequantWindow): Float32Array;
  dequantFp4(packed: Uint8Array, scales: Float32Array, groups: number, groupSize: number, outDim: number, inDim: number, window: DequantWindow): Float32Array;
  /** values: the window's rows [o1 − o0, in], bytes decoded through table (256 values) or float32 (table null). */
  dequantUnpacked(values: Uint8Array | Float32Array, table: Float32Array | null, inDim: number, scale: DequantGrid<Float32Array>,
    zeroPoint: DequantGrid<Int32Array> | null, post: number, outDim: number, window: DequantWindow): Float32Array;
}

interface Addon {
  Model: new (config: ModelPlanConfig, collective?: NativeCollective) => NativeModel;
  VisionModel: new (config: VisionPlanConfig) => NativeVisionModel;
  QwenVisionModel: new (config: QwenVisionPlanConfig) => NativeQwenVisionModel;
  PixtralVisionModel: new (config: PixtralVisionPlanConfig) => NativePixtralVisionModel;
  Collective: new (opts: CollectiveOptions) => NativeCollective;
  ops: CpuOps;
  backends: string;
}

const addonPath = fileURLToPath(new URL('../../kernels/build/Release/weft_kernels.node', import.meta.url));

function loadAddon(): Addon {
  if (!existsSync(addonPath)) {
    throw new Error(`native addon not built: ${addonPath} is missing. Run 'npm run build' (needs cmake and g++).`);
  }
  return createRequire(import.meta.url)(addonPath) as Addon;
}

const addon = loadAddon();

export const cpuOps: CpuOps = addon.ops;
export const availableBackends: string[] = addon.backends.split(',');
export function createModel(config: ModelPlanConfig, collective?: NativeCollective): NativeModel {
  return collective ? new addon.Model(config, collective) : new addon.Model(config);
}
export function createQwenVisionModel(config: QwenVisionPlanConfig): NativeQwenVisionModel {
  return new addon.QwenVisionModel(config);
}
export function createPixtralVisionModel(config: PixtralVisionPlanConfig): NativePixtralVisionModel {
  return new addon.PixtralVisionModel(config);
}
export function createVisionModel(config: VisionPlanConfig): NativeVisionModel {
  return new addon.VisionModel(config);
}
export function createCollective(opts: CollectiveOptions): NativeCollective {
  return new addon.Collective(opts);
}
