// Images end to end: `weft launch` (real nats-server, shard processes) over the tiny LLaVA models of
// test/fixtures/llava (made by test/fixtures/golden/make_llava.py: LlavaForConditionalGeneration, a CLIP tower, Llama or
// Qwen2 text, a CLIPImageProcessor, PNG images, transformers' logits). A prompt with its images sent as TGI markdown
// images — data: URLs and http URLs from a local server — gives the tokens transformers' processor gives (each
// <image> expanded) and prefill log-probs equal to the golden logits' log-softmax, for the base model and each
// adapter (LoRA in the language model, the tower and the projector). Also: the chat route renders image parts with the
// model's template; one image's K/V is never served to another image's prompt (prefix caching); the same image and
// text do share it; more images than --max-images-per-prompt is a 422.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { decodeRgb, parsePreprocessorConfig, preprocessImage } from '../../coordinator/vision/index.js';
import { LLAVA_ROOT } from '../helpers/vlm.js';
import { adapterNames, expect422, goldenPrefix, matchPrefill, useVisionServer, visionFixture } from '../helpers/vision-server.js';

interface Sequence { ids: number[]; images: string[]; prompt: string }
interface Cases { sequences: Sequence[]; image_token_id: number; tokens_per_image: number; adapters: { name: string; dir: string }[] }
const CASE_NAMES = existsSync(LLAVA_ROOT) ? ['llava', 'llava_qwen2_multi'].filter((n) => existsSync(join(LLAVA_ROOT, n, 'cases.json'))) : [];

if (CASE_NAMES.length === 0) {
  test('vision end to end', { skip: `no fixture at ${LLAVA_ROOT} (run test/fixtures/golden/make_llava.py)` }, () => {});
}

