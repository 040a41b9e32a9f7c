// Mistral 3 images end to end: `weft launch` (real nats-server, shard processes) over the tiny
// Mistral3ForConditionalGeneration of test/fixtures/vlm/mistral3 (made by the shard side's fixture script: a byte-level
// tokenizer with Mistral's [INST] / [IMG] / [IMG_BREAK] / [IMG_END], the slow PixtralImageProcessor's
// preprocessor_config.json at longest_edge 32, processor_config.json's patch_size 4 and spatial_merge_size 2,
// transformers + PEFT logits). A prompt sent with TGI markdown images (each the template's [IMG]) gives the tokens
// transformers' PixtralProcessor gives (each [IMG] expanded to rows of [IMG] × cols + [IMG_BREAK], the last break made
// [IMG_END]; the image's range covers the breaks) and prefill log-probs equal to the golden logits' log-softmax for
// the base model and each adapter (on the language model; on the language model, the Pixtral tower and the projector)
// — one prompt holding two images of different aspect ratios (a 4 × 2 and a 2 × 4 token grid). Then chunked prefill:
// with --max-batch-prefill-tokens 6 the chunks end inside the images (Pixtral's decoder is causal: no rule keeps an
// image whole), and the first generated token's log-prob equals transformers'; a cached prefix that ends inside an
// image (block size 8) continues right. Also the decode rows, the chat route and the 422s.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, type Launched } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';
import { SafetensorsFile } from '../../shard/formats/index.js';
import { refLogSoftmax } from '../helpers/reference-ops.js';
import type { Step } from '../../protocol/index.js';
import type { ScheduledStep } from '../../coordinator/scheduler/index.js';

const DIR = join(import.meta.dirname, '../../../test/fixtures/vlm/mistral3');
interface Sequence { ids: number[]; images: string[]; prompt: string; expanded: string; image_starts: number[]; decode: number[] }
interface ImageInfo { png: string; pixel_values: string; height: number; width: number; rows: number; cols: number; tokens: number }
interface Cases {
  sequences: Sequence[]; image_token_id: number; image_break_token_id: number; image_end_token_id: number; patch_size: number; merge_size: number;
  image_placeholder: string; adapters: { name: string; dir: string }[]; images: Record<string, ImageInfo>;
}
const TOL = 1e-4;
const PREFILL_BUDGET = 6;
const BLOCK = 8;
const TOP_N = 4;
/** The fixture's byte-level tokenizer: token id = byte + 16 for text. */
const BYTE_OFFSET = 16;

