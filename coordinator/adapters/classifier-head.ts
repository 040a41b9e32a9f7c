// A sequence-classification adapter's head, for /classify. PEFT saves a task_type "SEQ_CLS" adapter's trained
// `score` (or `classifier`) Linear through modules_to_save beside its LoRA pairs; transformers'
// *ForSequenceClassification applies it to the final hidden state (after the final norm) at the last token. The
// shards run the LoRA pairs and return that hidden state (as for embeddings); the head — [labels, hidden], a few KB
// — is applied here, in float64. Labels come from a config.json saved with the adapter (id2label, as a Trainer
// saves it), else transformers' defaults LABEL_0, LABEL_1, ….
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, loadTorchBin } from '../../shard/formats/index.js';
import { openModelWeights } from '../../shard/models/model-weights.js';
import { sequenceClassifierBase } from '../../shard/models/spec.js';
import { classifierHeadPart } from '../../shard/adapters/peft-config.js';
import { EngineError } from '../engine/types.js';
import type { Prepared } from './registry.js';

export interface ClassifierHead {
  /** Label names, one per output. */
  labels: string[];
  /** Row-major [labels, hidden]. */
  weight: Float32Array;
  bias: Float32Array | null;
  hidden: number;
}

/** Reads the head of the adapter in `dir`; EngineError('validation') naming what is missing when it has none. */
export function readClassifierHead(dir: string, name: string): ClassifierHead {
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new EngineError('adapter_load', `adapter '${name}': cannot read adapter_config.json: ${(e as Error).message}`);
  }
  if (config.task_type !== 'SEQ_CLS') {
    throw new EngineError('validation', `adapter '${name}' is not a sequence classifier (task_type ${JSON.stringify(config.task_type ?? null)}): ` +
      '/classify needs a PEFT task_type "SEQ_CLS" adapter, which saves its trained score head');
  }
  const tensors = headTensors(dir);
  const weight = tensors.get('weight');
  if (!weight || weight.shape.length !== 2) {
    throw new EngineError('validation', `adapter '${name}' has no classification head (a 'score.weight' saved through modules_to_save): ` +
      'save the adapter with PEFT\'s save_pretrained after training with task_type "SEQ_CLS"');
  }
  const [numLabels, hidden] = weight.shape as [number, number];
  const bias = tensors.get('bias') ?? null;
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== numLabels)) {
    throw new EngineError('adapter_load', `adapter '${name}': the head's bias has shape [${bias.shape.join(', ')}] for ${numLabels} labels`);
  }
  return { labels: labelsOf(dir, numLabels), weight: weight.data, bias: bias?.data ?? null, hidden };
}

/**
 * The head of a base model published as *ForSequenceClassification (a reward model, a classifier): its `score`
 * Linear, read from the checkpoint in `modelDir`, with config.json's id2label. Null for a causal LM.
 */
export function readBaseClassifierHead(modelDir: string): ClassifierHead | null {
  let arch: unknown;
  try {
    arch = (JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as { architectures?: unknown[] }).architectures?.[0];
  } catch {
    return null;  // the shards report an unreadable config.json
  }
  if (typeof arch !== 'string' || sequenceClassifierBase(arch) === null) return null;
  const store = openModelWeights(modelDir);
  try {
    if (!store.has('score.weight')) {
      throw new Error(`${modelDir}: a ${arch} checkpoint needs its classification head, 'score.weight', which is missing`);
    }
    const shape = store.info('score.weight').shape;
    if (shape.length !== 2) throw new Error(`${modelDir}: 'score.weight' has shape [${shape.join(', ')}]; a [labels, hidden] matrix was expected`);
    const [numLabels, hidden] = shape as [number, number];
    const bias = store.has('score.bias') ? store.readF32('score.bias') : null;
    return { labels: labelsOf(modelDir, numLabels), weight: store.readF32('score.weight'), bias, hidden };
  } finally {
    store.close();
  }
}

function headTensors(dir: string): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  const st = join(dir, 'adapter_model.safetensors');
  if (existsSync(st)) {
    const f = SafetensorsFile.open(st);
    try {
      for (const key of f.names()) {
        const part = classifierHeadPart(key);
        if (part) out.set(part, { shape: f.info(key).shape, data: f.readF32(key) });
      }
    } finally {
      f.close();
    }
    return out;
  }
  const bin = join(dir, 'adapter_model.bin');
  if (existsSync(bin)) {
    for (const [key, t] of loadTorchBin(bin)) {
      const part = classifierHeadPart(key);
      if (part) out.set(part, { shape: t.shape, data: t.data });
    }
  }
  return out;
}

function labelsOf(dir: string, n: number): string[] {
  const defaults = Array.from({ length: n }, (_, i) => `LABEL_${i}`);
  try {
    const id2label = (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { id2label?: Record<string, unknown> }).id2label;
    if (!id2label) return defaults;
    return defaults.map((d, i) => (typeof id2label[String(i)] === 'string' ? id2label[String(i)] as string : d));
  } catch {
    return defaults;
  }
}

/** The head's logits for one final hidden state (float64 sums, as the reference's float32 matmul within 1e-6). */
export function classify(head: ClassifierHead, hidden: Float32Array): number[] {
  if (hidden.length !== head.hidden) {
    throw new EngineError('validation', `the classification head takes ${head.hidden} values but the model's hidden state has ${hidden.length}: wrong base model?`);
  }
  return head.labels.map((_, row) => {
    let sum = head.bias ? head.bias[row]! : 0;
    for (let j = 0; j < head.hidden; j++) sum += head.weight[row * head.hidden + j]! * hidden[j]!;
    return sum;
  });
}

/** Heads read so far, by adapter key (a new revision is a new key), the oldest dropped first beyond a bound. */
export class ClassifierHeads {
  private readonly heads = new Map<string, ClassifierHead>();
  constructor(private readonly max = 256) {}

  of(p: Prepared, name: string): ClassifierHead {
    let head = this.heads.get(p.key);
    if (!head) {
      if (!p.load.dir) throw new EngineError('validation', `adapter '${name}' is not a directory holding a classification head`);
      head = readClassifierHead(p.load.dir, name);
      if (this.heads.size >= this.max) this.heads.delete(this.heads.keys().next().value!);
      this.heads.set(p.key, head);
    }
    return head;
  }
}
