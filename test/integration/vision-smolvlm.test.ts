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
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { decodeRgb, parsePreprocessorConfig, preprocessTiles } from '../../coordinator/vision/index.js';
import { tiledSequence } from '../../coordinator/engine/prompt-images.js';
import { VLM_ROOT } from '../helpers/vlm.js';
import { adapterNames, allDecodeRows, chatFirstToken, checkTop, expect422, goldenPrefix, matchPrefill, tokenizeRoutes, useVisionServer,
  visionFixture } from '../helpers/vision-server.js';

const DIR = join(VLM_ROOT, 'smolvlm');
interface Sequence { ids: number[]; source_images: string[]; images: string[]; prompt: string; expanded: string; image_starts: number[]; decode: number[] }
interface TileInfo { pixel_values: string; height: number; width: number; tokens: number; source: string; tile: number }
interface PngInfo { png: string; png_size: [number, number]; rows: number; cols: number; tiles: string[]; expansion: string }
interface Cases {
  sequences: Sequence[]; image_token_id: number; fake_token_id: number; global_image_token_id: number; tokens_per_image: number; image_size: number;
  image_placeholder: string; adapters: { name: string; dir: string }[]; images: Record<string, TileInfo>; pngs: Record<string, PngInfo>;
}
const PREFILL_BUDGET = 8;
const BLOCK = 8;
const TOP_N = 4;