if (!existsSync(join(DIR, 'cases.json'))) {
  test('Mistral 3 images end to end', { skip: `no fixture at ${DIR} (the shard side's Mistral 3 fixture script)` }, () => {});
} else {
  describe('Mistral 3 images end to end', () => {
    const cases = JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as Cases;
    const golden = SafetensorsFile.open(join(DIR, 'golden.safetensors'));
    const logits = (key: string) => ({ data: golden.readF32(key), vocab: golden.info(key).shape.at(-1)! });
    const row = (key: string, r: number) => {
      const l = logits(key);
      return refLogSoftmax(l.data.subarray(r * l.vocab, (r + 1) * l.vocab));
    };
    const png = (image: string) => readFileSync(join(DIR, cases.images[image]!.png));
    const dataUrl = (image: string) => `data:image/png;base64,${png(image).toString('base64')}`;
    /** The prompt as TGI markdown images: each image placeholder ([IMG]) in turn becomes ![](data: URL). */
    const markdown = (seq: Pick<Sequence, 'prompt' | 'images'>) => {
      let i = 0;
      return seq.prompt.replaceAll(cases.image_placeholder, () => `![](${dataUrl(seq.images[i++]!)})`);
    };
    /** Image i's range in a sequence: rows · (cols + 1) positions from its first [IMG]. */
    const ranges = (seq: Sequence) => seq.images.map((name, k) => [seq.image_starts[k]!, seq.image_starts[k]! + cases.images[name]!.tokens] as const);
    let server: Launched;
    const steps: Step[] = [];
    /** Each sequence's prefill ranges [from, to) in the steps since `steps` was emptied. */
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
    const post = async (path: string, body: unknown) => {
      const res = await fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await res.text();
      let json: any = null;
      try { json = JSON.parse(text); } catch { /* not JSON */ }
      return { status: res.status, json, text };
    };
    const adapterParams = (adapter: string | null) => (adapter ? { adapter_id: adapter, adapter_source: 'local' } : {});
    /** The first generated token (greedy) and its top alternatives against a golden log-softmax row: the worst difference. */
    const checkTop = (details: any, ref: Float64Array | number[], label: string) => {
      const best = ref.indexOf(Math.max(...ref));
      const tok = details.tokens[0] as { id: number; logprob: number };
      assert.equal(tok.id, best, `${label}: greedy token`);
      const top = details.top_tokens[0] as { id: number; logprob: number }[];
      assert.equal(top.length, TOP_N);
      let w = Math.abs(tok.logprob - ref[best]!);
      for (const t of top) w = Math.max(w, Math.abs(t.logprob - ref[t.id]!));
      assert.ok(w <= TOL, `${label}: first token and top ${TOP_N} log-probs ${JSON.stringify(top)} differ from transformers' by ${w}`);
      return w;
    };
    const cacheHits = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const m = /^weft_prefix_cache_hit_tokens_total(?:\{[^}]*\})? (\d+)/m.exec(text);
      return m ? Number(m[1]) : 0;
    };

    before(async () => {
      const flags = ['--model-id', join(DIR, 'model'), '--port', '0', '--hostname', '127.0.0.1', '--cluster', `m${process.pid}`,
        '--max-input-length', '200', '--max-total-tokens', '256', '--max-batch-prefill-tokens', String(PREFILL_BUDGET), '--block-size', String(BLOCK),
        '--adapter-root', join(DIR, 'adapters'), '--max-adapter-slots', '4', '--log-level', 'silent',
        '--shard-heartbeat-ms', '200', '--shard-timeout-ms', '5000', '--step-timeout-ms', '30000', '--max-images-per-prompt', '2'];
      server = await launch(parseArgs('launch', flags, {}), { cacheDir: mkdtempSync(join(tmpdir(), 'weft-cache-')) });
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

    test('the engine and the shards agree on the tower: [IMG], patch 4 · merge 2, row breaks; markdown images become [IMG]', () => {
      const v = server.engine.info.vision;
      assert.ok(v !== undefined, 'the shards report a vision tower for Mistral3ForConditionalGeneration (ModelInfo.vision)');
      assert.deepEqual([v.imageTokenId, v.patchSize, v.mergeSize, v.rowBreaks, v.tokensPerImage, v.bidirectionalImages, v.imageToken, v.imagePlaceholder],
        [cases.image_token_id, cases.patch_size, cases.merge_size, true, undefined, undefined, '[IMG]', cases.image_placeholder]);
      // the fixture: two images of different aspect ratios in one prompt
      const two = cases.sequences.find((s) => s.images.length === 2)!;
      const [a, b] = two.images.map((n) => cases.images[n]!);
      assert.ok(a!.rows !== b!.rows && a!.rows * a!.cols === b!.rows * b!.cols, 'the same features, other shapes: breaks in other places');
    });

    for (const adapter of [null, ...cases.adapters.map((a) => a.name)]) {
      test(`chunked prefill (budget ${PREFILL_BUDGET}): chunks end inside the images, the first token equals transformers' (${adapter ?? 'base model'})`, async () => {
        const prefix = adapter ? `adapter/${adapter}` : 'base';
        let w = 0;
        for (const [s, seq] of cases.sequences.entries()) {
          if (seq.images.length === 0) continue;
          steps.length = 0;
          const hits = await cacheHits();
          const r = await post('/generate', { inputs: markdown(seq), parameters: { max_new_tokens: 1, details: true, top_n_tokens: TOP_N,
            ...adapterParams(adapter) } });
          assert.equal(r.status, 200, r.text);
          assert.ok(await cacheHits() - hits <= seq.image_starts[0]!, 'the images are computed, not found cached');
          const [got] = prefillRanges();
          assert.ok(got !== undefined && got.length >= 3, `${prefix}/seq${s}: chunked (${JSON.stringify(got)})`);
          for (const [from, to] of got!) assert.ok(to - from <= PREFILL_BUDGET, `${prefix}/seq${s}: chunk [${from}, ${to}) within the budget`);
          const inside = got!.filter(([, to]) => ranges(seq).some(([a, b]) => a < to && to < b));
          assert.ok(inside.length > 0, `${prefix}/seq${s}: some chunk ends inside an image (${JSON.stringify(got)})`);
          w = Math.max(w, checkTop(r.json.details, row(`${prefix}/seq${s}`, seq.ids.length - 1), `${prefix}/seq${s}`));
        }
        console.log(`mistral3 ${adapter ?? 'base'} chunked: max abs first-token and top-${TOP_N} logprob error ${w.toExponential(2)}`);
      });

      test(`prefill log-probs equal transformers' (${adapter ?? 'base model'}): PixtralProcessor's tokens, one and two images`, async () => {
        const prefix = adapter ? `adapter/${adapter}` : 'base';
        let w = 0;
        for (const [s, seq] of cases.sequences.entries()) {
          const r = await post('/generate', { inputs: markdown(seq), parameters: { max_new_tokens: 1, details: true, decoder_input_details: true,
            ...adapterParams(adapter) } });
          assert.equal(r.status, 200, r.text);
          const got = r.json.details.prefill as { id: number; logprob: number | null }[];
          assert.deepEqual(got.map((p) => p.id), seq.ids, `${prefix}/seq${s}: the tokens transformers' processor gives`);
          for (const [k, [a, b]] of ranges(seq).entries()) {
            const { rows, cols } = cases.images[seq.images[k]!]!;
            for (let rr = 0; rr < rows; rr++) {
              assert.equal(got[a + rr * (cols + 1) + cols]!.id, rr === rows - 1 ? cases.image_end_token_id : cases.image_break_token_id, 'row ends');
            }
            assert.equal(b - a, rows * (cols + 1));
          }
          for (let p = 1; p < seq.ids.length; p++) {
            const ref = row(`${prefix}/seq${s}`, p - 1)[seq.ids[p]!]!;
            const err = Math.abs(got[p]!.logprob! - ref);
            assert.ok(err <= TOL, `${prefix}/seq${s} position ${p}: logprob ${got[p]!.logprob}, transformers ${ref}`);
            w = Math.max(w, err);
          }
        }
        console.log(`mistral3 ${adapter ?? 'base'}: ${cases.sequences.length} prompts, max abs prompt logprob error ${w.toExponential(2)}`);
      });
    }

    test('a cached prefix ending inside an image: the chunk continuing it, the logits as transformers\'', async () => {
      // seq 0's prompt up to its image's end ("<s>[INST]" + the image's run): computed before (the tests above), its
      // first block of 8 (inside the image) is found cached.
      const seq = cases.sequences[0]!;
      const [start, end] = ranges(seq)[0]!;
      const cached = Math.floor((end - 1) / BLOCK) * BLOCK;
      assert.ok(cached > start && cached < end, 'the cached prefix ends inside the image');
      const inputs = markdown({ prompt: seq.prompt.slice(0, seq.prompt.indexOf(cases.image_placeholder) + cases.image_placeholder.length), images: seq.images });
      const before = await cacheHits();
      steps.length = 0;
      const r = await post('/generate', { inputs, parameters: { max_new_tokens: 1, details: true, top_n_tokens: TOP_N } });
      assert.equal(r.status, 200, r.text);
      assert.equal(await cacheHits() - before, cached);
      assert.deepEqual(prefillRanges(), [[[cached, end]]], 'one chunk from inside the image to its end');
      const w = checkTop(r.json.details, row('base/seq0', end - 1), `seq0[:${end}]`);
      console.log(`mistral3 cached prefix inside an image: max abs logprob error ${w.toExponential(2)}`);
    });

    test('the text after the images: the golden decode rows (sent as prompt text)', async () => {
      let w = 0;
      for (const [s, seq] of cases.sequences.entries()) {
        if (seq.decode.length === 0) continue;
        for (const adapter of [null, ...cases.adapters.map((a) => a.name)]) {
          const prefix = adapter ? `adapter/${adapter}` : 'base';
          const r = await post('/generate', { inputs: markdown(seq) + String.fromCharCode(...seq.decode.map((t) => t - BYTE_OFFSET)),
            parameters: { max_new_tokens: 1, details: true, decoder_input_details: true, ...adapterParams(adapter) } });
          assert.equal(r.status, 200, r.text);
          const got = r.json.details.prefill as { id: number; logprob: number | null }[];
          assert.deepEqual(got.map((p) => p.id), [...seq.ids, ...seq.decode]);
          for (let j = 0; j < seq.decode.length; j++) {
            const pos = seq.ids.length + j;
            const ref = row(`${prefix}/seq${s}/decode`, j)[got[pos]!.id]!;
            const err = Math.abs(got[pos]!.logprob! - ref);
            assert.ok(err <= TOL, `${prefix}/seq${s}/decode position ${pos}: logprob ${got[pos]!.logprob}, transformers ${ref}`);
            w = Math.max(w, err);
          }
        }
      }
      console.log(`mistral3 decode rows: max abs logprob error ${w.toExponential(2)}`);
    });

    test('chat: image parts rendered by the model\'s template as [IMG], expanded by PixtralProcessor\'s rule', async () => {
      const s = cases.sequences.findIndex((q) => q.images.length === 2);
      const seq = cases.sequences[s]!;
      const text = seq.prompt.split(cases.image_placeholder).at(-1)!.split('[/INST]')[0]!;
      const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: [
        ...seq.images.map((i) => ({ type: 'image_url', image_url: { url: dataUrl(i) } })), { type: 'text', text }] }], max_tokens: 1, temperature: 0,
      logprobs: true, top_logprobs: 1 });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.usage.prompt_tokens, seq.ids.length, 'the template renders the fixture\'s prompt; breaks counted');
      const last = row(`base/seq${s}`, seq.ids.length - 1);
      const top = r.json.choices[0].logprobs.content[0].logprob as number;
      assert.ok(Math.abs(top - Math.max(...last)) <= TOL, `first token logprob ${top}, transformers' best ${Math.max(...last)}`);
    });

    test('a placeholder without its image, or one image with two placeholders, are 422s', async () => {
      const bare = await post('/generate', { inputs: `x${cases.image_placeholder}y`, parameters: { max_new_tokens: 1 } });
      assert.equal(bare.status, 422, bare.text);
      assert.match(bare.json.error, /^the prompt has 1 image placeholder \(\[IMG\]\) for 0 images/);
      const two = await post('/generate', { inputs: `![](${dataUrl('wide')})[IMG]`, parameters: { max_new_tokens: 1 } });
      assert.equal(two.status, 422, two.text);
      assert.match(two.json.error, /^the prompt has 2 image placeholders \(\[IMG\]\) for 1 image/);
    });
  });
}
