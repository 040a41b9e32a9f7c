// Images through the HTTP routes, on a scripted engine that takes images (its vision info, a LLaVA-style chat template
// rendered for real, and the real image pipeline: fetch, decode, preprocess on workers). A local HTTP server serves
// the http(s) cases: redirects, 404s, slow and oversized answers. What is checked: the parts reach the template as
// {"type": "image"}, each request's images reach the engine preprocessed (transformers' pixel values) and loaded
// once for all its choices, and every way an image can be unusable is a 413 / 422 that names it — never its URL's
// query string (a presigned URL's signature).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { buildHttpServer } from '../../coordinator/http/index.js';
import { Metrics } from '../../coordinator/http/metrics.js';
import type { ChatRender, EngineInfo, RenderMessage } from '../../coordinator/engine/types.js';
import { templateMessages } from '../../coordinator/engine/engine-vision.js';
import { renderChat, templateIteratesContent } from '../../coordinator/tokenizer/index.js';
import { ImageProcessor, MAX_REDIRECTS, type ImageInput, type ImageLimits, type PreparedImage } from '../../coordinator/vision/index.js';
import { INFO, ScriptedEngine, post } from './http-engine-double.test.js';

const IMAGES = join(import.meta.dirname, '../../../test/fixtures/images');
const FIX = JSON.parse(readFileSync(join(IMAGES, 'expected.json'), 'utf8')) as {
  configs: Record<string, unknown>; cases: { image: string; config: string; sha256: string }[] };
const PNG = readFileSync(join(IMAGES, 'rgb_53x41.png'));
const JPG = readFileSync(join(IMAGES, 'photo_64x48.jpg'));
const dataUrl = (bytes: Buffer, type = 'image/png') => `data:${type};base64,${bytes.toString('base64')}`;
const sha = (img: PreparedImage) => createHash('sha256').update(new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength)).digest('hex');
const expected = (image: string) => FIX.cases.find((c) => c.image === image && c.config === 'clip32')!.sha256;

// LLaVA-1.5's template (llava-hf), without its {% generation %} tags: images first, then the text.
const LLAVA_TEMPLATE = "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}" +
  "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}" +
  "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";

class VisionEngine extends ScriptedEngine {
  override readonly info: EngineInfo = { ...INFO, vision: { imageToken: '<image>', imagePlaceholder: '<image>', imageTokenId: 999, tokensPerImage: 4, imageSize: 32, maxImagesPerPrompt: 2 } };
  loads = 0;
  constructor(private readonly processor: ImageProcessor) {
    super();
  }
  override renderChat(messages: RenderMessage[], how?: ChatRender): string {
    this.lastRender = how;
    return renderChat(LLAVA_TEMPLATE, templateMessages(messages, templateIteratesContent(LLAVA_TEMPLATE)), { addGenerationPrompt: true });
  }
  prepareImages(inputs: readonly ImageInput[], signal?: AbortSignal): Promise<PreparedImage[]> {
    this.loads++;
    return this.processor.load(inputs, signal);
  }
}

