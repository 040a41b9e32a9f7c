// The vision-language integration tests' harness (test/integration/vision*.test.ts): a fixture's cases.json and golden
// logits (vlm.ts's openVlmCase), its PNGs as data: URLs and TGI markdown images, a `weft launch` over its model (real
// nats-server, shard processes) whose steps' prefill ranges can be watched, and the checks the tests share: prompt
// log-probs against the golden rows, the first generated token and its top alternatives, the decode rows sent as
// prompt text, the chat route's first token, /tokenize and /chat_tokenize, and the 422s.
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, type Launched } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';
import type { Step } from '../../protocol/index.js';
import type { ScheduledStep } from '../../coordinator/scheduler/index.js';
import { decodeRgb, preprocessImage, qwen2VLTokens, type Qwen2VLProcessorConfig } from '../../coordinator/vision/index.js';
import { refLogSoftmax } from './reference-ops.js';
import { openVlmCase } from './vlm.js';

/** The tolerance of every log-prob against transformers'. */
export const TOL = 1e-4;

export type Prefill = { id: number; logprob: number | null }[];
export interface Posted { status: number; json: any; text: string }

/** The base model and each of the fixture's adapters, as the tests name them (null: the base model). */
export const adapterNames = (cases: { adapters: { name: string }[] }): (string | null)[] => [null, ...cases.adapters.map((a) => a.name)];
/** The golden logits' prefix of an adapter (null: the base model). */
export const goldenPrefix = (adapter: string | null): string => (adapter ? `adapter/${adapter}` : 'base');
/** The /generate parameters that pick an adapter (none for the base model). */
export const adapterParams = (adapter: string | null): Record<string, string> => (adapter ? { adapter_id: adapter, adapter_source: 'local' } : {});

export interface VisionFixture<C> {
  dir: string;
  cases: C;
  /** Row r of the golden logits `key`, log-softmaxed. */
  row(key: string, r: number): Float64Array;
  png(image: string): Buffer;
  dataUrl(image: string): string;
  /** A float32 pixel_values file of the fixture. */
  pixelValues(file: string): Float32Array;
  /** model/preprocessor_config.json, parsed. */
  preprocessorJson(): unknown;
  /** The prompt as TGI markdown images: each image placeholder in turn becomes ![](url of the next image). */
  markdown(seq: { prompt: string; images: readonly string[] }, url?: (image: string) => string): string;
  /** Chat content parts: each image as an image_url part (a data: URL). */
  imageParts(images: readonly string[]): { type: 'image_url'; image_url: { url: string } }[];
  /** The prompt up to the end of its first image placeholder. */
  toFirstImage(prompt: string): string;
  /** The text after the prompt's last image placeholder, up to `end`. */
  textAfterImages(prompt: string, end: string): string;
}

/** The fixture at <root>/<name>: cases.json, golden.safetensors and its images (`png`: an image's file in the fixture;
 * by default cases.json's images[image].png); `placeholder`: the prompt's image placeholder (by default cases.json's). */
export function visionFixture<C>(root: string, name: string, o: { png?: (cases: C, image: string) => string; placeholder?: string } = {}): VisionFixture<C> {
  const { base, json } = openVlmCase(root, name);
  const cases = json as C;
  const dir = base.dir;
  const placeholder: string = o.placeholder ?? json.image_placeholder;
  const pngPath = o.png ?? ((_: C, image: string) => json.images[image].png as string);
  const png = (image: string) => readFileSync(join(dir, pngPath(cases, image)));
  const dataUrl = (image: string) => `data:image/png;base64,${png(image).toString('base64')}`;
  return {
    dir, cases, png, dataUrl,
    row: (key, r) => refLogSoftmax(base.logits(key).subarray(r * base.vocab, (r + 1) * base.vocab)),
    pixelValues: (file) => new Float32Array(new Uint8Array(readFileSync(join(dir, file))).buffer),
    preprocessorJson: () => JSON.parse(readFileSync(join(dir, 'model', 'preprocessor_config.json'), 'utf8')),
    markdown: (seq, url = dataUrl) => {
      let i = 0;
      return seq.prompt.replaceAll(placeholder, () => `![](${url(seq.images[i++]!)})`);
    },
    imageParts: (images) => images.map((i) => ({ type: 'image_url' as const, image_url: { url: dataUrl(i) } })),
    toFirstImage: (prompt) => prompt.slice(0, prompt.indexOf(placeholder) + placeholder.length),
    textAfterImages: (prompt, end) => prompt.split(placeholder).at(-1)!.split(end)[0]!,
  };
}

