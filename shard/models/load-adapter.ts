// Maps a PEFT LoRA adapter onto an executor slot: every lora_A/lora_B pair is placed on the module it
// targets, sliced for this rank exactly like the base weight (DESIGN.md §3, §4). The tensors in the file
// are the truth; the config supplies scales (alpha/r, rsLoRA, rank_pattern, alpha_pattern).
import { LoraModuleId, cpuOps, type LoraPartInput, type LoraStorage, type StagedAdapter } from '../../kernels/index.js';
import { loraScaleFor, parseLoraTensorKey, type LoadedAdapter } from '../adapters/index.js';
import { interleavedHeadRows, subBlocks, rowParallelInput, resolveModule, languageModelPath } from './layout.js';
import { mambaLoraParts } from './mamba-weights.js';
import { rangeLen } from './partition.js';
import type { LoadedModel } from './load-weights.js';
import { expertParts } from './expert-lora.js';
import { visionLoraTarget } from './vision-weights.js';
import { qwenVisionLoraTarget } from './qwen-vision-weights.js';
import { PIXTRAL_LORA_MODULES, pixtralLoraTarget } from './pixtral-weights.js';
import type { VisionLoraPart } from '../../kernels/index.js';

export class AdapterLoadError extends Error {
  override name = 'AdapterLoadError';
}

/**
 * A planned part. `magnitude`: a DoRA adapter's magnitude for the part's outputs; the shard turns it into the
 * part's channel scale `mag` (magnitude / weight norm) just before staging (dora.ts), since the norm needs the
 * base weights the executor holds.
 */
export type LoraPartPlan = LoraPartInput & { magnitude?: Float32Array };

/**
 * What planning needs of a model: its shape, this rank's tensor-parallel share and the storage its LoRA parts are
 * planned in (plain data: workers get it). No storage: float32.
 */
export type AdapterLayout = Pick<LoadedModel, 'spec' | 'partition'> & { loraStorage?: LoraStorage };

export interface AdapterPlan {
  parts: LoraPartPlan[];
  maxRank: number;
  /** Bytes of the parts' arrays. */
  bytes: number;
  /** The parts' storage: float32, or a 16-bit GPU model's format (then nothing needs the float32 tensors). */
  storage: LoraStorage;
  /** A LLaVA model's adapter pairs on its vision tower / projector (float32, whole on every rank); absent: none. */
  vision?: VisionLoraPart[];
}

/**
 * The storage a model's LoRA parts are planned in: a 16-bit CUDA model's own format — the slot holds that anyway,
 * so the host-RAM tier keeps half the bytes and staging copies them without converting — else float32 (the
 * CPU backend computes in float32, and golden logits are checked there to 1e-4).
 */
export function loraStorageOf(model: Pick<LoadedModel, 'plan'>, env: NodeJS.ProcessEnv = process.env): LoraStorage {
  const { device, dtype } = model.plan;
  // WEFT_ADAPTER_PLAN_FLOAT32=1 keeps float32 plans on a GPU too (uploaded, rounded on the device): the way around
  // a problem with 16-bit staging on a new setup without a rebuild.
  if (env.WEFT_ADAPTER_PLAN_FLOAT32 === '1') return 'float32';
  return device === 'cuda' && (dtype === 'bfloat16' || dtype === 'float16') ? dtype : 'float32';
}

/** The parts' arrays in `storage` (each distinct array converted once: parts of one module may share A). */
function stored(parts: LoraPartPlan[], storage: LoraStorage): LoraPartPlan[] {
  if (storage === 'float32') return parts;
  const done = new Map<Float32Array | Uint16Array, Uint16Array>();
  const encode = (m: Float32Array | Uint16Array): Uint16Array => {
    let out = done.get(m);
    if (!out) {
      out = new Uint16Array(m.length);
      cpuOps.encodeHalf(m as Float32Array, storage === 'bfloat16', out);
      done.set(m, out);
    }
    return out;
  };
  return parts.map((p) => ({ ...p, a: encode(p.a), b: encode(p.b), storage }));
}

