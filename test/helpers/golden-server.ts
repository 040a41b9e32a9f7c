// A running `weft launch` (in this process, real nats-server + shard processes) over a golden model (llama unless
// asked), with a word-level tokenizer.json so that the text "t182 t162" is exactly token ids [182, 162].
import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, type Launched, type LaunchEnvironment } from '../../deploy/launch.js';
import { parseArgs, type LaunchConfig } from '../../deploy/config/index.js';
import { loadGoldenCase, type GoldenCase } from './golden.js';
import { refLogSoftmax } from './reference-ops.js';

/**
 * specialTokens: ids the tokenizer marks as special added tokens, with their text (e.g. { 3: '<tool>' }); an entry
 * { content, special: false } is an added token that is not special (its text stays in decoded output).
 */
export function tokenizedGoldenModel(c: GoldenCase, specialTokens: Record<number, AddedToken> = {}, weightsDir = c.modelDir): string {
  const dir = mkdtempSync(join(tmpdir(), `weft-${c.name}-`));
  for (const f of ['config.json', 'model.safetensors']) symlinkSync(join(weightsDir, f), join(dir, f));
  const vocab: Record<string, number> = {};
  for (let i = 0; i < c.vocab; i++) vocab[`t${i}`] = i;
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({
    version: '1.0', truncation: null, padding: null, normalizer: null,
    added_tokens: Object.entries(specialTokens).map(([id, t]) => ({ id: Number(id), content: typeof t === 'string' ? t : t.content,
      single_word: false, lstrip: false, rstrip: false, normalized: false, special: typeof t === 'string' || t.special })),
    pre_tokenizer: { type: 'WhitespaceSplit' }, post_processor: null, decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: 't0' },
  }));
  return dir;
}

export type AddedToken = string | { content: string; special: boolean };

export const textOf = (ids: number[]): string => ids.map((i) => `t${i}`).join(' ');

export interface GoldenServer {
  c: GoldenCase;
  /** The served model directory (the --model-id). */
  modelDir: string;
  server: Launched;
  url: string;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; json: any; text: string }>;
  close(): Promise<void>;
}

export interface GoldenServerExtras {
  /** Environment variables as the config module would read them (HF_ENDPOINT, HF_TOKEN, …). */
  env?: Record<string, string>;
  /** Extra command-line flags. */
  flags?: string[];
  logs?: LaunchEnvironment['logs'];
  /** The golden case served (default llama). */
  caseName?: string;
  /** Token ids the served tokenizer marks as special (or added: tokenizedGoldenModel), with their text. */
  specialTokens?: Record<number, AddedToken>;
  /** A chat template for the served model (chat_template.jinja): the golden models have none. */
  chatTemplate?: string;
  /** Serve this directory's config.json and model.safetensors (a checkpoint of the case's vocabulary) instead. */
  weightsDir?: string;
  /** The served model's generation_config.json (the golden models' is not served: tokenizedGoldenModel). */
  generationConfig?: Record<string, unknown>;
}

export async function startGoldenServer(overrides: Partial<LaunchConfig> = {}, extras: GoldenServerExtras = {}): Promise<GoldenServer> {
  const c = loadGoldenCase(extras.caseName ?? 'llama');
  const modelDir = tokenizedGoldenModel(c, extras.specialTokens, extras.weightsDir);
  if (extras.chatTemplate !== undefined) writeFileSync(join(modelDir, 'chat_template.jinja'), extras.chatTemplate);
  if (extras.generationConfig !== undefined) writeFileSync(join(modelDir, 'generation_config.json'), JSON.stringify(extras.generationConfig));
  const flags = ['--model-id', modelDir, '--port', '0', '--hostname', '127.0.0.1', '--cluster', `g${process.pid}`,
    '--max-input-length', '128', '--max-total-tokens', '256', '--max-batch-prefill-tokens', '512',
    '--adapter-root', join(c.dir, 'adapters'), '--max-adapter-slots', '4', '--max-active-adapters', '4',
    '--log-level', 'silent', '--shard-heartbeat-ms', '200', '--shard-timeout-ms', '5000', '--step-timeout-ms', '30000'];
  const config = { ...parseArgs('launch', [...flags, ...(extras.flags ?? [])], extras.env ?? {}), ...overrides };
  const server = await launch(config, { cacheDir: mkdtempSync(join(tmpdir(), 'weft-cache-')), logs: extras.logs });
  const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body) });
    const text = await res.text();
    let json: unknown = null;
    try { json = JSON.parse(text); } catch { /* SSE or plain text */ }
    return { status: res.status, json, text };
  };
  return { c, modelDir, server, url: server.url, post, close: () => server.close() };
}

/** The golden logits key of sequence `s` under adapter `a` (null: the base model). */
export const goldenKey = (a: string | null, s: number): string => (a ? `adapter/${a}/seq${s}` : `base/seq${s}`);

/**
 * Every golden sequence under every adapter of `adapters` (null: the base model), sent to /generate at once with
 * details and prefill log-probs: the responses with their sequence index and adapter.
 */
export async function generateEverySequence(g: GoldenServer, adapters: (string | null)[], maxNewTokens = 2) {
  const jobs = g.c.sequences.flatMap((seq, s) => adapters.map(async (a) => {
    const parameters: Record<string, unknown> = { max_new_tokens: maxNewTokens, details: true, decoder_input_details: true };
    if (a) Object.assign(parameters, { adapter_id: a, adapter_source: 'local' });
    return { r: await g.post('/generate', { inputs: textOf(seq), parameters }), s, a };
  }));
  return Promise.all(jobs);
}

/**
 * Asserts a /generate response's prefill ids equal `seq` and its log-probs equal log-softmax of the golden
 * logits under `key` within `tol`; returns the largest difference seen.
 */
export function prefillMatchesGolden(c: GoldenCase, json: any, key: string, seq: number[], tol = 1e-4): number {
  const prefill = json.details.prefill as { id: number; logprob: number | null }[];
  if (prefill.length !== seq.length || prefill.some((p, i) => p.id !== seq[i])) throw new Error(`${key}: prefill ids differ`);
  const golden = c.logits(key);
  const V = c.vocab;
  let worst = 0;
  for (let i = 1; i < seq.length; i++) {
    const want = refLogSoftmax(golden.subarray((i - 1) * V, i * V))[seq[i]];
    const got = prefill[i].logprob!;
    const err = Math.abs(got - want);
    if (!(err <= tol)) throw new Error(`${key} position ${i}: logprob ${got}, golden ${want}`);
    worst = Math.max(worst, err);
  }
  return worst;
}
