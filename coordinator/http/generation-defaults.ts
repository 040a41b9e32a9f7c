// vLLM's `--generation-config`: a model's generation_config.json recommends sampling settings (Qwen3: temperature 0.6,
// top_p 0.95, top_k 20), and the OpenAI routes use them as the defaults of the fields a request leaves out. The
// request's own values always win; the TGI routes keep TGI's defaults (TGI does not read generation_config.json).
//
// Semantics (vLLM's ModelConfig.get_diff_sampling_param):
//  - The fields read are temperature, top_p, top_k, min_p, repetition_penalty and max_new_tokens (the default of
//    `max_tokens`); only those present and not null. Everything else in the file is ignored here.
//  - `do_sample` is not read. In transformers `do_sample: false` means greedy whatever the temperature says, but vLLM
//    ignores it and samples with the file's temperature; weft does the same, so the two servers answer alike. A
//    model that wants greedy defaults says `temperature: 0`.
//  - top_k 0 or -1 means "no top-k" (transformers' and vLLM's spelling): nothing to default to.
//  - A default max_tokens is lowered to the room the prompt leaves under --max-total-tokens (vLLM takes the smaller
//    of it and max_model_len - prompt), instead of refusing the request as a client's too-large max_tokens is.
//  - Values outside what the OpenAI routes accept are a start-up error naming the file and the field: a default that
//    every request would be refused for is a broken server, better found at start.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MAX_TOP_K, REPETITION_PENALTY_RANGE } from './validate.js';
import type { Json } from './json.js';

/** Defaults for omitted OpenAI request fields, under the request's field names; only those the file sets. */
export interface SamplingDefaults {
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  repetition_penalty?: number;
  max_tokens?: number;
}

/** The sampling fields a request body can leave out and a default fills in (max_tokens is handled apart). */
export const DEFAULTED_SAMPLING_FIELDS = ['temperature', 'top_p', 'top_k', 'min_p', 'repetition_penalty'] as const;

export class GenerationConfigError extends Error {
  override name = 'GenerationConfigError';
}

/** Where the defaults came from (logged at start) and what they are; defaults null: none (the routes' own). */
export interface ResolvedSamplingDefaults {
  /** The generation_config.json read, or null (`vllm`, or `auto` and the model has none). */
  source: string | null;
  defaults: SamplingDefaults | null;
}

const FILE = 'generation_config.json';

/**
 * `--generation-config` → the defaults: `auto` reads the model directory's generation_config.json (none there: no
 * defaults), `vllm` reads nothing, anything else is a directory holding a generation_config.json (or that file).
 */
export function resolveSamplingDefaults(setting: string, modelDir: string): ResolvedSamplingDefaults {
  if (setting === 'vllm') return { source: null, defaults: null };
  if (setting === 'auto') {
    const path = join(modelDir, FILE);
    return existsSync(path) ? { source: path, defaults: readSamplingDefaults(path) } : { source: null, defaults: null };
  }
  const path = namedConfigPath(setting);
  return { source: path, defaults: readSamplingDefaults(path) };
}

/** A directory named by --generation-config must hold the file: silently serving without it would hide a typo. */
function namedConfigPath(setting: string): string {
  const given = resolve(setting);
  if (!existsSync(given)) {
    throw new GenerationConfigError(`--generation-config ${setting}: no such directory (${given}); give a directory that ` +
      `holds a ${FILE}, or 'auto' (the model's own) or 'vllm' (none)`);
  }
  if (!statSync(given).isDirectory()) return given;
  const path = join(given, FILE);
  if (!existsSync(path)) {
    throw new GenerationConfigError(`--generation-config ${setting}: ${given} has no ${FILE}; give the directory that holds ` +
      `one, or 'auto' (the model's own) or 'vllm' (none)`);
  }
  return path;
}

/** The sampling defaults a generation_config.json sets; null when it sets none. Throws naming the file and field. */
export function readSamplingDefaults(path: string): SamplingDefaults | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new GenerationConfigError(`${path} is not valid JSON (${(err as Error).message}); fix it, or start with ` +
      '--generation-config vllm to ignore it', { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new GenerationConfigError(`${path} must hold a JSON object; fix it, or start with --generation-config vllm to ignore it`);
  }
  return samplingDefaultsOf(parsed as Json, path);
}

/** The checked defaults of a parsed generation config (`where` names it in errors); null when it sets none. */
export function samplingDefaultsOf(config: Json, where: string): SamplingDefaults | null {
  const field = (key: string) => (config[key] === null ? undefined : config[key]);
  const out: SamplingDefaults = {};
  const temperature = field('temperature');
  if (temperature !== undefined) out.temperature = inRange(temperature, where, 'temperature', 0, 2, '>= 0 and <= 2');
  const topP = field('top_p');
  if (topP !== undefined) out.top_p = inRange(topP, where, 'top_p', Number.MIN_VALUE, 1, '> 0 and <= 1');
  const topK = field('top_k');
  if (topK !== undefined) {
    const k = integer(topK, where, 'top_k', -1, MAX_TOP_K, '-1 or 0 (off), or 1 to ' + MAX_TOP_K);
    if (k > 0) out.top_k = k;
  }
  const minP = field('min_p');
  if (minP !== undefined) out.min_p = inRange(minP, where, 'min_p', 0, 1, '>= 0 and <= 1');
  const penalty = field('repetition_penalty');
  if (penalty !== undefined) {
    const [lo, hi] = REPETITION_PENALTY_RANGE;
    out.repetition_penalty = inRange(penalty, where, 'repetition_penalty', lo, hi, `>= ${lo} and <= ${hi}`);
  }
  const maxNew = field('max_new_tokens');
  if (maxNew !== undefined) out.max_tokens = integer(maxNew, where, 'max_new_tokens', 1, Number.MAX_SAFE_INTEGER, '>= 1');
  return Object.keys(out).length > 0 ? out : null;
}

function badField(where: string, key: string, value: unknown, expected: string): GenerationConfigError {
  const shown = JSON.stringify(value) ?? String(value);
  return new GenerationConfigError(`${where}: \`${key}\` must be ${expected} (as the OpenAI routes take it), got ` +
    `${shown.slice(0, 64)}; fix the file, or start with --generation-config vllm to ignore it`);
}

function inRange(v: unknown, where: string, key: string, lo: number, hi: number, expected: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) throw badField(where, key, v, `a number ${expected}`);
  return v;
}

function integer(v: unknown, where: string, key: string, lo: number, hi: number, expected: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < lo || v > hi) throw badField(where, key, v, `an integer ${expected}`);
  return v;
}

/**
 * The request body with the defaults filled in where it leaves a sampling field out (absent or null: OpenAI's and
 * weft's "not given"). A new object: the client's body is not changed. max_tokens is not filled here (see
 * defaultMaxTokens in openai-validate.ts): a default is fitted to the prompt, a client's value is checked.
 */
export function withSamplingDefaults(top: Json, defaults: SamplingDefaults | null | undefined): Json {
  if (!defaults) return top;
  let out: Json | null = null;
  for (const key of DEFAULTED_SAMPLING_FIELDS) {
    const value = defaults[key];
    if (value === undefined || (top[key] !== undefined && top[key] !== null)) continue;
    out ??= { ...top };
    out[key] = value;
  }
  return out ?? top;
}