// A range that is the whole matrix is the matrix itself, not a copy (one rank, or a module this rank holds
// whole): staging copies what it is given, and copying a Llama-2-7B rank-16 adapter's B matrices here took
// ~100 ms.
function sliceRows(m: Float32Array, cols: number, start: number, end: number): Float32Array {
  if (start === 0 && end * cols === m.length) return m;
  return m.slice(start * cols, end * cols);
}

function sliceCols(m: Float32Array, rows: number, cols: number, start: number, end: number): Float32Array {
  if (start === 0 && end === cols) return m;
  const w = end - start;
  const out = new Float32Array(rows * w);
  for (let r = 0; r < rows; r++) out.set(m.subarray(r * cols + start, r * cols + end), r * w);
  return out;
}

/**
 * Plans this rank's LoRA parts for a parsed adapter; throws AdapterLoadError naming the problem.
 * `dir` names the adapter in messages.
 */
export function planAdapter(model: AdapterLayout, adapter: LoadedAdapter, dir: string, maxLoraRank: number): AdapterPlan {
  const { config, tensors } = adapter;
  const spec = model.spec, part = model.partition;
  type T = { shape: number[]; data: Float32Array };
  const pairs = new Map<string, { a?: T; b?: T; m?: T }>();
  for (const [key, t] of tensors) {
    const { modulePath, kind } = parseLoraTensorKey(key);
    if (kind === 'BASE') {
      // dropBaseLayerCopies removes these once checked against the model; one left here was never checked.
      throw new AdapterLoadError(`${dir}: '${key}' was not checked against the base model's lm_head`);
    }
    if (kind === 'TOKENS') {  // trainableTokensAsLora turns these into LoRA pairs where the adapter is read
      throw new AdapterLoadError(`${dir}: trainable tokens '${key}' were not converted against the base model's rows`);
    }
    const entry = pairs.get(modulePath) ?? {};
    if (kind === 'A') entry.a = t;
    else if (kind === 'B') entry.b = t;
    else entry.m = t;
    pairs.set(modulePath, entry);
  }
  // A DoRA adapter's parts stay float32 (a GPU rounds them as it uploads them): its weight norms are computed
  // from them on the host (dora.ts), as PEFT computes them from the float32 factors.
  const storage = config.useDora ? 'float32' : model.loraStorage ?? 'float32';
  if (pairs.size === 0) throw new AdapterLoadError(`${dir}: the adapter has no LoRA tensors`);
  const parts: LoraPartPlan[] = [];
  let maxRank = 0;
  let visionPairs = 0;
  const vision: VisionLoraPart[] = [];
  for (const [path, { a, b, m }] of pairs) {
    if (!a || !b) throw new AdapterLoadError(`${dir}: module '${path}' has lora_${a ? 'A' : 'B'} but no lora_${a ? 'B' : 'A'}`);
    if (languageModelPath(spec, path) === null && spec.qwenVision) {  // Qwen2-VL: run in the vision tower
      const target = qwenVisionLoraTarget(spec.qwenVision, path);
      if (target === null) {
        throw new AdapterLoadError(`${dir}: adapter targets '${path}', which is not a supported linear module of the ` +
          `vision tower (blocks' attn.qkv, attn.proj, ${spec.qwenVision.windowed ? 'mlp.gate_proj/up_proj/down_proj'
            : spec.qwenVision.qwen3 ? 'mlp.linear_fc1/linear_fc2' : 'mlp.fc1/fc2'}; ` +
          `${spec.qwenVision.qwen3 ? 'merger.linear_fc1/linear_fc2, deepstack_merger_list.<i>.linear_fc1/linear_fc2'
            : 'merger.mlp.0, merger.mlp.2'})`);
      }
      if (m) throw new AdapterLoadError(`${dir}: '${path}' is a DoRA module on the vision tower, which is not supported`);
      const { scale } = loraScaleFor(config, path);
      vision.push({ target, rank: a.shape[0]!, scale, a: a.data, b: b.data });
      visionPairs++;
      continue;
    }
    if (languageModelPath(spec, path) === null && spec.pixtral) {  // Mistral 3: run in the Pixtral tower / projector
      const target = pixtralLoraTarget(spec.pixtral, path);
      if (target === null) {
        throw new AdapterLoadError(`${dir}: adapter targets '${path}', which is not a supported linear module of the ` +
          `Pixtral vision tower or Mistral 3's projector (${PIXTRAL_LORA_MODULES})`);
      }
      if (m) throw new AdapterLoadError(`${dir}: '${path}' is a DoRA module on the vision tower, which is not supported`);
      if (target === 'skip') continue;  // a block after the selected hidden state: it never reaches a feature
      const { scale } = loraScaleFor(config, path);
      vision.push({ target, rank: a.shape[0]!, scale, a: a.data, b: b.data });
      visionPairs++;
      continue;
    }
    if (languageModelPath(spec, path) === null && spec.vision) {  // LLaVA: run in the image encoder (vision-weights.ts)
      const target = visionLoraTarget(spec.vision, path);
      if (target === null) {
        throw new AdapterLoadError(`${dir}: adapter targets '${path}', which is not a supported linear module of the ` +
          (spec.vision.idefics3 ? 'Idefics3 vision tower or connector (q/k/v/out_proj, fc1, fc2 of the encoder layers; ' +
            'connector.modality_projection.proj)' : spec.vision.siglip ? 'SigLIP vision tower (q/k/v/out_proj, fc1, fc2 of the encoder layers; Gemma 3\'s projector ' +
            'has no linear module)' : 'vision tower or projector (q/k/v/out_proj, fc1, fc2 of the encoder layers; linear_1, linear_2)'));
      }
      if (m) throw new AdapterLoadError(`${dir}: '${path}' is a DoRA module on the vision tower, which is not supported`);
      if (target === 'skip') continue;  // a layer after the selected hidden states: it never reaches a feature
      const { scale } = loraScaleFor(config, path);
      // Shapes are checked against the vision plan when the adapter is installed (VisionModel.checkLora).
      vision.push({ target, rank: a.shape[0]!, scale, a: a.data, b: b.data });
      visionPairs++;
      continue;
    }
    if (languageModelPath(spec, path) === null) {  // the vision tower / projector: text requests never run them
      visionPairs++;
      continue;
    }
    const ref = resolveModule(spec, path);
    if (!ref && spec.architecture === 'dbrx' && /\.ffn\.(?:router|experts)\b/.test(path)) {  // dbrx-weights.ts
      throw new AdapterLoadError(`${dir}: adapter targets '${path}', which is not supported: on DBRX only Wqkv, out_proj ` +
        `and lm_head are served (weft adapts no MoE router; PEFT cannot run LoRA on DBRX's fused experts either)`);
    }
    if (!ref && /\.(?:mlp|block_sparse_moe)\.(?:gate(?:\.wg)?|router)$/.test(path) && spec.moe) {  // Hunyuan's gate.wg, PhiMoE's router
      const name = path.slice(path.lastIndexOf('.') + 1);  // the module's own name, as target_modules matches it
      throw new AdapterLoadError(`${dir}: adapter targets the MoE router '${path}', which is not supported; retrain ` +
        `without '${name}' in target_modules (the experts' projections are served)`);
    }
    if (!ref) {
      throw new AdapterLoadError(`${dir}: adapter targets '${path}', which is not a supported linear module of this ` +
        `${spec.architecture} model (wrong base model?)`);
    }
    const [rank, inDim] = a.shape;
    const [outDim, rankB] = b.shape;
    if (a.shape.length !== 2 || b.shape.length !== 2 || rankB !== rank) {
      throw new AdapterLoadError(`${dir}: '${path}' lora_A ${JSON.stringify(a.shape)} and lora_B ${JSON.stringify(b.shape)} do not form a LoRA pair`);
    }
    // target_parameters on stacked experts: rank r per expert, r·E rows in the file (checked in expertParts).
    const partRank = ref.stackedExperts ? Math.ceil(rank / spec.moe!.experts) : rank;
    if (partRank > maxLoraRank) throw new AdapterLoadError(`${dir}: '${path}' has rank ${partRank}, above --max-lora-rank ${maxLoraRank}`);
    maxRank = Math.max(maxRank, partRank);
    const { scale } = loraScaleFor(config, path);
    if (ref.expert !== undefined || ref.stackedExperts) {
      if (m) throw new AdapterLoadError(`${dir}: '${path}' is a DoRA module on MoE experts, which is not supported`);
      const container = path.replace(/(?:\.base_layer)+$/, '');
      const planned = expertParts(spec, part, ref, { a: a.data, b: b.data, rank, inDim, outDim }, scale,
        (param) => loraScaleFor(config, `${container}.${param}`));
      if (typeof planned === 'string') {
        throw new AdapterLoadError(`${dir}: '${path}' ${planned}, got ${JSON.stringify(a.shape)} / ${JSON.stringify(b.shape)} ` +
          `(adapter made for a different base model?)`);
      }
      parts.push(...planned);
      continue;
    }
    const moduleId = LoraModuleId[ref.module];
    if (ref.mamba) {  // a Mamba layer's in_proj (split by section) or out_proj (row-parallel): mamba-weights.ts
      if (m) throw new AdapterLoadError(`${dir}: '${path}' is a DoRA module on a Mamba mixer, which is not supported`);
      const planned = mambaLoraParts(spec.mamba!, part, spec.hidden, ref.layer, ref.mamba, moduleId,
        { a: a.data, b: b.data, rank, inDim, outDim }, scale);
      if (typeof planned === 'string') {
        throw new AdapterLoadError(`${dir}: '${path}' ${planned}, got ${JSON.stringify(a.shape)} / ${JSON.stringify(b.shape)} ` +
          `(adapter made for a different base model?)`);
      }
      parts.push(...planned);
      continue;
    }
    if (m && (ref.module === 'lmHead' || ref.module === 'embed')) {
      throw new AdapterLoadError(`${dir}: '${path}' is a DoRA module on ${ref.module === 'embed' ? 'the token embedding' : 'lm_head'}, ` +
        `which is not supported; retrain without it in target_modules or merge the adapter into the base model`);
    }
    if (ref.module === 'embed') {
      // Every rank holds the whole embedding table, so the pair is not sliced: A [r, vocab], B [hidden, r].
      if (inDim !== spec.vocab || outDim !== spec.hidden) {
        throw new AdapterLoadError(`${dir}: '${path}' expects lora_embedding_A [r, ${spec.vocab}] and lora_embedding_B ` +
          `[${spec.hidden}, r], got ${JSON.stringify(a.shape)} / ${JSON.stringify(b.shape)} (a resized vocabulary, or another base model?)`);
      }
      parts.push({ layer: -1, module: moduleId, outOffset: 0, rank, scale, a: a.data, b: b.data });
      continue;
    }
    if (ref.module === 'o' || ref.module === 'down') {
      const full = ref.module === 'o' ? spec.heads * (spec.mla ? spec.mla.vDim : spec.headDim) : spec.intermediate;
      if (inDim !== full || outDim !== spec.hidden) {
        throw new AdapterLoadError(`${dir}: '${path}' expects lora_A [r, ${full}] and lora_B [${spec.hidden}, r], ` +
          `got ${JSON.stringify(a.shape)} / ${JSON.stringify(b.shape)} (adapter made for a different base model?)`);
      }
      const cols = rowParallelInput(spec, part, ref.module);
      // Every rank holds all the outputs of a row-parallel module: the whole magnitude (its norms are summed
      // over the ranks' input slices, dora.ts).
      parts.push({ layer: ref.layer, module: moduleId, outOffset: 0, rank, scale,
        a: sliceCols(a.data, rank, inDim, cols.start, cols.end), b: b.data, ...(m ? { magnitude: m.data } : {}) });
      continue;
    }
    const blocks = subBlocks(spec, part, ref.module);
    const mine = ref.roles.map((role) => blocks.find((bl) => bl.role === role)!);
    const expectedOut = mine.reduce((n, bl) => n + bl.fullLen, 0);
    // Latent attention's second projections read the normalised latents (q_lora_rank, kv_lora_rank wide).
    const expectedIn = ref.module === 'q_b' ? spec.mla!.qRank : ref.module === 'kv_b' ? spec.mla!.kvRank : spec.hidden;
    if (inDim !== expectedIn || outDim !== expectedOut) {
      throw new AdapterLoadError(`${dir}: '${path}' expects lora_A [r, ${expectedIn}] and lora_B [${expectedOut}, r], ` +
        `got ${JSON.stringify(a.shape)} / ${JSON.stringify(b.shape)} (adapter made for a different base model?)`);
    }
    if (ref.headInterleaved) {  // GPT-NeoX's query_key_value: B's (and DoRA's magnitude's) rows per head q|k|v
      const hd = spec.headDim, heads = rangeLen(part.heads), start = part.heads.start * 3 * hd, end = part.heads.end * 3 * hd;
      const slab = sliceRows(b.data, rank, start, end), mslab = m ? sliceRows(m.data, 1, start, end) : null;
      mine.forEach((bl, role) => parts.push({ layer: ref.layer, module: moduleId, outOffset: bl.localOffset, rank, scale,
        a: a.data, b: interleavedHeadRows(slab, rank, role, heads, hd),
        ...(mslab ? { magnitude: interleavedHeadRows(mslab, 1, role, heads, hd) } : {}) }));
      continue;
    }
    let off = 0;
    for (const bl of mine) {
      parts.push({ layer: ref.layer, module: moduleId, outOffset: bl.localOffset, rank, scale, a: a.data,
        b: sliceRows(b.data, rank, off + bl.local.start, off + bl.local.end),
        ...(m ? { magnitude: sliceRows(m.data, 1, off + bl.local.start, off + bl.local.end) } : {}) });
      off += bl.fullLen;
    }
  }
  if (parts.length === 0 && visionPairs > 0 && !spec.vision && !spec.qwenVision && !spec.pixtral) {
    throw new AdapterLoadError(`${dir}: the adapter only targets the vision tower (${visionPairs} module(s)), which text ` +
      `requests never run; weft serves this model's language model only`);
  }
  const planned = stored(parts, storage);
  const bytes = planned.reduce((n, p) => n + p.a.byteLength + p.b.byteLength + (p.magnitude?.byteLength ?? 0), 0);
  const visionBytes = vision.reduce((n, p) => n + p.a.byteLength + p.b.byteLength, 0);
  return { parts: planned, maxRank, bytes: bytes + visionBytes, storage, ...(vision.length > 0 ? { vision } : {}) };
}

/**
 * Stages a planned adapter beside steps (checked and copied on the libuv pool; uploaded, on a GPU): installStaged
 * then puts it in a slot between steps. The plan's arrays must stay unchanged until the promise settles.
 */
export function stageAdapter(model: LoadedModel, plan: AdapterPlan): Promise<StagedAdapter> {
  return model.native.stageAdapter(plan.parts);
}

/** Puts a staged adapter into a slot (replacing whatever was there); on failure the slot is left empty. */
export function installStaged(model: LoadedModel, slot: number, staged: StagedAdapter): void {
  try {
    model.native.installAdapter(slot, staged);
  } catch (e) {
    staged.release();
    model.native.clearAdapter(slot);
    throw e;
  }
}

/** Loads a planned adapter into a slot, all on this thread; on failure the slot is left empty. */
export function installAdapter(model: LoadedModel, slot: number, plan: AdapterPlan): void {
  let staged: StagedAdapter;
  try {
    staged = model.native.stageAdapterSync(plan.parts);
  } catch (e) {
    model.native.clearAdapter(slot);
    throw e;
  }
  installStaged(model, slot, staged);
}
