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
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { decodeRgb, parsePreprocessorConfig, preprocessImage } from '../../coordinator/vision/index.js';
import { imageSequence } from '../../coordinator/engine/prompt-images.js';
import { VLM_ROOT } from '../helpers/vlm.js';
import { adapterNames, allDecodeRows, chatTwoImages, checkTop, expect422, goldenPrefix, matchPrefill, useVisionServer, visionFixture } from '../helpers/vision-server.js';

const DIR = join(VLM_ROOT, 'gemma3');
interface Sequence { ids: number[]; images: string[]; prompt: string; expanded: string; image_starts: number[]; decode: number[] }
interface ImageInfo { png: string; pixel_values: string; height: number; width: number; tokens: number }
interface Cases {
  sequences: Sequence[]; image_token_id: number; boi_token_id: number; eoi_token_id: number; tokens_per_image: number; image_size: number;
  image_placeholder: string; image_expansion: string; adapters: { name: string; dir: string }[]; images: Record<string, ImageInfo>;
}
const PREFILL_BUDGET = 12;
const BLOCK = 8;
const TOP_N = 4;

if (!existsSync(join(DIR, 'cases.json'))) {
  test('Gemma 3 images end to end', { skip: `no fixture at ${DIR} (the shard side's Gemma 3 fixture script)` }, () => {});
} else {
  describe('Gemma 3 images end to end', () => {
    const fx = visionFixture<Cases>(VLM_ROOT, 'gemma3');
    const { cases } = fx;
    const vs = useVisionServer({ dir: DIR, cluster: `g${process.pid}`, prefillBudget: PREFILL_BUDGET, block: BLOCK, watchSteps: true });

    test('the fixture\'s pixel values are what weft\'s Gemma3ImageProcessor gives; the expansion is Gemma3Processor\'s', async () => {
      const config = parsePreprocessorConfig(fx.preprocessorJson());
      assert.ok(config.kind === 'gemma3');
      for (const [image, info] of Object.entries(cases.images)) {
        const px = preprocessImage(await decodeRgb(fx.png(image), 1e8, image), config);
        assert.deepEqual([px.height, px.width], [info.height, info.width], `${image}: resized`);
        assert.deepEqual(px.data, fx.pixelValues(info.pixel_values), `${image}: bit for bit`);
      }
      assert.equal(imageSequence(cases.tokens_per_image, { imageToken: '<image_soft_token>',
        rule: { kind: 'gemma3', boiToken: '<start_of_image>', eoiToken: '<end_of_image>' } }), cases.image_expansion);
    });

    test('the engine and the shards agree on the tower; markdown images become <start_of_image>; images are bidirectional', () => {
      const v = vs.server.engine.info.vision;
      assert.deepEqual([v?.imageTokenId, v?.tokensPerImage, v?.imageSize, v?.imageToken, v?.templateToken, v?.imagePlaceholder, v?.bidirectionalImages],
        [cases.image_token_id, cases.tokens_per_image, cases.image_size, '<image_soft_token>', '<start_of_image>', cases.image_placeholder, true]);
    });

    for (const adapter of adapterNames(cases)) {
      test(`chunked prefill (budget ${PREFILL_BUDGET} < an image's ${cases.tokens_per_image} tokens): the first token equals transformers' (${adapter ?? 'base model'})`, async () => {
        const prefix = goldenPrefix(adapter);
        let w = 0;
        for (const [s, seq] of cases.sequences.entries()) {
          if (seq.images.length === 0) continue;
          assert.ok(seq.ids.length > PREFILL_BUDGET && cases.tokens_per_image > PREFILL_BUDGET);
          const { details, hit, ranges: [ranges] } = await vs.firstToken(fx.markdown(seq), adapter, TOP_N);
          // computed, not found cached (the chunked requests come first): at most the text before the first image
          assert.ok(hit <= seq.image_starts[0]!, 'the images are computed, not found cached');
          // the prompt went in chunks, each within the budget or one whole image, none ending inside an image
          assert.ok(ranges !== undefined && ranges.length >= 3, `${prefix}/seq${s}: chunked (${JSON.stringify(ranges)})`);
          for (const [from, to] of ranges!) {
            for (const start of seq.image_starts) {
              assert.ok(!(start < to && to < start + cases.tokens_per_image), `${prefix}/seq${s}: chunk [${from}, ${to}) ends inside the image at ${start}`);
            }
            assert.ok(to - from <= Math.max(PREFILL_BUDGET, cases.tokens_per_image));
          }
          w = Math.max(w, checkTop(details, fx.row(`${prefix}/seq${s}`, seq.ids.length - 1), `${prefix}/seq${s}`, TOP_N));
        }
        console.log(`gemma3 ${adapter ?? 'base'} chunked: max abs first-token and top-${TOP_N} logprob error ${w.toExponential(2)}`);
      });
      test(`prefill log-probs equal transformers' (${adapter ?? 'base model'}): Gemma3Processor's tokens, one and two images`, async () => {
        const prefix = goldenPrefix(adapter);
        assert.ok(cases.sequences.some((s) => s.images.length === 2), 'one prompt has two images');
        let w = 0;
        for (const [s, seq] of cases.sequences.entries()) {
          const got = await vs.prefill(fx.markdown(seq), adapter);
          w = Math.max(w, matchPrefill(fx, got, seq.ids, `${prefix}/seq${s}`));
          for (const start of seq.image_starts) {
            assert.deepEqual([got[start - 1]!.id, got[start + cases.tokens_per_image]!.id], [cases.boi_token_id, cases.eoi_token_id], 'boi, soft tokens, eoi');
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
      const { details, hit, ranges } = await vs.firstToken(fx.markdown({ prompt: fx.toFirstImage(seq.prompt), images: seq.images }), null, TOP_N);
      const cached = Math.floor((end - 1) / BLOCK) * BLOCK;
      assert.equal(hit, cached, 'the cached prefix ends inside the image');
      assert.deepEqual(ranges, [[[cached, end]]], 'one chunk from inside the image past its end');
      const w = checkTop(details, fx.row('base/seq0', end - 1), 'seq0[:29]', TOP_N);
      console.log(`gemma3 cached prefix inside an image: max abs logprob error ${w.toExponential(2)}`);
    });

    test('the text after the images: the golden decode rows (sent as prompt text)', async () => {
      // byte-level tokens: id = byte + 3, so the decode tokens appended as text are the same tokens
      const w = await allDecodeRows(vs, fx, cases.sequences, [null], 3);
      console.log(`gemma3 decode rows: max abs logprob error ${w.toExponential(2)}`);
    });

    test('chat: image parts rendered by the model\'s template as <start_of_image>, expanded by Gemma3Processor\'s rule', async () => {
      await chatTwoImages(vs, fx, '<end_of_turn>', 'the template renders the fixture\'s prompt');
    });

    test('a placeholder without its image, or soft tokens written in the text, are 422s', async () => {
      await expect422(vs, `x${cases.image_placeholder}y`, /^the prompt has 1 image placeholder \(<start_of_image>\) for 0 images/);
      await expect422(vs, `![](${fx.dataUrl('wide')})<image_soft_token>`, /image tokens that are not whole images/);
    });
  });
}