describe('images through the HTTP routes', () => {
  let app: Awaited<ReturnType<typeof buildHttpServer>>;
  let engine: VisionEngine;
  let processor: ImageProcessor;
  let web: Server;
  let base = '';
  const limits: ImageLimits = { maxImagesPerPrompt: 2, maxImageBytes: 100_000, maxImagePixels: 1_000_000, fetchTimeoutMs: 400,
    allowedLocalMediaPath: null, allowedMediaDomains: [] };
  const media = mkdtempSync(join(tmpdir(), 'weft-media-'));
  mkdirSync(join(media, 'allowed'));
  writeFileSync(join(media, 'allowed', 'a.png'), PNG);
  writeFileSync(join(media, 'outside.png'), PNG);

  before(async () => {
    const modelDir = mkdtempSync(join(tmpdir(), 'weft-vision-'));
    writeFileSync(join(modelDir, 'preprocessor_config.json'), JSON.stringify(FIX.configs.clip32));
    processor = ImageProcessor.create(modelDir, limits, 2);
    engine = new VisionEngine(processor);
    app = await buildHttpServer(engine, { logger: pino({ level: 'silent' }), metrics: new Metrics() });
    web = createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      const hop = Number(url.searchParams.get('hop') ?? 0);
      switch (url.pathname) {
        case '/a.png': res.writeHead(200, { 'content-type': 'image/png' }).end(PNG); return;
        case '/photo.jpg': res.writeHead(200, { 'content-type': 'image/jpeg' }).end(JPG); return;
        case '/redirect': res.writeHead(302, { location: hop >= Number(url.searchParams.get('to')) ? '/a.png' : `/redirect?hop=${hop + 1}&to=${url.searchParams.get('to')}` }).end(); return;
        case '/slow': setTimeout(() => res.writeHead(200).end(PNG), 2000); return;
        case '/big': res.writeHead(200, { 'content-length': '200000' }).end(Buffer.alloc(200_000)); return;
        case '/big-chunked': res.writeHead(200); res.write(Buffer.alloc(60_000)); res.end(Buffer.alloc(60_000)); return;
        case '/text': res.writeHead(200, { 'content-type': 'text/plain' }).end('not an image'); return;
        default: res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
  });
  after(async () => {
    await app.close();
    await processor.close();
    web.closeAllConnections();
    await new Promise((r) => web.close(r));
  });

  const chatWith = (...parts: unknown[]) => ({ messages: [{ role: 'user', content: [...parts, { type: 'text', text: 'what is this?' }] }], max_tokens: 2 });
  const image = (url: unknown) => ({ type: 'image_url', image_url: { url } });
  const last = () => engine.requests.at(-1)!;
  const errorOf = (res: { json(): unknown }) => (res.json() as { error: { message: string } }).error.message;

  test('a data: URL image reaches the engine preprocessed, its placeholder rendered by the template', async () => {
    const res = await post(app, '/v1/chat/completions', chatWith(image(dataUrl(PNG))));
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(last().inputs, 'USER: <image>\nwhat is this? ASSISTANT:');
    assert.equal(last().templated, true);
    assert.equal(last().images!.length, 1);
    assert.equal(sha(last().images![0]!), expected('rgb_53x41.png'), 'transformers\' pixel values');
    assert.match(last().images![0]!.key, /^sha256:/);
  });

  test('the {"image_url": "<url>"} shorthand, an http URL, a JPEG: two images, in order; n=2 loads them once', async () => {
    const before = engine.loads;
    const res = await post(app, '/v1/chat/completions', { ...chatWith({ type: 'image_url', image_url: `${base}/photo.jpg` }, image(`${base}/a.png`)), n: 2 });
    assert.equal(res.statusCode, 200, res.body);
    const [a, b] = engine.requests.slice(-2);
    assert.equal(a!.inputs, 'USER: <image>\n<image>\nwhat is this? ASSISTANT:');
    assert.deepEqual(a!.images!.map(sha), [expected('photo_64x48.jpg'), expected('rgb_53x41.png')]);
    assert.equal(a!.images, b!.images, 'one load for both choices');
    assert.equal(engine.loads, before + 1);
  });

  test('the same image twice has one key; a text-only message of the same chat becomes a text part', async () => {
    const res = await post(app, '/v1/chat/completions', { messages: [{ role: 'system', content: 'Be brief.' },
      { role: 'user', content: [image(dataUrl(PNG)), image(`${base}/a.png`)] }], max_tokens: 2 });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(last().inputs, 'Be brief. USER: <image>\n<image>\nASSISTANT:');
    assert.equal(last().images![0]!.key, last().images![1]!.key);
  });

  test(`redirects are followed up to ${MAX_REDIRECTS}, not beyond`, async () => {
    assert.equal((await post(app, '/v1/chat/completions', chatWith(image(`${base}/redirect?to=${MAX_REDIRECTS - 1}`)))).statusCode, 200);
    const res = await post(app, '/v1/chat/completions', chatWith(image(`${base}/redirect?to=9`)));
    assert.equal(res.statusCode, 422);
    assert.match(errorOf(res), new RegExp(`^image messages\\[0\\]\\.content\\[0\\] \\(http://127\\.0\\.0\\.1:\\d+/redirect\\): more than ${MAX_REDIRECTS} redirects$`));
  });

  test('fetch failures are 422s naming the image and its URL without the query string', async () => {
    const res = await post(app, '/v1/chat/completions', chatWith(image(`${base}/missing.png?X-Amz-Signature=SECRET123`)));
    assert.equal(res.statusCode, 422);
    assert.match(errorOf(res), /^image messages\[0\]\.content\[0\] could not be fetched from http:\/\/127\.0\.0\.1:\d+\/missing\.png: HTTP 404$/);
    assert.ok(!res.body.includes('SECRET123'));
    const slow = await post(app, '/v1/chat/completions', chatWith(image(`${base}/slow`)));
    assert.equal(slow.statusCode, 422);
    assert.match(errorOf(slow), /no complete answer within 400 ms \(--image-fetch-timeout-ms\)/);
    const text = await post(app, '/v1/chat/completions', chatWith(image(`${base}/text`)));
    assert.equal(text.statusCode, 422);
    assert.equal(errorOf(text), 'image messages[0].content[0] is not a PNG, JPEG, GIF or WebP image');
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const refused = await post(app, '/v1/chat/completions', chatWith(image(`http://127.0.0.1:${port}/x.png`)));
    assert.equal(refused.statusCode, 422);
    assert.match(errorOf(refused), new RegExp(`could not be fetched from http://127\\.0\\.0\\.1:${port}/x\\.png: connect ECONNREFUSED`));
  });

  test('too large: by Content-Length, by the bytes that came, as a data: URL, in pixels — 413s', async () => {
    for (const path of ['/big', '/big-chunked']) {
      const res = await post(app, '/v1/chat/completions', chatWith(image(`${base}${path}`)));
      assert.equal(res.statusCode, 413, path);
      assert.match(errorOf(res), /over the server's limit of 100000 .*--max-image-bytes/);
    }
    const big = await post(app, '/v1/chat/completions', chatWith(image(dataUrl(Buffer.alloc(150_000)))));
    assert.equal(big.statusCode, 413);
    limits.maxImagePixels = 2000;
    try {
      const res = await post(app, '/v1/chat/completions', chatWith(image(dataUrl(PNG))));
      assert.equal(res.statusCode, 413);
      assert.equal(errorOf(res), 'image messages[0].content[0] is 53 x 41 = 2173 pixels, over the server\'s limit of 2000 (--max-image-pixels); send a smaller image');
    } finally {
      limits.maxImagePixels = 1_000_000;
    }
  });

  test('more images than --max-images-per-prompt: 422', async () => {
    const res = await post(app, '/v1/chat/completions', chatWith(image(dataUrl(PNG)), image(dataUrl(PNG)), image(dataUrl(PNG))));
    assert.equal(res.statusCode, 422);
    assert.equal(errorOf(res), 'the request has 3 images; at most 2 per prompt (--max-images-per-prompt)');
  });

  test('bad URLs: scheme, data: URL shape, file:// without and with --allowed-local-media-path', async () => {
    const cases: [string, RegExp][] = [
      ['ftp://host/a.png', /URL scheme ftp: is not supported/],
      ['data:text/plain;base64,aGk=', /the data URL's media type text\/plain is not an image/],
      ['data:image/png,rawbytes', /a data URL must be data:image\/<type>;base64,<data>/],
      ['data:image/png;base64,@@@', /not valid base64/],
      ['not a url', /the URL is not valid/],
      [`file://${join(media, 'allowed', 'a.png')}`, /file:\/\/ URLs are refused: the server reads local files only under --allowed-local-media-path/],
    ];
    for (const [url, message] of cases) {
      const res = await post(app, '/v1/chat/completions', chatWith(image(url)));
      assert.equal(res.statusCode, 422, url);
      assert.match(errorOf(res), message, url);
    }
    limits.allowedLocalMediaPath = join(media, 'allowed');
    try {
      assert.equal((await post(app, '/v1/chat/completions', chatWith(image(`file://${join(media, 'allowed', 'a.png')}`)))).statusCode, 200);
      for (const path of [join(media, 'outside.png'), `${join(media, 'allowed')}/../outside.png`, join(media, 'allowed', 'none.png')]) {
        const res = await post(app, '/v1/chat/completions', chatWith(image(`file://${path}`)));
        assert.equal(res.statusCode, 422, path);
        assert.match(errorOf(res), /is not a readable file under --allowed-local-media-path/);
      }
    } finally {
      limits.allowedLocalMediaPath = null;
    }
  });

  test('--allowed-media-domains: other hosts are refused', async () => {
    (limits as unknown as { allowedMediaDomains: string[] }).allowedMediaDomains = ['example.com'];
    try {
      const res = await post(app, '/v1/chat/completions', chatWith(image(`${base}/a.png`)));
      assert.equal(res.statusCode, 422);
      assert.equal(errorOf(res), 'image messages[0].content[0]: host 127.0.0.1 is not in --allowed-media-domains');
    } finally {
      (limits as unknown as { allowedMediaDomains: string[] }).allowedMediaDomains = [];
    }
  });

  test('TGI /generate: markdown images become placeholders; return_full_text gives the inputs as sent', async () => {
    const inputs = `![](${base}/a.png)What is this?`;
    const res = await post(app, '/generate', { inputs, parameters: { max_new_tokens: 2, return_full_text: true } });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(last().inputs, '<image>What is this?');
    assert.equal(sha(last().images![0]!), expected('rgb_53x41.png'));
    assert.ok((res.json() as { generated_text: string }).generated_text.startsWith(inputs));
    const bad = await post(app, '/generate', { inputs: '![](ftp://x/y.png) hi', parameters: { max_new_tokens: 2 } });
    assert.equal(bad.statusCode, 422);
    assert.match((bad.json() as { error: string }).error, /^image inputs \(markdown image 1\): URL scheme ftp: is not supported/);
    // alt text: not TGI's image pattern, so text
    assert.equal((await post(app, '/generate', { inputs: '![a cat](x) hi', parameters: { max_new_tokens: 2 } })).statusCode, 200);
    assert.equal(last().images, undefined);
  });

  test('TGI /generate for a Qwen2-VL-style model: each markdown image becomes the template\'s image sequence (as TGI writes it)', async () => {
    const vision = engine.info.vision!;
    const info = engine.info as { vision?: EngineInfo['vision'] };
    info.vision = { ...vision, imageToken: '<|image_pad|>', imagePlaceholder: '<|vision_start|><|image_pad|><|vision_end|>', tokensPerImage: undefined,
      imageSize: undefined, patchSize: 14, mergeSize: 2 } as EngineInfo['vision'];
    try {
      const res = await post(app, '/generate', { inputs: `![](${dataUrl(PNG)})A ![](${dataUrl(JPG, 'image/jpeg')})B`, parameters: { max_new_tokens: 2 } });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(last().inputs, '<|vision_start|><|image_pad|><|vision_end|>A <|vision_start|><|image_pad|><|vision_end|>B');
      assert.deepEqual(last().images!.map(sha), [expected('rgb_53x41.png'), expected('photo_64x48.jpg')]);
    } finally {
      info.vision = vision;
    }
  });

  test('Responses API: input_image parts; file_id is refused', async () => {
    const res = await post(app, '/v1/responses', { input: [{ role: 'user', content: [{ type: 'input_image', image_url: dataUrl(PNG) },
      { type: 'input_text', text: 'what is this?' }] }], max_output_tokens: 2, store: false });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(last().inputs, 'USER: <image>\nwhat is this? ASSISTANT:');
    assert.equal(last().images!.length, 1);
    const refused = await post(app, '/v1/responses', { input: [{ role: 'user', content: [{ type: 'input_image', file_id: 'file-1' }] }], store: false });
    assert.equal(refused.statusCode, 422);
    assert.match(errorOf(refused), /file_id` is not supported: weft has no Files API; send the image as `image_url`/);
  });
});