export interface VisionServer {
  readonly server: Launched;
  /** The steps scheduled since it was last emptied (with `watchSteps`). */
  readonly steps: Step[];
  post(path: string, body: unknown): Promise<Posted>;
  /** weft_prefix_cache_hit_tokens_total. */
  cacheHits(): Promise<number>;
  /** Each sequence's prefill ranges [from, to) in the steps since `steps` was emptied. */
  prefillRanges(): [number, number][][];
  /** /generate's prefill of `inputs` with decoder_input_details: each prompt token and its log-prob. */
  prefill(inputs: string, adapter: string | null): Promise<Prefill>;
  /** /generate of one token of `inputs` with its top `topN`, watched: the answer's details, the prefix-cache hits it
   * made and its prefill ranges (`steps` emptied before). */
  firstToken(inputs: string, adapter: string | null, topN: number): Promise<{ details: any; hit: number; ranges: [number, number][][] }>;
}

/** `weft launch` over the fixture's model and adapters in `before`, closed in `after` (--max-input-length 200,
 * --max-total-tokens 256, --max-images-per-prompt 2); `watchSteps`: the steps the engine's scheduler schedules are
 * kept in `steps`. */
export function useVisionServer(o: { dir: string; cluster: string; prefillBudget?: number; block?: number; watchSteps?: boolean }): VisionServer {
  let server: Launched;
  const steps: Step[] = [];
  const post = async (path: string, body: unknown): Promise<Posted> => {
    const res = await fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await res.text();
    let json: any = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, json, text };
  };
  const cacheHits = async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const m = /^weft_prefix_cache_hit_tokens_total(?:\{[^}]*\})? (\d+)/m.exec(text);
    return m ? Number(m[1]) : 0;
  };
  const prefillRanges = () => {
    const out = new Map<string, [number, number][]>();
    for (const st of steps) {
      for (const n of st.newSeqs) out.set(n.seqId, [[n.cached ?? 0, n.tokens.length]]);
      for (const c of st.chunks ?? []) {
        const r = out.get(c.seqId)!;
        const from = r.at(-1)![1];
        r.push([from, from + c.tokens.length]);
      }
    }
    return [...out.values()];
  };

  before(async () => {
    const flags = ['--model-id', join(o.dir, 'model'), '--port', '0', '--hostname', '127.0.0.1', '--cluster', o.cluster,
      '--max-input-length', '200', '--max-total-tokens', '256', '--max-batch-prefill-tokens', String(o.prefillBudget ?? 512), '--block-size', String(o.block ?? 4),
      '--adapter-root', join(o.dir, 'adapters'), '--max-adapter-slots', '4', '--log-level', 'silent',
      '--shard-heartbeat-ms', '200', '--shard-timeout-ms', '5000', '--step-timeout-ms', '30000', '--max-images-per-prompt', '2'];
    server = await launch(parseArgs('launch', flags, {}), { cacheDir: mkdtempSync(join(tmpdir(), 'weft-cache-')) });
    if (!o.watchSteps) return;
    // The steps' prefill boundaries, watched on the engine's scheduler (a private field: a test's look inside).
    const sched = (server.engine as unknown as { scheduler: Record<string, () => ScheduledStep | null> }).scheduler;
    for (const name of ['schedule', 'scheduleAhead']) {
      const orig = sched[name]!.bind(sched);
      sched[name] = () => {
        const st = orig();
        if (st) steps.push(st.step);
        return st;
      };
    }
  });
  after(async () => {
    await server?.close();
  });

  return {
    get server() { return server; },
    steps, post, cacheHits, prefillRanges,
    prefill: async (inputs, adapter) => {
      const r = await post('/generate', { inputs, parameters: { max_new_tokens: 1, details: true, decoder_input_details: true, ...adapterParams(adapter) } });
      assert.equal(r.status, 200, r.text);
      return r.json.details.prefill as Prefill;
    },
    firstToken: async (inputs, adapter, topN) => {
      steps.length = 0;
      const before = await cacheHits();
      const r = await post('/generate', { inputs, parameters: { max_new_tokens: 1, details: true, top_n_tokens: topN, ...adapterParams(adapter) } });
      assert.equal(r.status, 200, r.text);
      return { details: r.json.details, hit: await cacheHits() - before, ranges: prefillRanges() };
    },
  };
}

