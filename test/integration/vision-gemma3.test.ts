// Gemma 3 images end to end: `weft launch` (real nats-server, shard processes) over the tiny Gemma3ForConditionalGeneration
// of test/fixtures/vlm/gemma3 (made by the shard side's fixture script: a byte-level tokenizer with Gemma 3's
// <start_of_image> / <end_of_image> / <image_soft_token>, the slow Gemma3ImageProcessor's preprocessor_config.json at
// 32 px, processor_config.json's image_seq_length 16, transformers + PEFT logits). A prompt sent with TGI markdown images
// (each the template's <start_of_image>) gives the tokens transformers' Gemma3Processor gives (each boi replaced by
// "\n\n" + boi + 16 soft tokens + eoi + "\n\n"), and prefill log-probs equal to the golden logits' log-softmax for the base
// model and each adapter — one prompt holding two images. Then chunked prefill: with --max-batch-prefill-tokens 12
// an image's 16 tokens (which attend to each other both ways) never split over steps — a chunk stops before the image
// and the image goes whole — and the first generated token's log-prob (the last prompt row, computed over several
// chunks; prompt log-probs are computed whole) equals transformers'; a cached prefix that ends inside an image (block
// size 8: 24 tokens cached, the image at 10..25) continues right. Also the chat route and the coordinator's side of
// the fixture (pixel values, the expansion string).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, type Launched } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';
import { SafetensorsFile } from '../../shard/formats/index.js';
import { decodeRgb, parsePreprocessorConfig, preprocessImage } from '../../coordinator/vision/index.js';
import { imageSequence } from '../../coordinator/engine/prompt-images.js';
import { refLogSoftmax } from '../helpers/reference-ops.js';
import type { Step } from '../../protocol/index.js';
import type { ScheduledStep } from '../../coordinator/scheduler/index.js';

const DIR = join(import.meta.dirname, '../../../test/fixtures/vlm/gemma3');
interface Sequence { ids: number[]; images: string[]; prompt: string; expanded: string; image_starts: number[]; decode: number[] }
interface ImageInfo { png: string; pixel_values: string; height: number; width: number; tokens: number }
interface Cases {
  sequences: Sequence[]; image_token_id: number; boi_token_id: number; eoi_token_id: number; tokens_per_image: number; image_size: number;
  image_placeholder: string; image_expansion: string; adapters: { name: string; dir: string }[]; images: Record<string, ImageInfo>;
}
const TOL = 1e-4;
const PREFILL_BUDGET = 12;
const BLOCK = 8;
const TOP_N = 4;

