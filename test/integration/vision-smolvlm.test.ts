// SmolVLM images end to end: `weft launch` (real nats-server, shard processes) over the tiny SmolVLMForConditionalGeneration
// of test/fixtures/vlm/smolvlm (made by the shard side's fixture script: a byte-level tokenizer with <image>,
// <fake_token_around_image>, <global-img> and the <row_r_col_c> tags, the slow SmolVLMImageProcessor's
// preprocessor_config.json — longest edge 48, tiles of 24 — processor_config.json's image_seq_len 9, transformers + PEFT
// logits). Each image is split into tiles (row-major) plus its global image, each tile one image for the shards: a
// 70 × 50 PNG becomes 2 × 2 tiles + 1, a wide one 1 × 2 + 1. A prompt sent with TGI markdown images (each `<image>`, the
// template's) gives the tokens transformers' SmolVLMProcessor gives (each `<image>` replaced by its tiles'
// `<fake_token_around_image><row_r_col_c>` + 9 × `<image>`, a newline after each row, then "\n" + the global image's
// `<fake_token_around_image><global-img>` + 9 × `<image>` + `<fake_token_around_image>`) and prefill log-probs equal to the
// golden logits' log-softmax for the base model and each adapter (language model only; language model and tower),
// one image and two. Then chunked prefill with --max-batch-prefill-tokens 8 (under a tile's 9 tokens: chunks end inside
// tiles, the decoder being causal), a cached prefix, the decode rows, the chat route, the token budget counting every
// tile, --max-images-per-prompt counting images (not tiles), and the 422s.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, type Launched } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';
import { SafetensorsFile } from '../../shard/formats/index.js';
import { decodeRgb, parsePreprocessorConfig, preprocessTiles } from '../../coordinator/vision/index.js';
import { tiledSequence } from '../../coordinator/engine/prompt-images.js';
import { refLogSoftmax } from '../helpers/reference-ops.js';
import type { Step } from '../../protocol/index.js';
import type { ScheduledStep } from '../../coordinator/scheduler/index.js';

const DIR = join(import.meta.dirname, '../../../test/fixtures/vlm/smolvlm');
interface Sequence { ids: number[]; source_images: string[]; images: string[]; prompt: string; expanded: string; image_starts: number[]; decode: number[] }
interface TileInfo { pixel_values: string; height: number; width: number; tokens: number; source: string; tile: number }
interface PngInfo { png: string; png_size: [number, number]; rows: number; cols: number; tiles: string[]; expansion: string }
interface Cases {
  sequences: Sequence[]; image_token_id: number; fake_token_id: number; global_image_token_id: number; tokens_per_image: number; image_size: number;
  image_placeholder: string; adapters: { name: string; dir: string }[]; images: Record<string, TileInfo>; pngs: Record<string, PngInfo>;
}
const TOL = 1e-4;
const PREFILL_BUDGET = 8;
const BLOCK = 8;
const TOP_N = 4;