/** got's log-probs of positions first + 1 … first + n against golden rows 0 … n − 1 of `key`: the worst difference. */
export function worstRows(fx: VisionFixture<unknown>, got: Prefill, first: number, key: string, n: number, label = key): number {
  let w = 0;
  for (let r = 0; r < n; r++) {
    const pos = first + r + 1;
    const ref = fx.row(key, r)[got[pos]!.id]!;
    const err = Math.abs(got[pos]!.logprob! - ref);
    assert.ok(err <= TOL, `${label} position ${pos}: logprob ${got[pos]!.logprob}, transformers ${ref}`);
    w = Math.max(w, err);
  }
  return w;
}

/** A prompt's prefill: the tokens transformers' processor gives, and their log-probs against the golden rows of `key`:
 * the worst difference. */
export function matchPrefill(fx: VisionFixture<unknown>, got: Prefill, ids: readonly number[], key: string, label = key): number {
  assert.deepEqual(got.map((p) => p.id), ids, `${label}: the tokens transformers' processor gives`);
  return worstRows(fx, got, 0, key, ids.length - 1, label);
}

/** The first generated token (greedy) and its top alternatives against a golden log-softmax row: the worst difference. */
export function checkTop(details: any, ref: Float64Array, label: string, topN: number): number {
  const best = ref.indexOf(Math.max(...ref));
  const tok = details.tokens[0] as { id: number; logprob: number };
  assert.equal(tok.id, best, `${label}: greedy token`);
  const top = details.top_tokens[0] as { id: number; logprob: number }[];
  assert.equal(top.length, topN);
  let w = Math.abs(tok.logprob - ref[best]!);
  for (const t of top) w = Math.max(w, Math.abs(t.logprob - ref[t.id]!));
  assert.ok(w <= TOL, `${label}: first token and top ${topN} log-probs ${JSON.stringify(top)} differ from transformers' by ${w}`);
  return w;
}

/** The golden decode rows of sequence s, its decode tokens sent as prompt text after it (token id = byte +
 * `byteOffset`): the tokens, and their log-probs against `<prefix>/seq<s>/decode`; the worst difference. */
export async function decodeRows(vs: VisionServer, fx: VisionFixture<unknown>, seq: { prompt: string; images: readonly string[]; ids: number[]; decode: number[] },
  s: number, adapter: string | null, byteOffset: number): Promise<number> {
  const got = await vs.prefill(fx.markdown(seq) + String.fromCharCode(...seq.decode.map((t) => t - byteOffset)), adapter);
  assert.deepEqual(got.map((p) => p.id), [...seq.ids, ...seq.decode]);
  return worstRows(fx, got, seq.ids.length - 1, `${goldenPrefix(adapter)}/seq${s}/decode`, seq.decode.length);
}

