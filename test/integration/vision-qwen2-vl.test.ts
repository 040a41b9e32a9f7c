// Dynamic-resolution images end to end: `weft launch` (real nats-server, shard processes) over the tiny Qwen2-VL and
// Qwen2.5-VL models of test/fixtures/vlm (made by test/fixtures/golden/make_qwen2_vl.py: a byte-level tokenizer with
// Qwen's vision tokens, the slow Qwen2VLImageProcessor's preprocessor_config.json, PNG images of three sizes — one
// resized by smart_resize —, transformers + PEFT logits). A prompt sent with TGI markdown images gives the tokens
// transformers' Qwen2VLProcessor gives (each <|image_pad|> repeated by its own image's grid: 12, 4 and 24 tokens),
// and prefill log-probs equal to the golden logits' log-softmax for the base model and each adapter (language model
// only; language model + vision tower + merger) — one prompt holding two images of different sizes. Also: the text
// after the images (the golden "decode" rows, sent as prompt text: multimodal RoPE's positions after an image; the
// decode steps themselves are test/conformance's, which can force tokens — over HTTP a forced token's log-prob is the
// constrained one), the chat route rendering image parts with the model's template, and the coordinator's side of the
// fixture (pixel values, token counts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, type Launched } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';
import { SafetensorsFile } from '../../shard/formats/index.js';
import { decodeRgb, parsePreprocessorConfig, preprocessImage, qwen2VLTokens } from '../../coordinator/vision/index.js';
import { refLogSoftmax } from '../helpers/reference-ops.js';

const ROOT = join(import.meta.dirname, '../../../test/fixtures/vlm');
interface Sequence { ids: number[]; images: string[]; prompt: string; image_tokens: number[]; decode: number[] }
interface ImageInfo { png: string; pixel_values: string; height: number; width: number; image_grid_thw: number[]; tokens: number }
interface Cases {
  sequences: Sequence[]; image_token_id: number; patch_size: number; merge_size: number; image_placeholder: string;
  adapters: { name: string; dir: string }[]; images: Record<string, ImageInfo>;
}
const TOL = 1e-4;
const CASE_NAMES = ['qwen2_vl', 'qwen2_5_vl'].filter((n) => existsSync(join(ROOT, n, 'cases.json')));

if (CASE_NAMES.length === 0) {
  test('Qwen2-VL images end to end', { skip: `no fixture at ${ROOT} (run test/fixtures/golden/make_qwen2_vl.py)` }, () => {});
}