for (const name of CASE_NAMES) {
  describe(`images end to end: ${name}`, () => {
    // the images are images/<name>.png (pixel values images/<name>.bin); the prompts' placeholder is <image>
    const fx = visionFixture<Cases>(LLAVA_ROOT, name, { png: (_, image) => join('images', `${image}.png`), placeholder: '<image>' });
    const { cases, dir } = fx;
    let web: Server;
    let base = '';
    before(async () => {
      web = createServer((req, res) => {
        const m = /^\/images\/(\w+)\.png$/.exec(req.url ?? '');
        if (m && existsSync(join(dir, 'images', `${m[1]}.png`))) res.writeHead(200, { 'content-type': 'image/png' }).end(fx.png(m[1]!));
        else res.writeHead(404).end();
      });
      await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
    });
    const vs = useVisionServer({ dir, cluster: `v${process.pid}` });
    after(async () => {
      web?.closeAllConnections();
      await new Promise((r) => web?.close(r));
    });

    test('the fixture\'s pixel values are what weft\'s preprocessing gives', async () => {
      const config = parsePreprocessorConfig(fx.preprocessorJson());
      for (const image of new Set(cases.sequences.flatMap((s) => s.images))) {
        const px = preprocessImage(await decodeRgb(fx.png(image), 1e8, image), config);
        assert.deepEqual(px.data, fx.pixelValues(join('images', `${image}.bin`)), `${image}: bit for bit`);
      }
    });

    test('/info and the shards agree on the image token', async () => {
      const info = vs.server.engine.info;
      assert.deepEqual([info.vision?.imageTokenId, info.vision?.tokensPerImage], [cases.image_token_id, cases.tokens_per_image]);
    });

    for (const adapter of adapterNames(cases)) {
      test(`prefill log-probs equal transformers' (${adapter ?? 'base model'}), images as data: and http URLs`, async () => {
        const jobs = cases.sequences.flatMap((seq, s) => [fx.dataUrl, (i: string) => `${base}/images/${i}.png`].map(async (url, u) => {
          const key = `${goldenPrefix(adapter)}/seq${s}`;
          return matchPrefill(fx, await vs.prefill(fx.markdown(seq, url), adapter), seq.ids, key, `${key} (${u === 0 ? 'data:' : 'http'} URLs)`);
        }));
        const worst = Math.max(...await Promise.all(jobs));
        console.log(`${name} ${adapter ?? 'base'}: ${cases.sequences.length} prompts, max abs logprob error ${worst.toExponential(2)}`);
      });
    }

    test('prefix caching: another image\'s prompt with the same text does not reuse the K/V; the same image does', async () => {
      const s = cases.sequences.findIndex((q) => q.images.length === 1);
      const seq = cases.sequences[s]!;
      const other = [...new Set(cases.sequences.flatMap((q) => q.images))].find((i) => i !== seq.images[0])!;
      // the same text with another image first: its blocks are cached…
      await vs.prefill(fx.markdown({ prompt: seq.prompt, images: [other] }), null);
      // …and must not stand in for this image's
      matchPrefill(fx, await vs.prefill(fx.markdown(seq), null), seq.ids, `base/seq${s}`, 'after another image');
      const messages = [{ role: 'user', content: [...fx.imageParts([seq.images[0]!]), { type: 'text', text: 'x' }] }];
      const chat = (await vs.post('/v1/chat/completions', { messages, max_tokens: 1 })).json;
      const again = await vs.post('/v1/chat/completions', { messages, max_tokens: 1 });
      assert.equal(again.status, 200, again.text);
      assert.equal(again.json.usage.prompt_tokens, chat.usage.prompt_tokens);
      assert.ok(again.json.usage.prompt_tokens_details.cached_tokens >= cases.tokens_per_image, 'the same image and text share their blocks');
    });

    test('chat: image parts rendered by the model\'s template, the image token expanded', async () => {
      const seq = cases.sequences.find((q) => q.images.length === 2)!;
      const r = await vs.post('/v1/chat/completions', { messages: [{ role: 'user', content: [
        ...fx.imageParts(seq.images), { type: 'text', text: 'Same?' }] }], max_tokens: 2, temperature: 0 });
      assert.equal(r.status, 200, r.text);
      // The model's template renders 'USER:<image>\n<image>\nSame?ASSISTANT:' (as jinja2 with transformers' trim_blocks and
      // lstrip_blocks renders it; no <s>): one token per byte, each <image> tokens_per_image tokens.
      const rendered = 'USER:<image>\n<image>\nSame?ASSISTANT:';
      assert.equal(r.json.usage.prompt_tokens, rendered.replaceAll('<image>', '').length + 2 * cases.tokens_per_image);
    });

    test('/tokenize and /chat_tokenize with image parts: the ids the chat route runs, each <image> expanded; the same 422s', async () => {
      const seq = cases.sequences.find((q) => q.images.length === 2)!;
      const messages = [{ role: 'user', content: [...fx.imageParts(seq.images), { type: 'text', text: 'Same?' }] }];
      const rendered = 'USER:<image>\n<image>\nSame?ASSISTANT:';
      // the rendered prompt with each <image> written out tokens_per_image times, tokenized as text: the processor's expansion
      const expanded = await vs.post('/tokenize', { prompt: rendered.replaceAll('<image>', '<image>'.repeat(cases.tokens_per_image)), add_special_tokens: false });
      assert.equal(expanded.status, 200, expanded.text);
      const v = await vs.post('/tokenize', { messages, return_token_strs: true });
      assert.equal(v.status, 200, v.text);
      assert.deepEqual(v.json.tokens, expanded.json.tokens, 'each image its tokens_per_image image tokens');
      assert.equal(v.json.tokens.filter((t: number) => t === cases.image_token_id).length, 2 * cases.tokens_per_image);
      assert.deepEqual([v.json.count, v.json.max_model_len, v.json.token_strs.length], [v.json.tokens.length, 256, v.json.tokens.length]);
      const chat = await vs.post('/v1/chat/completions', { messages, max_tokens: 1 });
      assert.equal(chat.status, 200, chat.text);
      assert.equal(v.json.count, chat.json.usage.prompt_tokens, 'the count is what the chat route bills');
      const t = await vs.post('/chat_tokenize', { messages });
      assert.equal(t.status, 200, t.text);
      assert.equal(t.json.templated_text, rendered);
      assert.deepEqual(t.json.tokenize_response.map((x: { id: number }) => x.id), v.json.tokens);
      // an image's tokens span its placeholder in templated_text; the text after it keeps its offsets
      const spans = t.json.tokenize_response as { id: number; text: string; start: number; stop: number }[];
      const imageSpans = [...new Set(spans.filter((x) => x.id === cases.image_token_id).map((x) => rendered.slice(x.start, x.stop) + '@' + x.start))];
      assert.deepEqual(imageSpans, [`<image>@${rendered.indexOf('<image>')}`, `<image>@${rendered.lastIndexOf('<image>')}`]);
      assert.equal(rendered.slice(spans.at(-1)!.start, spans.at(-1)!.stop), ':');
      // the chat route's errors: too many images, an image that is not one (named), a placeholder written as text
      const three = await vs.post('/tokenize', { messages: [{ role: 'user', content: fx.imageParts([0, 1, 2].map(() => seq.images[0]!)) }] });
      assert.equal(three.status, 422, three.text);
      assert.match(three.json.error, /3 images; at most 2 per prompt/);
      const broken = { role: 'user', content: [{ type: 'text', text: 'x' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] };
      const bad = await vs.post('/tokenize', { messages: [broken] });
      assert.equal(bad.status, 422, bad.text);
      assert.match(bad.json.error, /messages\[0\]\.content\[1\]/);
      const badTgi = await vs.post('/chat_tokenize', { messages: [broken] });
      assert.equal(badTgi.status, 422, badTgi.text);
      assert.match(badTgi.json.error.message, /messages\[0\]\.content\[1\]/);
      const bare = await vs.post('/tokenize', { messages: [{ role: 'user', content: 'what is <image>?' }] });
      assert.equal(bare.status, 422, bare.text);
      assert.match(bare.json.error, /^the prompt has 1 image placeholder \(<image>\) for 0 images/);
      assert.equal((await vs.post('/chat_tokenize', { messages: [{ role: 'user', content: 'what is <image>?' }] })).status, 422);
    });

    // The launcher passes the image flags to the engine (EngineLimits.images = imageLimitsOf(config)).
    test('--max-images-per-prompt 2: three images are a 422', async () => {
      await expect422(vs, `![](${fx.dataUrl(cases.sequences[0]!.images[0]!)})`.repeat(3), 'the request has 3 images; at most 2 per prompt (--max-images-per-prompt)');
    });

    test('a placeholder without its image is a 422; nothing is left holding KV blocks', async () => {
      await expect422(vs, 'USER: <image>\nWhat? ASSISTANT:', /^the prompt has 1 image placeholder \(<image>\) for 0 images/);
      assert.equal(vs.server.engine.stats().usedBlocks, 0, 'nothing left holding blocks');
    });
  });
}
