// PEFT's trainable tokens (LoraConfig.trainable_token_indices, TrainableTokensLayer): for a few token ids, whole rows
// of the input embedding — and of lm_head, when it is tied to the embedding or named itself — are replaced by the
// adapter's own rows (`….token_adapter.trainable_tokens_delta` [k, hidden], the new rows despite the name). Typically
// re-trained special tokens (Llama 3's reserved ones, a chat format's markers).
//
// A replacement is a low-rank update, so it is served as LoRA with no kernel of its own: with the difference
// D [k, hidden] of the new rows and the base rows,
//   embedding  E'[t] = E[t] + Σ_j [t = idx_j] D_j   → lora_embedding_A [k, vocab] one-hot (A[j, idx_j] = 1), B = Dᵀ
//   lm_head    W'[v] = W[v] + Σ_j [v = idx_j] D_j   → lora_A = D [k, hidden], lora_B [vocab, k] one-hot
// each a rank-k pair (scaled by the module's LoRA scale s, so B carries 1/s), concatenated with a LoRA pair the
// adapter already has on that module. The base rows come from the checkpoint, where the adapter is read (as
// base-layer-copy.ts does). Runs on the parse worker, or on the shard's thread for one-rank engines.
import type { TensorSource } from '../formats/index.js';
import { openModelWeights } from '../models/model-weights.js';
import { hfNames, lmHeadWeightName } from '../models/load-weights.js';
import { resolveModule } from '../models/layout.js';
import type { BaseModelRef } from './base-layer-copy.js';
import { AdapterConfigError, loraScaleFor, parseLoraTensorKey, type LoadedAdapter } from './peft-config.js';

type Tensor = { shape: number[]; data: Float32Array };

/** The adapter with its trainable tokens turned into LoRA pairs (an adapter without any comes back as it is). */
export function trainableTokensAsLora(adapter: LoadedAdapter, model: BaseModelRef | undefined, where: string): LoadedAdapter {
  const keys = [...adapter.tensors.keys()].filter((k) => parseLoraTensorKey(k).kind === 'TOKENS');
  if (keys.length === 0) return adapter;
  if (!model) throw new AdapterConfigError(`${where}: trainable tokens need the base model's rows, and none was given`);
  const { spec } = model;
  const store = openModelWeights(model.dir);
  try {
    const names = hfNames(spec, store);
    const tied = lmHeadWeightName(spec, store) === names.embed;
    const found: { path: string; target: 'embed' | 'lmHead'; indices: number[]; rows: Tensor }[] = [];
    for (const key of keys) {
      const path = parseLoraTensorKey(key).modulePath;
      const target = resolveModule(spec, path)?.module;
      if (target !== 'embed' && target !== 'lmHead') {
        throw new AdapterConfigError(`${where}: trainable tokens on '${path}', which is neither the token embedding nor lm_head ` +
          `of this ${spec.architecture} model (wrong base model?)`, key);
      }
      const indices = indicesFor(adapter.config.trainableTokens, path, target);
      const rows = adapter.tensors.get(key)!;
      if (!indices) throw new AdapterConfigError(`${where}: '${key}' has no entry in trainable_token_indices`, key);
      if (rows.shape[0] !== indices.length || rows.shape[1] !== spec.hidden) {
        throw new AdapterConfigError(`${where}: '${key}' is [${rows.shape.join(', ')}] for ${indices.length} token(s) of ` +
          `a ${spec.hidden}-wide model; expected [${indices.length}, ${spec.hidden}]`, key);
      }
      const bad = indices.find((t) => t >= spec.vocab);
      if (bad !== undefined) {
        throw new AdapterConfigError(`${where}: trainable token ${bad} is outside the base model's vocabulary (${spec.vocab}); ` +
          'the adapter was trained with a resized vocabulary, which weft does not serve', 'trainable_token_indices');
      }
      found.push({ path, target, indices, rows });
      adapter.tensors.delete(key);
    }
    for (const f of found) {
      const weight = f.target === 'embed' ? names.embed : lmHeadWeightName(spec, store);
      const diff = rowDifferences(store, weight, f.indices, f.rows);
      addPair(adapter, f.path, f.target, f.indices, diff, spec.vocab, where);
      // PEFT ties lm_head's rows to the embedding's when the model ties them, unless lm_head has its own.
      if (f.target === 'embed' && tied && !found.some((g) => g.target === 'lmHead')) {
        addPair(adapter, 'lm_head', 'lmHead', f.indices, diff, spec.vocab, where);
      }
    }
  } finally {
    store.close();
  }
  return adapter;
}

