// A checkpoint's quantization_config (config.json) read into what the dequantizing loader needs, or refused with
// what to do instead. weft dequantizes these checkpoints while it loads them (dequantizing-store.ts) and serves
// them at --dtype: the weights take the memory of that dtype, not of their packed form; activations are not
// quantized (a W8A8 config's input_activations are ignored, as a dequantized model runs them in full precision).
import { UnsupportedModelError } from '../errors.js';

type Json = Record<string, unknown>;

/** How one checkpoint stores its quantized linear weights. */
export type QuantScheme =
  /** AutoAWQ "gemm": qweight [in, out/8] int32 in AWQ's nibble order, qzeros [groups, out/8], scales [groups, out]. */
  | { method: 'awq'; bits: 4; groupSize: number }
  /** GPTQ: qweight [in/pack, out], qzeros [groups, out/pack], scales [groups, out], g_idx [in] when desc_act. */
  | { method: 'gptq'; bits: 2 | 4 | 8; groupSize: number; actOrder: boolean; zeroOffset: 0 | 1 }
  /** transformers' fine-grained FP8 (DeepSeek-V3, Qwen3-FP8): weight float8 + weight_scale_inv per block (null: per tensor). */
  | { method: 'fp8'; block: [number, number] | null }
  /** compressed-tensors (llm-compressor): per tensor, by the names present (weight_packed — int32 words, or uint8 FP4
   * codes for NVFP4/MXFP4 — / weight + weight_scale). */
  | { method: 'compressed-tensors'; intBits: number | null; groupSize: number | null; block: [number, number] | null }
  /** bitsandbytes: 4-bit NF4/FP4 (weight bytes + absmax, maybe double-quantized, + quant_map) or LLM.int8 (weight + SCB). */
  | { method: 'bitsandbytes'; bits: 4 | 8 };

const SUPPORTED = 'weft reads AWQ (gemm), GPTQ (2/4/8-bit), FP8 (quant_method "fp8"), compressed-tensors ' +
  '(pack-quantized, int-quantized, float-quantized, naive-quantized, nvfp4-pack-quantized, mxfp4-pack-quantized) and ' +
  'bitsandbytes (4-bit NF4/FP4, LLM.int8) checkpoints';

function refuse(where: string, msg: string): never {
  throw new UnsupportedModelError(`${where}: ${msg}`);
}

function positiveOrAll(v: unknown, key: string, where: string): number {
  if (v === -1 || v === null || v === undefined) return -1;  // one group over all input columns
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) refuse(where, `quantization_config.${key} must be a positive integer or -1, got ${JSON.stringify(v)}`);
  return v;
}

function blockOf(v: unknown, key: string, where: string): [number, number] | null {
  if (v === null || v === undefined) return null;
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x > 0)) {
    refuse(where, `quantization_config.${key} must be [rows, cols] of positive integers, got ${JSON.stringify(v)}`);
  }
  return [v[0] as number, v[1] as number];
}

/** The scheme of a config.json (its top level or text_config), null when not quantized; refuses what weft cannot read. */
export function quantSchemeOf(cfg: Json, where: string): QuantScheme | null {
  const q = (cfg.quantization_config ?? (cfg.text_config as Json | undefined)?.quantization_config) as Json | null | undefined;
  if (q === undefined || q === null) return null;
  if (typeof q !== 'object' || Array.isArray(q)) refuse(where, 'quantization_config must be an object');
  const method = String(q.quant_method ?? '').toLowerCase();
  switch (method) {
    case 'awq': return awqScheme(q, where);
    case 'gptq': return gptqScheme(q, where);
    case 'fp8': return { method: 'fp8', block: blockOf(q.weight_block_size, 'weight_block_size', where) };
    case 'compressed-tensors': return compressedTensorsScheme(q, where);
    case 'mxfp4': return null;  // gpt-oss's MXFP4 experts: read by their own loader (in-out-experts.ts)
    case 'bitsandbytes':
      if (q.load_in_4bit === true) return { method: 'bitsandbytes', bits: 4 };
      if (q.load_in_8bit === true) return { method: 'bitsandbytes', bits: 8 };
      return refuse(where, 'a bitsandbytes quantization_config says neither load_in_4bit nor load_in_8bit');
    default:
      return refuse(where, `quantization_config.quant_method '${method}' is not supported; ${SUPPORTED}`);
  }
}