if (!existsSync(join(DIR, 'cases.json'))) {
  test('SmolVLM images end to end', { skip: `no fixture at ${DIR} (the shard side's SmolVLM fixture script)` }, () => {});
} else {
  describe('SmolVLM images end to end', () => {
    const cases = JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as Cases;
    const golden = SafetensorsFile.open(join(DIR, 'golden.safetensors'));
    const logits = (key: string) => ({ data: golden.readF32(key), vocab: golden.info(key).shape.at(-1)! });
    const row = (key: string, r: number) => {
      const l = logits(key);
      return refLogSoftmax(l.data.subarray(r * l.vocab, (r + 1) * l.vocab));
    };
    const png = (name: string) => readFileSync(join(DIR, cases.pngs[name]!.png));
    const dataUrl = (name: string) => `data:image/png;base64,${png(name).toString('base64')}`;
    /** The prompt as TGI markdown images: each image placeholder (<image>) in turn becomes ![](data: URL). */
    const markdown = (seq: Pick<Sequence, 'prompt' | 'source_images'>) => {
      let i = 0;
      return seq.prompt.replaceAll(cases.image_placeholder, () => `![](${dataUrl(seq.source_images[i++]!)})`);
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
    /** The positions where each tile's run of image tokens starts in `ids`. */
    const runStarts = (ids: readonly number[]) => ids.flatMap((t, i) => (t === cases.image_token_id && ids[i - 1] !== cases.image_token_id ? [i] : []));

    before(async () => {
      const flags = ['--model-id', join(DIR, 'model'), '--port', '0', '--hostname', '127.0.0.1', '--cluster', `s${process.pid}`,
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

    test('the fixture\'s tiles are what weft\'s SmolVLMImageProcessor gives, in order; the expansion is SmolVLMProcessor\'s', async () => {
      const config = parsePreprocessorConfig(JSON.parse(readFileSync(join(DIR, 'model', 'preprocessor_config.json'), 'utf8')));
      assert.ok(config.kind === 'idefics3');
      for (const [name, info] of Object.entries(cases.pngs)) {
        const px = preprocessTiles(await decodeRgb(png(name), 1e8, name), config);
        assert.deepEqual([px.rows, px.cols, px.tiles.length], [info.rows, info.cols, info.tiles.length], `${name}: rows, cols, tiles`);
        info.tiles.forEach((tile, i) => {
          const t = cases.images[tile]!;
          assert.deepEqual([px.tiles[i]!.height, px.tiles[i]!.width], [t.height, t.width], `${tile}: size`);
          const want = new Float32Array(new Uint8Array(readFileSync(join(DIR, t.pixel_values))).buffer);
          assert.deepEqual(px.tiles[i]!.data, want, `${tile}: bit for bit`);
        });
        assert.equal(tiledSequence(info.rows, info.cols, cases.tokens_per_image, '<image>',
          { fakeToken: '<fake_token_around_image>', globalToken: '<global-img>' }), info.expansion, `${name}: expansion`);
      }
      assert.ok(Object.values(cases.pngs).some((p) => p.rows * p.cols >= 4) && Object.values(cases.pngs).some((p) => p.rows * p.cols === 2),
        'an image of 2 x 2 tiles and one of 1 x 2');
    });

    test('the engine and the shards agree on the tower: <image> tokens, image_seq_len tokens per tile, tiles of the tower\'s size', () => {
      const v = server.engine.info.vision;
      assert.deepEqual([v?.imageTokenId, v?.tokensPerImage, v?.imageSize, v?.imageToken, v?.templateToken, v?.imagePlaceholder, v?.bidirectionalImages, v?.rowBreaks],
        [cases.image_token_id, cases.tokens_per_image, cases.image_size, '<image>', undefined, cases.image_placeholder, undefined, undefined]);
    });

    test(`chunked prefill (budget ${PREFILL_BUDGET} < a tile's ${cases.tokens_per_image} tokens, chunks ending inside tiles): the first token equals transformers'`, async () => {
      let w = 0;
      for (const adapter of [null, ...cases.adapters.map((a) => a.name)]) {
        const prefix = adapter ? `adapter/${adapter}` : 'base';
        for (const [s, seq] of cases.sequences.entries()) {
          if (seq.images.length === 0) continue;
          steps.length = 0;
          const r = await post('/generate', { inputs: markdown(seq), parameters: { max_new_tokens: 1, details: true, top_n_tokens: TOP_N,
            ...adapterParams(adapter) } });
          assert.equal(r.status, 200, r.text);
          const [ranges] = prefillRanges();
          assert.ok(ranges !== undefined && ranges[0]![0] <= seq.image_starts[0]! && ranges.length >= (seq.ids.length - ranges[0]![0]) / PREFILL_BUDGET,
            `${prefix}/seq${s}: the images computed in chunks (${JSON.stringify(ranges)})`);
          for (const [from, to] of ranges!) assert.ok(to - from <= PREFILL_BUDGET, `${prefix}/seq${s}: chunk [${from}, ${to}) within the budget`);
          const inside = ranges!.filter(([, to]) => seq.image_starts.some((st) => st < to && to < st + cases.tokens_per_image)).length;
          assert.ok(inside >= 2, `${prefix}/seq${s}: chunks end inside tiles (${inside})`);
          w = Math.max(w, checkTop(r.json.details, row(`${prefix}/seq${s}`, seq.ids.length - 1), `${prefix}/seq${s}`));
        }
      }
      console.log(`smolvlm chunked: max abs first-token and top-${TOP_N} logprob error ${w.toExponential(2)}`);
    });

    for (const adapter of [null, ...cases.adapters.map((a) => a.name)]) {
      test(`prefill log-probs equal transformers' (${adapter ?? 'base model'}): SmolVLMProcessor's tokens, one image of 5 tiles and two of 3 + 5`, async () => {
        const prefix = adapter ? `adapter/${adapter}` : 'base';
        assert.ok(cases.sequences.some((s) => s.source_images.length === 2), 'one prompt has two images');
        let w = 0;
        for (const [s, seq] of cases.sequences.entries()) {
          const r = await post('/generate', { inputs: markdown(seq), parameters: { max_new_tokens: 1, details: true, decoder_input_details: true,
            ...adapterParams(adapter) } });
          assert.equal(r.status, 200, r.text);
          const got = r.json.details.prefill as { id: number; logprob: number | null }[];
          const ids = got.map((p) => p.id);
          assert.deepEqual(ids, seq.ids, `${prefix}/seq${s}: the tokens transformers' processor gives`);
          assert.deepEqual(runStarts(ids), seq.image_starts, `${prefix}/seq${s}: one run of ${cases.tokens_per_image} image tokens per tile`);
          assert.equal(seq.image_starts.length, seq.images.length);
          for (const start of seq.image_starts) {
            assert.equal(got[start - 2]!.id, cases.fake_token_id, 'each tile opens with <fake_token_around_image> and its tag');
            assert.notEqual(got[start + cases.tokens_per_image]!.id, cases.image_token_id, `a tile's run is ${cases.tokens_per_image} long`);
          }
          for (let p = 1; p < seq.ids.length; p++) {
            const ref = row(`${prefix}/seq${s}`, p - 1)[seq.ids[p]!]!;
            const err = Math.abs(got[p]!.logprob! - ref);
            assert.ok(err <= TOL, `${prefix}/seq${s} position ${p}: logprob ${got[p]!.logprob}, transformers ${ref}`);
            w = Math.max(w, err);
          }
        }
        console.log(`smolvlm ${adapter ?? 'base'}: ${cases.sequences.length} prompts, max abs prompt logprob error ${w.toExponential(2)}`);
      });
    }

    test('a prompt whose prefix is cached (chunks ending inside tiles): the rest computed, the logits as transformers\'', async () => {
      const seq = cases.sequences.find((q) => q.source_images.length === 1)!;
      const s = cases.sequences.indexOf(seq);
      const before = await cacheHits();
      steps.length = 0;
      const r = await post('/generate', { inputs: markdown(seq), parameters: { max_new_tokens: 1, details: true, top_n_tokens: TOP_N } });
      assert.equal(r.status, 200, r.text);
      const hit = await cacheHits() - before;
      assert.ok(hit > seq.image_starts[0]! && hit % BLOCK === 0, `cached ${hit} tokens, past the first tile's start ${seq.image_starts[0]}`);
      const w = checkTop(r.json.details, row(`base/seq${s}`, seq.ids.length - 1), `seq${s} cached`);
      console.log(`smolvlm cached prefix (${hit} tokens): max abs logprob error ${w.toExponential(2)}`);
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
      console.log(`smolvlm decode rows: max abs logprob error ${w.toExponential(2)}`);
    });

    test('chat: image parts rendered by the model\'s template as <image>, expanded into tiles; usage counts every tile\'s tokens', async () => {
      const s = cases.sequences.findIndex((q) => q.source_images.length === 2);
      const seq = cases.sequences[s]!;
      // the user message's parts in the prompt's order: text between the <image> placeholders
      const body = seq.prompt.slice(seq.prompt.indexOf('User:') + 'User:'.length, seq.prompt.indexOf('<end_of_utterance>'));
      const content: unknown[] = [];
      body.split(cases.image_placeholder).forEach((text, i, all) => {
        if (text !== '') content.push({ type: 'text', text });
        if (i < all.length - 1) content.push({ type: 'image_url', image_url: { url: dataUrl(seq.source_images[i]!) } });
      });
      const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content }], max_tokens: 1, temperature: 0, logprobs: true, top_logprobs: 1 });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.usage.prompt_tokens, seq.ids.length, 'the template renders the fixture\'s prompt; every tile counted');
      const last = row(`base/seq${s}`, seq.ids.length - 1);
      const top = r.json.choices[0].logprobs.content[0].logprob as number;
      assert.ok(Math.abs(top - Math.max(...last)) <= TOL, `first token logprob ${top}, transformers' best ${Math.max(...last)}`);
    });

    test('/tokenize and /chat_tokenize with image parts: the fixture\'s ids, every tile expanded', async () => {
      for (const seq of cases.sequences.filter((q) => q.source_images.length > 0)) {
        const body = seq.prompt.slice(seq.prompt.indexOf('User:') + 'User:'.length, seq.prompt.indexOf('<end_of_utterance>'));
        const content: unknown[] = [];
        body.split(cases.image_placeholder).forEach((text, i, all) => {
          if (text !== '') content.push({ type: 'text', text });
          if (i < all.length - 1) content.push({ type: 'image_url', image_url: { url: dataUrl(seq.source_images[i]!) } });
        });
        const messages = [{ role: 'user', content }];
        const v = await post('/tokenize', { messages });
        assert.equal(v.status, 200, v.text);
        assert.deepEqual(v.json.tokens, seq.ids, 'SmolVLMProcessor\'s tokens, every tile');
        assert.equal(v.json.count, seq.ids.length);
        const t = await post('/chat_tokenize', { messages });
        assert.equal(t.status, 200, t.text);
        assert.equal(t.json.templated_text, seq.prompt);
        assert.deepEqual(t.json.tokenize_response.map((x: { id: number }) => x.id), seq.ids);
      }
    });

    test('--max-images-per-prompt counts images, not tiles; the length limit counts every tile', async () => {
      // two images of 3 + 5 tiles (8 tiles) pass a limit of 2 images (above); three images do not
      const three = await post('/generate', { inputs: `![](${dataUrl('big')})![](${dataUrl('big')})![](${dataUrl('wide')})x`, parameters: { max_new_tokens: 1 } });
      assert.equal(three.status, 422, three.text);
      assert.match(three.json.error, /3 images; at most 2 per prompt/);
      // a 5-tile image's expansion, in tokens (seq 0: the one image and 29 tokens of text around it), counted twice
      const seq0 = cases.sequences.find((q) => q.source_images.length === 1 && q.source_images[0] === 'big')!;
      const bigTokens = seq0.ids.length - (seq0.prompt.replace(cases.image_placeholder, '').length - ['<|im_start|>', '<end_of_utterance>'].join('').length + 2);
      assert.equal(bigTokens, 4 * (2 + cases.tokens_per_image) + 2 + 1 + (3 + cases.tokens_per_image), '4 tiles, 2 row newlines, "\n", the global image');
      const long = await post('/generate', { inputs: `![](${dataUrl('big')})![](${dataUrl('big')})${'y'.repeat(201 - 2 * bigTokens)}`, parameters: { max_new_tokens: 1 } });
      assert.equal(long.status, 422, long.text);
      assert.equal(long.json.error, `Input validation error: \`inputs\` must have less than 200 tokens. Given: 201`);
      const fits = await post('/generate', { inputs: `![](${dataUrl('big')})![](${dataUrl('big')})${'y'.repeat(200 - 2 * bigTokens)}`,
        parameters: { max_new_tokens: 1, details: true, decoder_input_details: true } });
      assert.equal(fits.status, 200, fits.text);
      assert.equal(fits.json.details.prefill.length, 200, 'every tile\'s tokens in the prompt');
    });

    test('a placeholder without its image, or <image> written in the text beside an image, are 422s', async () => {
      const bare = await post('/generate', { inputs: `x${cases.image_placeholder}y`, parameters: { max_new_tokens: 1 } });
      assert.equal(bare.status, 422, bare.text);
      assert.match(bare.json.error, /^the prompt has 1 image placeholder \(<image>\) for 0 images/);
      const extra = await post('/generate', { inputs: `![](${dataUrl('wide')})<image>`, parameters: { max_new_tokens: 1 } });
      assert.equal(extra.status, 422, extra.text);
      assert.match(extra.json.error, /^the prompt has 2 image placeholders \(<image>\) for 1 image/);
    });
  });
}