// PEFT: a list applies to the input embedding; an object names modules (a key matching the module path's end).
function indicesFor(cfg: number[] | Record<string, number[]> | null, path: string, target: 'embed' | 'lmHead'): number[] | null {
  if (!cfg) return null;
  if (Array.isArray(cfg)) return target === 'embed' ? cfg : null;
  const key = Object.keys(cfg).find((k) => path === k || path.endsWith(`.${k}`));
  return key === undefined ? null : cfg[key]!;
}

/** D [k, hidden]: the adapter's rows minus the checkpoint's rows of `weight` at `indices`. */
function rowDifferences(store: TensorSource, weight: string, indices: number[], rows: Tensor): Float32Array {
  const hidden = rows.shape[1]!;
  const diff = new Float32Array(indices.length * hidden);
  indices.forEach((t, j) => {
    const base = store.readF32(weight, { dim: 0, start: t, end: t + 1 });
    for (let i = 0; i < hidden; i++) diff[j * hidden + i] = rows.data[j * hidden + i]! - base[i]!;
  });
  return diff;
}

/** Adds the rank-k pair of a row replacement to `path`'s LoRA pair (creating it, or widening the one there). */
function addPair(adapter: LoadedAdapter, path: string, target: 'embed' | 'lmHead', indices: number[], diff: Float32Array,
  vocab: number, where: string): void {
  const k = indices.length, hidden = diff.length / k;
  const { scale } = loraScaleFor(adapter.config, path);
  if (!(scale !== 0 && Number.isFinite(scale))) {
    throw new AdapterConfigError(`${where}: '${path}' has LoRA scale ${scale}, which cannot carry trainable tokens`);
  }
  const prefix = `base_model.model.${path}`;
  // embedding: A [k, vocab] one-hot, B [hidden, k] = Dᵀ / s; lm_head: A [k, hidden] = D, B [vocab, k] one-hot / s.
  let a: Tensor, b: Tensor;
  if (target === 'embed') {
    a = { shape: [k, vocab], data: new Float32Array(k * vocab) };
    b = { shape: [hidden, k], data: new Float32Array(hidden * k) };
    indices.forEach((t, j) => {
      a.data[j * vocab + t] = 1;
      for (let i = 0; i < hidden; i++) b.data[i * k + j] = diff[j * hidden + i]! / scale;
    });
  } else {
    a = { shape: [k, hidden], data: diff.slice() };
    b = { shape: [vocab, k], data: new Float32Array(vocab * k) };
    indices.forEach((t, j) => { b.data[t * k + j] = 1 / scale; });
  }
  const [keyA, keyB] = target === 'embed'
    ? [`${prefix}.lora_embedding_A`, `${prefix}.lora_embedding_B`]
    : [`${prefix}.lora_A.weight`, `${prefix}.lora_B.weight`];
  const oldA = findKey(adapter, path, 'A'), oldB = findKey(adapter, path, 'B');
  if (oldA && oldB) {  // widen the adapter's own pair on this module: A stacked, B side by side
    const ta = adapter.tensors.get(oldA)!, tb = adapter.tensors.get(oldB)!;
    a = { shape: [ta.shape[0]! + k, a.shape[1]!], data: concat(ta.data, a.data) };
    b = { shape: [tb.shape[0]!, tb.shape[1]! + k], data: sideBySide(tb, b) };
    adapter.tensors.delete(oldA);
    adapter.tensors.delete(oldB);
  }
  adapter.tensors.set(keyA, a);
  adapter.tensors.set(keyB, b);
}

function findKey(adapter: LoadedAdapter, path: string, kind: 'A' | 'B'): string | undefined {
  return [...adapter.tensors.keys()].find((key) => {
    const p = parseLoraTensorKey(key);
    return p.kind === kind && p.modulePath === path;
  });
}

function concat(x: Float32Array, y: Float32Array): Float32Array {
  const out = new Float32Array(x.length + y.length);
  out.set(x);
  out.set(y, x.length);
  return out;
}

/** [rows, c1] and [rows, c2] → [rows, c1 + c2]. */
function sideBySide(x: Tensor, y: Tensor): Float32Array {
  const rows = x.shape[0]!, c1 = x.shape[1]!, c2 = y.shape[1]!;
  const out = new Float32Array(rows * (c1 + c2));
  for (let r = 0; r < rows; r++) {
    out.set(x.data.subarray(r * c1, (r + 1) * c1), r * (c1 + c2));
    out.set(y.data.subarray(r * c2, (r + 1) * c2), r * (c1 + c2) + c1);
  }
  return out;
}