function awqScheme(q: Json, where: string): QuantScheme {
  const version = String(q.version ?? 'gemm').toLowerCase();
  if (version !== 'gemm') refuse(where, `AWQ version '${version}' is not supported (only "gemm", the layout AutoAWQ saves by default)`);
  const bits = q.bits ?? q.w_bit;
  if (bits !== 4) refuse(where, `AWQ with ${JSON.stringify(bits)} bits is not supported (4 only)`);
  if (q.zero_point === false) refuse(where, 'AWQ without zero points (zero_point: false) is not supported');
  return { method: 'awq', bits: 4, groupSize: positiveOrAll(q.group_size ?? q.q_group_size, 'group_size', where) };
}

function gptqScheme(q: Json, where: string): QuantScheme {
  const format = String(q.checkpoint_format ?? (q.is_marlin_format === true ? 'marlin' : 'gptq')).toLowerCase();
  if (format !== 'gptq' && format !== 'gptq_v2') {
    refuse(where, `GPTQ checkpoint_format '${format}' is not supported ("gptq" and "gptq_v2" are; re-save a Marlin/BitBLAS checkpoint in the GPTQ format)`);
  }
  const bits = q.bits;
  if (bits !== 2 && bits !== 4 && bits !== 8) refuse(where, `GPTQ with ${JSON.stringify(bits)} bits is not supported (2, 4 or 8: 3-bit values straddle 32-bit words)`);
  // AutoGPTQ's original ("gptq") format stores each zero point minus one; gptq_v2 (GPTQModel) stores it as it is.
  return { method: 'gptq', bits, groupSize: positiveOrAll(q.group_size, 'group_size', where), actOrder: q.desc_act === true, zeroOffset: format === 'gptq' ? 1 : 0 };
}

const CT_FORMATS = new Set(['pack-quantized', 'int-quantized', 'float-quantized', 'naive-quantized', 'nvfp4-pack-quantized', 'mxfp4-pack-quantized']);
const FP4_FORMATS = new Set(['nvfp4-pack-quantized', 'mxfp4-pack-quantized']);

function compressedTensorsScheme(q: Json, where: string): QuantScheme {
  const sparsity = q.sparsity_config as Json | null | undefined;
  if (sparsity && typeof sparsity === 'object' && Object.keys(sparsity).length > 0 && sparsity.format !== 'dense') {
    refuse(where, `compressed-tensors sparsity (${String(sparsity.format)}) is not supported`);
  }
  if (q.transform_config) refuse(where, 'compressed-tensors transforms (transform_config: rotations) are not supported');
  const groups = Object.values((q.config_groups ?? {}) as Record<string, Json>);
  if (groups.length === 0) refuse(where, 'compressed-tensors quantization_config has no config_groups');
  const intBits = new Set<number>(), groupSizes = new Set<number>();
  let block: [number, number] | null = null;
  for (const g of groups) {
    const format = String(g.format ?? q.format ?? '');
    if (!CT_FORMATS.has(format)) refuse(where, `compressed-tensors format '${format}' is not supported (${[...CT_FORMATS].join(', ')} are)`);
    const w = g.weights as Json | null | undefined;
    if (!w) continue;
    const bits = Number(w.num_bits), type = String(w.type ?? 'int'), strategy = String(w.strategy ?? 'tensor');
    const fp4 = type === 'float' && bits === 4;
    if (fp4 !== FP4_FORMATS.has(format)) {
      refuse(where, fp4 ? `compressed-tensors 4-bit float weights (NVFP4/MXFP4) need format nvfp4-pack-quantized or mxfp4-pack-quantized, not '${format}'`
        : `compressed-tensors format '${format}' holds 4-bit float weights, not ${bits}-bit ${type}`);
    }
    if (type === 'float' && bits !== 8 && !fp4) refuse(where, `compressed-tensors ${bits}-bit float weights are not supported (8-bit FP8 and 4-bit NVFP4/MXFP4 are)`);
    if (fp4 && w.symmetric === false) refuse(where, 'compressed-tensors FP4 weights with zero points (symmetric: false) are not supported');
    if (type === 'int' && ![2, 4, 8].includes(bits)) refuse(where, `compressed-tensors ${bits}-bit integer weights are not supported (2, 4 or 8)`);
    if (!['tensor', 'channel', 'group', 'tensor_group', 'block'].includes(strategy)) refuse(where, `compressed-tensors weight strategy '${strategy}' is not supported`);
    if (type === 'int') intBits.add(bits);
    if (strategy === 'group' || strategy === 'tensor_group') groupSizes.add(positiveOrAll(w.group_size, 'config_groups.weights.group_size', where));
    if (strategy === 'block') block = blockOf(w.block_structure, 'config_groups.weights.block_structure', where);
  }
  return {
    method: 'compressed-tensors',
    intBits: intBits.size === 1 ? [...intBits][0]! : null,
    groupSize: groupSizes.size === 1 ? [...groupSizes][0]! : null,
    block,
  };
}