for (const name of CASE_NAMES) {
  describe(`dynamic-resolution images end to end: ${name}`, () => {
    const dir = join(ROOT, name);
    const cases = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as Cases;
    const golden = SafetensorsFile.open(join(dir, 'golden.safetensors'));
    const logits = (key: string) => ({ data: golden.readF32(key), vocab: golden.info(key).shape.at(-1)! });
    const png = (image: string) => readFileSync(join(dir, cases.images[image]!.png));
    const dataUrl = (image: string) => `data:image/png;base64,${png(image).toString('base64')}`;
    /** The prompt as TGI markdown images: each image placeholder in turn becomes ![](data: URL of the next image). */
    const markdown = (seq: Sequence) => {
      let i = 0;
      return seq.prompt.replaceAll(cases.image_placeholder, () => `![](${dataUrl(seq.images[i++]!)})`);
    };
    let server: Launched;
    const post = async (path: string, body: unknown) => {
      const res = await fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await res.text();
      let json: any = null;
      try { json = JSON.parse(text); } catch { /* not JSON */ }
      return { status: res.status, json, text };
    };
    /** /generate's prefill for `inputs`: its tokens, and the log-probs against `rows` (golden logits, row r predicting
     * token first + r + 1), the worst difference. */
    const prefill = async (inputs: string, adapter: string | null) => {
      const r = await post('/generate', { inputs, parameters: { max_new_tokens: 1, details: true, decoder_input_details: true,
        ...(adapter ? { adapter_id: adapter, adapter_source: 'local' } : {}) } });
      assert.equal(r.status, 200, r.text);
      return r.json.details.prefill as { id: number; logprob: number | null }[];
    };
    const worst = (got: { id: number; logprob: number | null }[], first: number, rows: { data: Float32Array; vocab: number }, n: number, label: string) => {
      let w = 0;
      for (let r = 0; r < n; r++) {
        const pos = first + r + 1;
        const ref = refLogSoftmax(rows.data.subarray(r * rows.vocab, (r + 1) * rows.vocab))[got[pos]!.id]!;
        const err = Math.abs(got[pos]!.logprob! - ref);
        assert.ok(err <= TOL, `${label} position ${pos}: logprob ${got[pos]!.logprob}, transformers ${ref}`);
        w = Math.max(w, err);
      }
      return w;
    };

    before(async () => {
      const flags = ['--model-id', join(dir, 'model'), '--port', '0', '--hostname', '127.0.0.1', '--cluster', `q${process.pid}`,
        '--max-input-length', '200', '--max-total-tokens', '256', '--max-batch-prefill-tokens', '512', '--block-size', '4',
        '--adapter-root', join(dir, 'adapters'), '--max-adapter-slots', '4', '--log-level', 'silent',
        '--shard-heartbeat-ms', '200', '--shard-timeout-ms', '5000', '--step-timeout-ms', '30000', '--max-images-per-prompt', '2'];
      server = await launch(parseArgs('launch', flags, {}), { cacheDir: mkdtempSync(join(tmpdir(), 'weft-cache-')) });
    });
    after(async () => {
      await server?.close();
    });

    test('the fixture\'s pixel values and token counts are what weft\'s preprocessing gives', async () => {
      const config = parsePreprocessorConfig(JSON.parse(readFileSync(join(dir, 'model', 'preprocessor_config.json'), 'utf8')));
      assert.ok(config.kind === 'qwen2_vl');
      for (const [image, info] of Object.entries(cases.images)) {
        const px = preprocessImage(await decodeRgb(png(image), 1e8, image), config);
        assert.deepEqual([px.height, px.width], [info.height, info.width], `${image}: smart_resize`);
        assert.deepEqual([1, px.height / config.patchSize, px.width / config.patchSize], info.image_grid_thw, `${image}: grid`);
        assert.equal(qwen2VLTokens(px.height, px.width, config.patchSize, config.mergeSize), info.tokens, `${image}: tokens`);
        const want = new Float32Array(new Uint8Array(readFileSync(join(dir, info.pixel_values))).buffer);
        assert.deepEqual(px.data, want, `${image}: bit for bit`);
      }
    });

    test('the engine and the shards agree on the tower; markdown images become the template\'s image sequence', () => {
      const v = server.engine.info.vision;
      assert.deepEqual([v?.imageTokenId, v?.patchSize, v?.mergeSize, v?.tokensPerImage, v?.imagePlaceholder],
        [cases.image_token_id, cases.patch_size, cases.merge_size, undefined, cases.image_placeholder]);
    });

    for (const adapter of [null, ...cases.adapters.map((a) => a.name)]) {
      test(`prefill log-probs equal transformers' (${adapter ?? 'base model'}), each image its own token count`, async () => {
        const prefix = adapter ? `adapter/${adapter}` : 'base';
        assert.ok(cases.sequences.some((s) => new Set(s.image_tokens).size > 1), 'one prompt has two images of different sizes');
        const errs = await Promise.all(cases.sequences.map(async (seq, s) => {
          const got = await prefill(markdown(seq), adapter);
          assert.deepEqual(got.map((p) => p.id), seq.ids, `${prefix}/seq${s}: the tokens transformers' processor gives`);
          return worst(got, 0, logits(`${prefix}/seq${s}`), seq.ids.length - 1, `${prefix}/seq${s}`);
        }));
        console.log(`${name} ${adapter ?? 'base'}: ${cases.sequences.length} prompts, max abs logprob error ${Math.max(...errs).toExponential(2)}`);
      });
    }

    test('text after the images: the golden decode rows (multimodal RoPE positions past the images)', async () => {
      let w = 0;
      for (const [s, seq] of cases.sequences.entries()) {
        if (seq.decode.length === 0) continue;
        // the decode tokens are bytes (ASCII): appended as text, they are the same tokens
        const got = await prefill(markdown(seq) + String.fromCharCode(...seq.decode), null);
        assert.deepEqual(got.map((p) => p.id), [...seq.ids, ...seq.decode]);
        w = Math.max(w, worst(got, seq.ids.length - 1, logits(`base/seq${s}/decode`), seq.decode.length, `base/seq${s}/decode`));
      }
      console.log(`${name} decode rows: max abs logprob error ${w.toExponential(2)}`);
    });

    test('chat: image parts rendered by the model\'s template, each image expanded to its own count', async () => {
      const s = cases.sequences.findIndex((q) => q.images.length === 2);
      const seq = cases.sequences[s]!;
      const text = seq.prompt.split(cases.image_placeholder).at(-1)!.split('<|im_end|>')[0]!;
      const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: [
        ...seq.images.map((i) => ({ type: 'image_url', image_url: { url: dataUrl(i) } })), { type: 'text', text }] }], max_tokens: 1, temperature: 0,
      logprobs: true, top_logprobs: 1 });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.usage.prompt_tokens, seq.ids.length, 'the template renders the fixture\'s prompt');
      // the first answer token is the greedy one of transformers' last prompt row
      const last = logits(`base/seq${s}`);
      const row = refLogSoftmax(last.data.subarray((seq.ids.length - 1) * last.vocab, seq.ids.length * last.vocab));
      const top = r.json.choices[0].logprobs.content[0].logprob as number;
      assert.ok(Math.abs(top - Math.max(...row)) <= TOL, `first token logprob ${top}, transformers' best ${Math.max(...row)}`);
    });

    test('/tokenize and /chat_tokenize with image parts: the fixture\'s ids, each image expanded to its own count', async () => {
      for (const seq of cases.sequences.filter((q) => q.images.length > 0)) {
        const text = seq.prompt.split(cases.image_placeholder).at(-1)!.split('<|im_end|>')[0]!;
        const messages = [{ role: 'user', content: [...seq.images.map((i) => ({ type: 'image_url', image_url: { url: dataUrl(i) } })), { type: 'text', text }] }];
        const v = await post('/tokenize', { messages });
        assert.equal(v.status, 200, v.text);
        assert.deepEqual(v.json.tokens, seq.ids, 'the tokens transformers\' processor gives');
        assert.deepEqual([v.json.count, v.json.max_model_len], [seq.ids.length, 256]);
        const t = await post('/chat_tokenize', { messages });
        assert.equal(t.status, 200, t.text);
        assert.equal(t.json.templated_text, seq.prompt);
        assert.deepEqual(t.json.tokenize_response.map((x: { id: number }) => x.id), seq.ids);
        const pads = (t.json.tokenize_response as { id: number; start: number; stop: number }[]).filter((x) => x.id === cases.image_token_id);
        assert.ok(pads.every((x) => seq.prompt.slice(x.start, x.stop) === '<|image_pad|>'), 'each image\'s tokens span its placeholder');
      }
      // swapped: each image still its own count
      const seq = cases.sequences.find((q) => q.images.length === 2)!;
      const swapped = await post('/tokenize', { messages: [{ role: 'user', content: [...seq.images].reverse().map((i) => ({ type: 'image_url', image_url: { url: dataUrl(i) } })) }] });
      assert.equal(swapped.status, 200, swapped.text);
      const ids = swapped.json.tokens as number[];
      const first = ids.indexOf(cases.image_token_id);
      let n = 0;
      while (ids[first + n] === cases.image_token_id) n++;
      assert.equal(n, seq.image_tokens.at(-1), 'the first image takes its own count');
    });

    test('a placeholder without its image, or images swapped in size order, are told apart', async () => {
      const bare = await post('/generate', { inputs: `x${cases.image_placeholder}y`, parameters: { max_new_tokens: 1 } });
      assert.equal(bare.status, 422, bare.text);
      assert.match(bare.json.error, /^the prompt has 1 image placeholder \(<\|image_pad\|>\) for 0 images/);
      // the same two images in the other order: each still takes its own count
      const seq = cases.sequences.find((q) => q.images.length === 2)!;
      const swapped = { ...seq, images: [...seq.images].reverse() };
      const got = await prefill(markdown(swapped), null);
      const pad = got.filter((p) => p.id === cases.image_token_id).length;
      assert.equal(pad, seq.image_tokens.reduce((a, b) => a + b, 0));
      const firstRun = got.findIndex((p) => p.id === cases.image_token_id);
      let n = 0;
      while (got[firstRun + n]?.id === cases.image_token_id) n++;
      assert.equal(n, seq.image_tokens.at(-1), 'the first placeholder takes the first image\'s count');
    });
  });
}
