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
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { VLM_ROOT } from '../helpers/vlm.js';
import { adapterNames, allDecodeRows, chatTwoImages, checkTop, chunkedFirstTokens, expect422, goldenPrefix, matchPrefill, useVisionServer, visionFixture } from '../helpers/vision-server.js';

const DIR = join(VLM_ROOT, 'mistral3');
interface Sequence { ids: number[]; images: string[]; prompt: string; expanded: string; image_starts: number[]; decode: number[] }
interface ImageInfo { png: string; pixel_values: string; height: number; width: number; rows: number; cols: number; tokens: number }
interface Cases {
  sequences: Sequence[]; image_token_id: number; image_break_token_id: number; image_end_token_id: number; patch_size: number; merge_size: number;
  image_placeholder: string; adapters: { name: string; dir: string }[]; images: Record<string, ImageInfo>;
}
const PREFILL_BUDGET = 6;
const BLOCK = 8;
const TOP_N = 4;
/** The fixture's byte-level tokenizer: token id = byte + 16 for text. */
const BYTE_OFFSET = 16;

if (!existsSync(join(DIR, 'cases.json'))) {
  test('Mistral 3 images end to end', { skip: `no fixture at ${DIR} (the shard side's Mistral 3 fixture script)` }, () => {});
} else {
  describe('Mistral 3 images end to end', () => {
    const fx = visionFixture<Cases>(VLM_ROOT, 'mistral3');
    const { cases } = fx;
    /** Image i's range in a sequence: rows · (cols + 1) positions from its first [IMG]. */
    const ranges = (seq: Sequence) => seq.images.map((name, k) => [seq.image_starts[k]!, seq.image_starts[k]! + cases.images[name]!.tokens] as const);
    const vs = useVisionServer({ dir: DIR, cluster: `m${process.pid}`, prefillBudget: PREFILL_BUDGET, block: BLOCK, watchSteps: true });

    test('the engine and the shards agree on the tower: [IMG], patch 4 · merge 2, row breaks; markdown images become [IMG]', () => {
      const v = vs.server.engine.info.vision;
      assert.ok(v !== undefined, 'the shards report a vision tower for Mistral3ForConditionalGeneration (ModelInfo.vision)');
      assert.deepEqual([v.imageTokenId, v.patchSize, v.mergeSize, v.rowBreaks, v.tokensPerImage, v.bidirectionalImages, v.imageToken, v.imagePlaceholder],
        [cases.image_token_id, cases.patch_size, cases.merge_size, true, undefined, undefined, '[IMG]', cases.image_placeholder]);
      // the fixture: two images of different aspect ratios in one prompt
      const two = cases.sequences.find((s) => s.images.length === 2)!;
      const [a, b] = two.images.map((n) => cases.images[n]!);
      assert.ok(a!.rows !== b!.rows && a!.rows * a!.cols === b!.rows * b!.cols, 'the same features, other shapes: breaks in other places');
    });

    for (const adapter of adapterNames(cases)) {
      test(`chunked prefill (budget ${PREFILL_BUDGET}): chunks end inside the images, the first token equals transformers' (${adapter ?? 'base model'})`, async () => {
        // at most the text before the first image (image_starts[0], where ranges(seq)[0] starts) found cached
        const w = await chunkedFirstTokens(vs, fx, adapter, PREFILL_BUDGET, TOP_N, ranges);
        console.log(`mistral3 ${adapter ?? 'base'} chunked: max abs first-token and top-${TOP_N} logprob error ${w.toExponential(2)}`);
      });

      test(`prefill log-probs equal transformers' (${adapter ?? 'base model'}): PixtralProcessor's tokens, one and two images`, async () => {
        const prefix = goldenPrefix(adapter);
        let w = 0;
        for (const [s, seq] of cases.sequences.entries()) {
          const got = await vs.prefill(fx.markdown(seq), adapter);
          w = Math.max(w, matchPrefill(fx, got, seq.ids, `${prefix}/seq${s}`));
          for (const [k, [a, b]] of ranges(seq).entries()) {
            const { rows, cols } = cases.images[seq.images[k]!]!;
            for (let rr = 0; rr < rows; rr++) {
              assert.equal(got[a + rr * (cols + 1) + cols]!.id, rr === rows - 1 ? cases.image_end_token_id : cases.image_break_token_id, 'row ends');
            }
            assert.equal(b - a, rows * (cols + 1));
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
      const { details, hit, ranges: got } = await vs.firstToken(fx.markdown({ prompt: fx.toFirstImage(seq.prompt), images: seq.images }), null, TOP_N);
      assert.equal(hit, cached);
      assert.deepEqual(got, [[[cached, end]]], 'one chunk from inside the image to its end');
      const w = checkTop(details, fx.row('base/seq0', end - 1), `seq0[:${end}]`, TOP_N);
      console.log(`mistral3 cached prefix inside an image: max abs logprob error ${w.toExponential(2)}`);
    });

    test('the text after the images: the golden decode rows (sent as prompt text)', async () => {
      const w = await allDecodeRows(vs, fx, cases.sequences, adapterNames(cases), BYTE_OFFSET);
      console.log(`mistral3 decode rows: max abs logprob error ${w.toExponential(2)}`);
    });

    test('chat: image parts rendered by the model\'s template as [IMG], expanded by PixtralProcessor\'s rule', async () => {
      await chatTwoImages(vs, fx, '[/INST]', 'the template renders the fixture\'s prompt; breaks counted');
    });

    test('a placeholder without its image, or one image with two placeholders, are 422s', async () => {
      await expect422(vs, `x${cases.image_placeholder}y`, /^the prompt has 1 image placeholder \(\[IMG\]\) for 0 images/);
      await expect422(vs, `![](${fx.dataUrl('wide')})[IMG]`, /^the prompt has 2 image placeholders \(\[IMG\]\) for 1 image/);
    });
  });
}