/** decodeRows of each sequence with decode tokens, for each of `adapters`: the worst difference. */
export async function allDecodeRows(vs: VisionServer, fx: VisionFixture<unknown>,
  seqs: { prompt: string; images: readonly string[]; ids: number[]; decode: number[] }[], adapters: (string | null)[], byteOffset: number): Promise<number> {
  let w = 0;
  for (const [s, seq] of seqs.entries()) {
    if (seq.decode.length === 0) continue;
    for (const adapter of adapters) w = Math.max(w, await decodeRows(vs, fx, seq, s, adapter, byteOffset));
  }
  return w;
}

/** A chunked prefill's ranges (at least 3 chunks, each within `budget`), some chunk ending inside one of `images`'
 * ranges [start, end). */
export function checkChunksEndInside(got: [number, number][] | undefined, images: readonly (readonly [number, number])[], budget: number, label: string): void {
  assert.ok(got !== undefined && got.length >= 3, `${label}: chunked (${JSON.stringify(got)})`);
  for (const [from, to] of got!) assert.ok(to - from <= budget, `${label}: chunk [${from}, ${to}) within the budget`);
  const inside = got!.filter(([, to]) => images.some(([a, b]) => a < to && to < b));
  assert.ok(inside.length > 0, `${label}: some chunk ends inside an image (${JSON.stringify(got)})`);
}

/** Each sequence with images sent with `adapter` under a prefill budget below its images: computed (at most the text
 * before its first image found cached), chunked with chunks ending inside images (checkChunksEndInside), the first
 * token and its top `topN` as transformers' (checkTop); the worst difference. */
export async function chunkedFirstTokens<S extends { ids: number[]; images: string[]; prompt: string }>(vs: VisionServer, fx: VisionFixture<{ sequences: S[] }>,
  adapter: string | null, budget: number, topN: number, ranges: (seq: S) => readonly (readonly [number, number])[]): Promise<number> {
  const prefix = goldenPrefix(adapter);
  let w = 0;
  for (const [s, seq] of fx.cases.sequences.entries()) {
    if (seq.images.length === 0) continue;
    const { details, hit, ranges: [got] } = await vs.firstToken(fx.markdown(seq), adapter, topN);
    assert.ok(hit <= ranges(seq)[0]![0], 'the images are computed, not found cached');
    checkChunksEndInside(got, ranges(seq), budget, `${prefix}/seq${s}`);
    w = Math.max(w, checkTop(details, fx.row(`${prefix}/seq${s}`, seq.ids.length - 1), `${prefix}/seq${s}`, topN));
  }
  return w;
}

/** chatFirstToken of the prompt with two images: its images, then its text after them up to `end`. */
export async function chatTwoImages(vs: VisionServer, fx: VisionFixture<{ sequences: { ids: number[]; images: string[]; prompt: string }[] }>, end: string,
  usage: string, best = true): Promise<{ r: Posted; s: number; seq: { ids: number[] } }> {
  const s = fx.cases.sequences.findIndex((q) => q.images.length === 2);
  const seq = fx.cases.sequences[s]!;
  const content = [...fx.imageParts(seq.images), { type: 'text', text: fx.textAfterImages(seq.prompt, end) }];
  return { r: await chatFirstToken(vs, fx, s, seq, content, usage, best), s, seq };
}

/** The chat route over one user message of `content`: its prompt is sequence s's (`usage`: what the count says); with
 * `best`, the first token's log-prob is transformers' best of the prompt's last row. */
