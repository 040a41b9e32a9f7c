// `weft check-adapter --model M --adapter A`: the checks a shard makes when it loads an adapter — PEFT config,
// tensor names and shapes against the model, ranks against --max-lora-rank, an lm_head copy against the base —
// run without starting a server, with what the adapter holds and the bytes its slot takes on each shard.
// Refused adapters throw with the same message the server's 424 would carry (the CLI exits 1 with it).
import { estimateAdapterBytes } from '../coordinator/adapters/size-estimate.js';
import { isStackedExpertsPath, loraScaleFor, parseLoraTensorKey } from '../shard/adapters/peft-config.js';
import { stackedExpertParam } from '../shard/models/expert-lora.js';
import { readAdapterFor } from '../shard/adapters/read-adapter.js';
import { planAdapter, readModelSpec } from '../shard/models/index.js';
import { partitionFor } from '../shard/models/partition.js';
import type { LoraStorage } from '../kernels/index.js';
import type { CheckAdapterConfig } from './config/index.js';

export interface AdapterCheck {
  adapter: string;
  model: string;
  architecture: string;
  /** The PEFT fields that decide its math. */
  config: { r: number; loraAlpha: number; useRslora: boolean; useDora: boolean };
  /**
   * Every targeted module: PEFT path, rank and scale (rank_pattern / alpha_pattern / rsLoRA applied). A
   * target_parameters pair on a MoE layer's stacked experts is named by its parameter (`….experts.gate_up_proj`),
   * with its rank per expert and `experts`, how many experts it holds a pair for.
   */
  modules: { path: string; rank: number; scale: number; experts?: number }[];
  maxRank: number;
  dora: boolean;
  /** Per tensor-parallel rank: the parts its slot holds and their bytes in `dtype` (DoRA magnitudes in float32). */
  shards: { rank: number; parts: number; bytes: number }[];
  /** What the server's adapter byte budget reserves per shard before the first load reports (size-estimate.ts). */
  estimatedBytes: number;
  dtype: string;
}

export function checkAdapter(c: Pick<CheckAdapterConfig, 'model' | 'adapter' | 'numShard' | 'maxLoraRank' | 'dtype'>): AdapterCheck {
  const spec = readModelSpec(c.model);
  const adapter = readAdapterFor(c.adapter, { dir: c.model, spec });
  const storage: LoraStorage = c.dtype === 'float32' ? 'float32' : c.dtype;
  const shards = Array.from({ length: c.numShard }, (_, rank) => {
    const plan = planAdapter({ spec, partition: partitionFor(spec, rank, c.numShard), loraStorage: storage }, adapter,
      c.adapter, c.maxLoraRank);
    return { rank, parts: plan.parts.length, bytes: plan.bytes, maxRank: plan.maxRank };
  });
  // Each module's rank as held (trainable tokens widen the pair they join: trainable-tokens.ts).
  const { config } = adapter;
  const modules: AdapterCheck['modules'] = [];
  for (const [key, t] of adapter.tensors) {
    const { modulePath, kind } = parseLoraTensorKey(key);
    if (kind !== 'A') continue;
    const b = adapter.tensors.get(key.replace(/lora_A/, 'lora_B'));
    const param = spec.moe && b && isStackedExpertsPath(modulePath) ? stackedExpertParam(spec, t.shape[1]!, b.shape[0]!) : null;
    if (param) {  // planAdapter has checked it: r·E rows
      const path = `${modulePath.replace(/(?:\.base_layer)+$/, '')}.${param}`;
      modules.push({ path, rank: t.shape[0]! / spec.moe!.experts, scale: loraScaleFor(config, path).scale, experts: spec.moe!.experts });
    } else {
      modules.push({ path: modulePath, rank: t.shape[0]!, scale: loraScaleFor(config, modulePath).scale });
    }
  }
  return {
    adapter: c.adapter,
    model: c.model,
    architecture: spec.architecture,
    config: { r: config.r, loraAlpha: config.loraAlpha, useRslora: config.useRslora, useDora: config.useDora },
    modules,
    maxRank: shards[0]!.maxRank,
    dora: config.useDora,
    shards: shards.map(({ rank, parts, bytes }) => ({ rank, parts, bytes })),
    estimatedBytes: estimateAdapterBytes({ dir: c.adapter }, c.dtype === 'float32' ? 4 : 2, spec.vocab),
    dtype: c.dtype,
  };
}