if (!existsSync(join(DIR, 'cases.json'))) {
  test('Gemma 3 images end to end', { skip: `no fixture at ${DIR} (the shard side's Gemma 3 fixture script)` }, () => {});
} else {
  describe('Gemma 3 images end to end', () => {
    const cases = JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as Cases;
    const golden = SafetensorsFile.open(join(DIR, 'golden.safetensors'));
    const logits = (key: string) => ({ data: golden.readF32(key), vocab: golden.info(key).shape.at(-1)! });
    const row = (key: string, r: number) => {
      const l = logits(key);
      return refLogSoftmax(l.data.subarray(r * l.vocab, (r + 1) * l.vocab));
    };
    const png = (image: string) => readFileSync(join(DIR, cases.images[image]!.png));
    const dataUrl = (image: string) => `data:image/png;base64,${png(image).toString('base64')}`;
    /** The prompt as TGI markdown images: each image placeholder (<start_of_image>) in turn becomes ![](data: URL). */
    const markdown = (seq: Pick<Sequence, 'prompt' | 'images'>) => {
      let i = 0;
      return seq.prompt.replaceAll(cases.image_placeholder, () => `![](${dataUrl(seq.images[i++]!)})`);
    };
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
    /** The first generated token (greedy) and its top alternatives against a golden log-softmax row: the worst
     * difference. (The last prompt row is near-certain of its best token; the alternatives, ~17 nats down, are not.) */
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
      const flags = ['--model-id', join(DIR, 'model'), '--port', '0', '--hostname', '127.0.0.1', '--cluster', `g${process.pid}`,
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

    test('the fixture\'s pixel values are what weft\'s Gemma3ImageProcessor gives; the expansion is Gemma3Processor\'s', async () => {
      const config = parsePreprocessorConfig(JSON.parse(readFileSync(join(DIR, 'model', 'preprocessor_config.json'), 'utf8')));
      assert.ok(config.kind === 'gemma3');
      for (const [image, info] of Object.entries(cases.images)) {
        const px = preprocessImage(await decodeRgb(png(image), 1e8, image), config);
        assert.deepEqual([px.height, px.width], [info.height, info.width], `${image}: resized`);
        const want = new Float32Array(new Uint8Array(readFileSync(join(DIR, info.pixel_values))).buffer);
        assert.deepEqual(px.data, want, `${image}: bit for bit`);
      }
      assert.equal(imageSequence(cases.tokens_per_image, { imageToken: '<image_soft_token>',
        rule: { kind: 'gemma3', boiToken: '<start_of_image>', eoiToken: '<end_of_image>' } }), cases.image_expansion);
    });

    test('the engine and the shards agree on the tower; markdown images become <start_of_image>; images are bidirectional', () => {
      const v = server.engine.info.vision;
      assert.deepEqual([v?.imageTokenId, v?.tokensPerImage, v?.imageSize, v?.imageToken, v?.templateToken, v?.imagePlaceholder, v?.bidirectionalImages],
        [cases.image_token_id, cases.tokens_per_image, cases.image_size, '<image_soft_token>', '<start_of_image>', cases.image_placeholder, true]);
    });

    for (const adapter of [null, ...cases.adapters.map((a) => a.name)]) {
      test(`chunked prefill (budget ${PREFILL_BUDGET} < an image's ${cases.tokens_per_image} tokens): the first token equals transformers' (${adapter ?? 'base model'})`, async () => {
        const prefix = adapter ? `adapter/${adapter}` : 'base';
        let w = 0;
        for (const [s, seq] of cases.sequences.entries()) {
          if (seq.images.length === 0) continue;
          assert.ok(seq.ids.length > PREFILL_BUDGET && cases.tokens_per_image > PREFILL_BUDGET);
          steps.length = 0;
          const hits = await cacheHits();
          const r = await post('/generate', { inputs: markdown(seq), parameters: { max_new_tokens: 1, details: true, top_n_tokens: TOP_N,
            ...adapterParams(adapter) } });
          assert.equal(r.status, 200, r.text);
          // computed, not found cached (the chunked requests come first): at most the text before the first image
          assert.ok(await cacheHits() - hits <= seq.image_starts[0]!, 'the images are computed, not found cached');
          // the prompt went in chunks, each within the budget or one whole image, none ending inside an image
          const [ranges] = prefillRanges();
          assert.ok(ranges !== undefined && ranges.length >= 3, `${prefix}/seq${s}: chunked (${JSON.stringify(ranges)})`);
          for (const [from, to] of ranges!) {
            for (const start of seq.image_starts) {
              assert.ok(!(start < to && to < start + cases.tokens_per_image), `${prefix}/seq${s}: chunk [${from}, ${to}) ends inside the image at ${start}`);
            }
            assert.ok(to - from <= Math.max(PREFILL_BUDGET, cases.tokens_per_image));
          }
          w = Math.max(w, checkTop(r.json.details, row(`${prefix}/seq${s}`, seq.ids.length - 1), `${prefix}/seq${s}`));
        }
        console.log(`gemma3 ${adapter ?? 'base'} chunked: max abs first-token and top-${TOP_N} logprob error ${w.toExponential(2)}`);
      });
      test(`prefill log-probs equal transformers' (${adapter ?? 'base model'}): Gemma3Processor's tokens, one and two images`, async () => {
        const prefix = adapter ? `adapter/${adapter}` : 'base';
        assert.ok(cases.sequences.some((s) => s.images.length === 2), 'one prompt has two images');
        let w = 0;
        for (const [s, seq] of cases.sequences.entries()) {
          const r = await post('/generate', { inputs: markdown(seq), parameters: { max_new_tokens: 1, details: true, decoder_input_details: true,
            ...adapterParams(adapter) } });
          assert.equal(r.status, 200, r.text);
          const got = r.json.details.prefill as { id: number; logprob: number | null }[];
          assert.deepEqual(got.map((p) => p.id), seq.ids, `${prefix}/seq${s}: the tokens transformers' processor gives`);
          for (const start of seq.image_starts) {
            assert.deepEqual([got[start - 1]!.id, got[start + cases.tokens_per_image]!.id], [cases.boi_token_id, cases.eoi_token_id], 'boi, soft tokens, eoi');
          }
          for (let p = 1; p < seq.ids.length; p++) {
            const ref = row(`${prefix}/seq${s}`, p - 1)[seq.ids[p]!]!;
            const err = Math.abs(got[p]!.logprob! - ref);
            assert.ok(err <= TOL, `${prefix}/seq${s} position ${p}: logprob ${got[p]!.logprob}, transformers ${ref}`);
            w = Math.max(w, err);
          }
        }
        console.log(`gemma3 ${adapter ?? 'base'}: ${cases.sequences.length} prompts, max abs prompt logprob error ${w.toExponential(2)}`);
      });

    }

    test('a cached prefix ending inside an image: the chunk continuing it runs to the image\'s end, the logits as transformers\'', async () => {
      // seq 0's first 29 tokens: <bos>…user\n + "\n\n" boi, its 16 soft tokens at 10..25, eoi, "\n\n" — seq 0 computed
      // before (the tests above) holds them in blocks of 8: 3 blocks (24 tokens, inside the image) are found cached.
      const seq = cases.sequences[0]!;
      const start = seq.image_starts[0]!;
      const end = start + cases.tokens_per_image + 3;
      assert.ok(Math.floor((end - 1) / BLOCK) * BLOCK > start && Math.floor((end - 1) / BLOCK) * BLOCK < start + cases.tokens_per_image);
      const inputs = markdown({ prompt: seq.prompt.slice(0, seq.prompt.indexOf(cases.image_placeholder) + cases.image_placeholder.length), images: seq.images });
      const before = await cacheHits();
      steps.length = 0;
      const r = await post('/generate', { inputs, parameters: { max_new_tokens: 1, details: true, top_n_tokens: TOP_N } });
      assert.equal(r.status, 200, r.text);
      const cached = Math.floor((end - 1) / BLOCK) * BLOCK;
      assert.equal(await cacheHits() - before, cached, 'the cached prefix ends inside the image');
      assert.deepEqual(prefillRanges(), [[[cached, end]]], 'one chunk from inside the image past its end');
      const w = checkTop(r.json.details, row('base/seq0', end - 1), 'seq0[:29]');
      console.log(`gemma3 cached prefix inside an image: max abs logprob error ${w.toExponential(2)}`);
    });

    test('the text after the images: the golden decode rows (sent as prompt text)', async () => {
      let w = 0;
      for (const [s, seq] of cases.sequences.entries()) {
        if (seq.decode.length === 0) continue;
        // byte-level tokens: id = byte + 3, so the decode tokens appended as text are the same tokens
        const r = await post('/generate', { inputs: markdown(seq) + String.fromCharCode(...seq.decode.map((t) => t - 3)),
          parameters: { max_new_tokens: 1, details: true, decoder_input_details: true } });
        assert.equal(r.status, 200, r.text);
        const got = r.json.details.prefill as { id: number; logprob: number | null }[];
        assert.deepEqual(got.map((p) => p.id), [...seq.ids, ...seq.decode]);
        for (let j = 0; j < seq.decode.length; j++) {
          const pos = seq.ids.length + j;
          const ref = row(`base/seq${s}/decode`, j)[got[pos]!.id]!;
          const err = Math.abs(got[pos]!.logprob! - ref);
          assert.ok(err <= TOL, `base/seq${s}/decode position ${pos}: logprob ${got[pos]!.logprob}, transformers ${ref}`);
          w = Math.max(w, err);
        }
      }
      console.log(`gemma3 decode rows: max abs logprob error ${w.toExponential(2)}`);
    });

    test('chat: image parts rendered by the model\'s template as <start_of_image>, expanded by Gemma3Processor\'s rule', async () => {
      const s = cases.sequences.findIndex((q) => q.images.length === 2);
      const seq = cases.sequences[s]!;
      const text = seq.prompt.split(cases.image_placeholder).at(-1)!.split('<end_of_turn>')[0]!;
      const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: [
        ...seq.images.map((i) => ({ type: 'image_url', image_url: { url: dataUrl(i) } })), { type: 'text', text }] }], max_tokens: 1, temperature: 0,
      logprobs: true, top_logprobs: 1 });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.usage.prompt_tokens, seq.ids.length, 'the template renders the fixture\'s prompt');
      const last = row(`base/seq${s}`, seq.ids.length - 1);
      const top = r.json.choices[0].logprobs.content[0].logprob as number;
      assert.ok(Math.abs(top - Math.max(...last)) <= TOL, `first token logprob ${top}, transformers' best ${Math.max(...last)}`);
    });

    test('a placeholder without its image, or soft tokens written in the text, are 422s', async () => {
      const bare = await post('/generate', { inputs: `x${cases.image_placeholder}y`, parameters: { max_new_tokens: 1 } });
      assert.equal(bare.status, 422, bare.text);
      assert.match(bare.json.error, /^the prompt has 1 image placeholder \(<start_of_image>\) for 0 images/);
      const soft = await post('/generate', { inputs: `![](${dataUrl('wide')})<image_soft_token>`, parameters: { max_new_tokens: 1 } });
      assert.equal(soft.status, 422, soft.text);
      assert.match(soft.json.error, /image tokens that are not whole images/);
    });
  });
}