export async function chatFirstToken(vs: VisionServer, fx: VisionFixture<unknown>, s: number, seq: { ids: number[] }, content: unknown[], usage: string,
  best = true): Promise<Posted> {
  const r = await vs.post('/v1/chat/completions', { messages: [{ role: 'user', content }], max_tokens: 1, temperature: 0, logprobs: true, top_logprobs: 1 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.usage.prompt_tokens, seq.ids.length, usage);
  if (best) {
    const last = fx.row(`base/seq${s}`, seq.ids.length - 1);
    const top = r.json.choices[0].logprobs.content[0].logprob as number;
    assert.ok(Math.abs(top - Math.max(...last)) <= TOL, `first token logprob ${top}, transformers' best ${Math.max(...last)}`);
  }
  return r;
}

/** /tokenize and /chat_tokenize of `messages`: sequence `seq`'s ids (`tokens`: what /tokenize's say) and prompt. */
export async function tokenizeRoutes(vs: VisionServer, messages: unknown[], seq: { ids: number[]; prompt: string }, tokens: string): Promise<{ v: Posted; t: Posted }> {
  const v = await vs.post('/tokenize', { messages });
  assert.equal(v.status, 200, v.text);
  assert.deepEqual(v.json.tokens, seq.ids, tokens);
  assert.equal(v.json.count, seq.ids.length);
  const t = await vs.post('/chat_tokenize', { messages });
  assert.equal(t.status, 200, t.text);
  assert.equal(t.json.templated_text, seq.prompt);
  assert.deepEqual(t.json.tokenize_response.map((x: { id: number }) => x.id), seq.ids);
  return { v, t };
}

/** /generate of `inputs` is a 422 whose error matches `error` (a string: equals it). */
export async function expect422(vs: VisionServer, inputs: string, error: RegExp | string): Promise<Posted> {
  const r = await vs.post('/generate', { inputs, parameters: { max_new_tokens: 1 } });
  assert.equal(r.status, 422, r.text);
  if (typeof error === 'string') assert.equal(r.json.error, error);
  else assert.match(r.json.error, error);
  return r;
}

/** The length of the first run of `token` in `ids`. */
export function firstRunLength(ids: readonly number[], token: number): number {
  const first = ids.indexOf(token);
  let n = 0;
  while (ids[first + n] === token) n++;
  return n;
}

/** cases.json of a dynamic-resolution (Qwen-VL) fixture. */
export interface QwenCases {
  sequences: { ids: number[]; images: string[]; prompt: string; image_tokens: number[]; decode: number[] }[];
  image_token_id: number; patch_size: number; merge_size: number; image_placeholder: string; adapters: { name: string; dir: string }[];
  images: Record<string, { png: string; pixel_values: string; height: number; width: number; image_grid_thw: number[]; tokens: number }>;
}

/** Each image of a Qwen-VL fixture: weft's smart_resize, grid, token count and pixel values (bit for bit) are the
 * fixture's. */
export async function checkQwenPreprocessing(fx: VisionFixture<QwenCases>, config: Qwen2VLProcessorConfig): Promise<void> {
  for (const [image, info] of Object.entries(fx.cases.images)) {
    const px = preprocessImage(await decodeRgb(fx.png(image), 1e8, image), config);
    assert.deepEqual([px.height, px.width], [info.height, info.width], `${image}: smart_resize`);
    assert.deepEqual([1, px.height / config.patchSize, px.width / config.patchSize], info.image_grid_thw, `${image}: grid`);
    assert.equal(qwen2VLTokens(px.height, px.width, config.patchSize, config.mergeSize), info.tokens, `${image}: tokens`);
    assert.deepEqual(px.data, fx.pixelValues(info.pixel_values), `${image}: bit for bit`);
  }
}

/** Dynamic-resolution images (Qwen-VL): the two-image sequence's images swapped still give each image its own count. */
export async function checkSwappedCounts(vs: VisionServer, fx: VisionFixture<{ image_token_id: number }>,
  seq: { prompt: string; images: string[]; image_tokens: number[] }): Promise<void> {
  const got = await vs.prefill(fx.markdown({ ...seq, images: [...seq.images].reverse() }), null);
  const pad = fx.cases.image_token_id;
  assert.equal(got.filter((p) => p.id === pad).length, seq.image_tokens.reduce((a, b) => a + b, 0));
  assert.equal(firstRunLength(got.map((p) => p.id), pad), seq.image_tokens.at(-1), 'the first placeholder takes the first image\'s count');
}