if (!existsSync(join(DIR, 'cases.json'))) {
  test('SmolVLM images end to end', { skip: `no fixture at ${DIR} (the shard side's SmolVLM fixture script)` }, () => {});
} else {
  describe('SmolVLM images end to end', () => {
    // the PNGs are cases.json's pngs; a sequence's images are its tiles, its source_images the PNGs it was sent with
    const fx = visionFixture<Cases>(VLM_ROOT, 'smolvlm', { png: (cases, name) => cases.pngs[name]!.png });
    const { cases } = fx;
    /** The prompt as TGI markdown images: each image placeholder (<image>) in turn becomes ![](data: URL). */
    const markdown = (seq: Pick<Sequence, 'prompt' | 'source_images'>) => fx.markdown({ prompt: seq.prompt, images: seq.source_images });
    /** The positions where each tile's run of image tokens starts in `ids`. */
    const runStarts = (ids: readonly number[]) => ids.flatMap((t, i) => (t === cases.image_token_id && ids[i - 1] !== cases.image_token_id ? [i] : []));
    /** The user message's parts in the prompt's order: text between the <image> placeholders. */
    const userContent = (seq: Sequence) => {
      const body = seq.prompt.slice(seq.prompt.indexOf('User:') + 'User:'.length, seq.prompt.indexOf('<end_of_utterance>'));
      const content: unknown[] = [];
      body.split(cases.image_placeholder).forEach((text, i, all) => {
        if (text !== '') content.push({ type: 'text', text });
        if (i < all.length - 1) content.push({ type: 'image_url', image_url: { url: fx.dataUrl(seq.source_images[i]!) } });
      });
      return content;
    };
    const vs = useVisionServer({ dir: DIR, cluster: `s${process.pid}`, prefillBudget: PREFILL_BUDGET, block: BLOCK, watchSteps: true });

    test('the fixture\'s tiles are what weft\'s SmolVLMImageProcessor gives, in order; the expansion is SmolVLMProcessor\'s', async () => {
      const config = parsePreprocessorConfig(fx.preprocessorJson());
      assert.ok(config.kind === 'idefics3');
      for (const [name, info] of Object.entries(cases.pngs)) {
        const px = preprocessTiles(await decodeRgb(fx.png(name), 1e8, name), config);
        assert.deepEqual([px.rows, px.cols, px.tiles.length], [info.rows, info.cols, info.tiles.length], `${name}: rows, cols, tiles`);
        info.tiles.forEach((tile, i) => {
          const t = cases.images[tile]!;
          assert.deepEqual([px.tiles[i]!.height, px.tiles[i]!.width], [t.height, t.width], `${tile}: size`);
          assert.deepEqual(px.tiles[i]!.data, fx.pixelValues(t.pixel_values), `${tile}: bit for bit`);
        });
        assert.equal(tiledSequence(info.rows, info.cols, cases.tokens_per_image, '<image>',
          { fakeToken: '<fake_token_around_image>', globalToken: '<global-img>' }), info.expansion, `${name}: expansion`);
      }
      assert.ok(Object.values(cases.pngs).some((p) => p.rows * p.cols >= 4) && Object.values(cases.pngs).some((p) => p.rows * p.cols === 2),
        'an image of 2 x 2 tiles and one of 1 x 2');
    });

    test('the engine and the shards agree on the tower: <image> tokens, image_seq_len tokens per tile, tiles of the tower\'s size', () => {
      const v = vs.server.engine.info.vision;
      assert.deepEqual([v?.imageTokenId, v?.tokensPerImage, v?.imageSize, v?.imageToken, v?.templateToken, v?.imagePlaceholder, v?.bidirectionalImages, v?.rowBreaks],
        [cases.image_token_id, cases.tokens_per_image, cases.image_size, '<image>', undefined, cases.image_placeholder, undefined, undefined]);
    });

    test(`chunked prefill (budget ${PREFILL_BUDGET} < a tile's ${cases.tokens_per_image} tokens, chunks ending inside tiles): the first token equals transformers'`, async () => {
      let w = 0;
      for (const adapter of adapterNames(cases)) {
        const prefix = goldenPrefix(adapter);
        for (const [s, seq] of cases.sequences.entries()) {
          if (seq.images.length === 0) continue;
          const { details, ranges: [ranges] } = await vs.firstToken(markdown(seq), adapter, TOP_N);
          assert.ok(ranges !== undefined && ranges[0]![0] <= seq.image_starts[0]! && ranges.length >= (seq.ids.length - ranges[0]![0]) / PREFILL_BUDGET,
            `${prefix}/seq${s}: the images computed in chunks (${JSON.stringify(ranges)})`);
          for (const [from, to] of ranges!) assert.ok(to - from <= PREFILL_BUDGET, `${prefix}/seq${s}: chunk [${from}, ${to}) within the budget`);
          const inside = ranges!.filter(([, to]) => seq.image_starts.some((st) => st < to && to < st + cases.tokens_per_image)).length;
          assert.ok(inside >= 2, `${prefix}/seq${s}: chunks end inside tiles (${inside})`);
          w = Math.max(w, checkTop(details, fx.row(`${prefix}/seq${s}`, seq.ids.length - 1), `${prefix}/seq${s}`, TOP_N));
        }
      }
      console.log(`smolvlm chunked: max abs first-token and top-${TOP_N} logprob error ${w.toExponential(2)}`);
    });

    for (const adapter of adapterNames(cases)) {
      test(`prefill log-probs equal transformers' (${adapter ?? 'base model'}): SmolVLMProcessor's tokens, one image of 5 tiles and two of 3 + 5`, async () => {
        const prefix = goldenPrefix(adapter);
        assert.ok(cases.sequences.some((s) => s.source_images.length === 2), 'one prompt has two images');
        let w = 0;
        for (const [s, seq] of cases.sequences.entries()) {
          const got = await vs.prefill(markdown(seq), adapter);
          w = Math.max(w, matchPrefill(fx, got, seq.ids, `${prefix}/seq${s}`));
          assert.deepEqual(runStarts(got.map((p) => p.id)), seq.image_starts, `${prefix}/seq${s}: one run of ${cases.tokens_per_image} image tokens per tile`);
          assert.equal(seq.image_starts.length, seq.images.length);
          for (const start of seq.image_starts) {
            assert.equal(got[start - 2]!.id, cases.fake_token_id, 'each tile opens with <fake_token_around_image> and its tag');
            assert.notEqual(got[start + cases.tokens_per_image]!.id, cases.image_token_id, `a tile's run is ${cases.tokens_per_image} long`);
          }
        }
        console.log(`smolvlm ${adapter ?? 'base'}: ${cases.sequences.length} prompts, max abs prompt logprob error ${w.toExponential(2)}`);
      });
    }

    test('a prompt whose prefix is cached (chunks ending inside tiles): the rest computed, the logits as transformers\'', async () => {
      const seq = cases.sequences.find((q) => q.source_images.length === 1)!;
      const s = cases.sequences.indexOf(seq);
      const { details, hit } = await vs.firstToken(markdown(seq), null, TOP_N);
      assert.ok(hit > seq.image_starts[0]! && hit % BLOCK === 0, `cached ${hit} tokens, past the first tile's start ${seq.image_starts[0]}`);
      const w = checkTop(details, fx.row(`base/seq${s}`, seq.ids.length - 1), `seq${s} cached`, TOP_N);
      console.log(`smolvlm cached prefix (${hit} tokens): max abs logprob error ${w.toExponential(2)}`);
    });

    test('the text after the images: the golden decode rows (sent as prompt text)', async () => {
      // byte-level tokens: id = byte + 3, so the decode tokens appended as text are the same tokens
      const w = await allDecodeRows(vs, fx, cases.sequences.map((q) => ({ ...q, images: q.source_images })), [null], 3);
      console.log(`smolvlm decode rows: max abs logprob error ${w.toExponential(2)}`);
    });

    test('chat: image parts rendered by the model\'s template as <image>, expanded into tiles; usage counts every tile\'s tokens', async () => {
      const s = cases.sequences.findIndex((q) => q.source_images.length === 2);
      const seq = cases.sequences[s]!;
      await chatFirstToken(vs, fx, s, seq, userContent(seq), 'the template renders the fixture\'s prompt; every tile counted');
    });

    test('/tokenize and /chat_tokenize with image parts: the fixture\'s ids, every tile expanded', async () => {
      for (const seq of cases.sequences.filter((q) => q.source_images.length > 0)) {
        await tokenizeRoutes(vs, [{ role: 'user', content: userContent(seq) }], seq, 'SmolVLMProcessor\'s tokens, every tile');
      }
    });

    test('--max-images-per-prompt counts images, not tiles; the length limit counts every tile', async () => {
      // two images of 3 + 5 tiles (8 tiles) pass a limit of 2 images (above); three images do not
      const big = `![](${fx.dataUrl('big')})`;
      await expect422(vs, `${big}${big}![](${fx.dataUrl('wide')})x`, /3 images; at most 2 per prompt/);
      // a 5-tile image's expansion, in tokens (seq 0: the one image and 29 tokens of text around it), counted twice
      const seq0 = cases.sequences.find((q) => q.source_images.length === 1 && q.source_images[0] === 'big')!;
      const bigTokens = seq0.ids.length - (seq0.prompt.replace(cases.image_placeholder, '').length - ['<|im_start|>', '<end_of_utterance>'].join('').length + 2);
      assert.equal(bigTokens, 4 * (2 + cases.tokens_per_image) + 2 + 1 + (3 + cases.tokens_per_image), '4 tiles, 2 row newlines, "\n", the global image');
      await expect422(vs, `${big}${big}${'y'.repeat(201 - 2 * bigTokens)}`, `Input validation error: \`inputs\` must have less than 200 tokens. Given: 201`);
      const fits = await vs.prefill(`${big}${big}${'y'.repeat(200 - 2 * bigTokens)}`, null);
      assert.equal(fits.length, 200, 'every tile\'s tokens in the prompt');
    });

    test('a placeholder without its image, or <image> written in the text beside an image, are 422s', async () => {
      await expect422(vs, `x${cases.image_placeholder}y`, /^the prompt has 1 image placeholder \(<image>\) for 0 images/);
      await expect422(vs, `![](${fx.dataUrl('wide')})<image>`, /^the prompt has 2 image placeholders \(<image>\) for 1 image/);
    });
  });
}
