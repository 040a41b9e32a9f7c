// Qwen3-VL images end to end: `weft launch` (real nats-server, shard processes) over the tiny
// Qwen3VLForConditionalGeneration of test/fixtures/vlm/qwen3_vl (made by the shard side's make_qwen3_vl.py: a byte-level
// tokenizer with Qwen's vision tokens, the slow Qwen2VLImageProcessor — Qwen3VLProcessor's image processor — at patch 4 ·
// merge 2 with mean / std 0.5, PNG images of three sizes, one resized by smart_resize, transformers + PEFT logits). A
// prompt sent with TGI markdown images gives the tokens transformers' Qwen3VLProcessor gives (each <|image_pad|>
// repeated to its own image's grid_t·grid_h·grid_w / merge²: 12, 4 and 24 tokens) and prefill log-probs equal to the
// golden logits' log-softmax for the base model and each adapter (language model only; language model + vision tower +
// merger) — one prompt holding two images of different sizes. The server runs with --max-batch-prefill-tokens 8, below
// the 12- and 24-token images: their prefill is chunked, chunks ending inside the images (Qwen3-VL's decoder is causal);
// a cached prefix ending inside an image (block size 4) continues right. Also the text after the images (the golden
// decode rows, as prompt text: M-RoPE positions past the images), the chat route and the 422s.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readPreprocessorConfig } from '../../coordinator/vision/index.js';
import { VLM_ROOT } from '../helpers/vlm.js';
import { TOL, adapterNames, allDecodeRows, chatTwoImages, checkQwenPreprocessing, checkSwappedCounts, checkTop, chunkedFirstTokens, expect422, goldenPrefix, matchPrefill,
  useVisionServer, visionFixture, type QwenCases } from '../helpers/vision-server.js';

const PREFILL_BUDGET = 8;
const BLOCK = 4;
const TOP_N = 4;

// Each case: Qwen3-VL, and Qwen3-VL-MoE (Qwen3VLMoeForConditionalGeneration: the same processor, its fused experts
// loaded by the shards; nothing else differs on the coordinator's side).
for (const [CASE, ARCH] of [['qwen3_vl', 'Qwen3VLForConditionalGeneration'], ['qwen3_vl_moe', 'Qwen3VLMoeForConditionalGeneration']] as const) {
  const DIR = join(VLM_ROOT, CASE);
  if (!existsSync(join(DIR, 'cases.json'))) {
    test(`Qwen3-VL images end to end (${CASE})`, { skip: `no fixture at ${DIR} (test/fixtures/golden/make_qwen3_vl.py)` }, () => {});
  } else {
    describe(`Qwen3-VL images end to end (${CASE})`, () => {
      const fx = visionFixture<QwenCases & { architecture: string }>(VLM_ROOT, CASE);
      const { cases } = fx;
      /** Image k's range [start, end) in a sequence's ids: the k-th run of image tokens. */
      const ranges = (seq: { ids: number[] }) => {
        const out: [number, number][] = [];
        for (let p = 0; p < seq.ids.length; p++) {
          if (seq.ids[p] !== cases.image_token_id) continue;
          if (p > 0 && seq.ids[p - 1] === cases.image_token_id) out.at(-1)![1] = p + 1;
          else out.push([p, p + 1]);
        }
        return out;
      };
      const vs = useVisionServer({ dir: DIR, cluster: `q3${CASE.length}${process.pid}`, prefillBudget: PREFILL_BUDGET, block: BLOCK, watchSteps: true });

      test('the fixture\'s pixel values, grids and token counts are what weft\'s preprocessing gives (Qwen3VLProcessor\'s image processor)', async () => {
        assert.equal(cases.architecture, ARCH);
        const config = readPreprocessorConfig(join(DIR, 'model'));
        assert.ok(config.kind === 'qwen2_vl');
        assert.deepEqual([config.patchSize, config.mergeSize, config.imageMean, config.imageStd], [cases.patch_size, cases.merge_size, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]);
        await checkQwenPreprocessing(fx, config);
      });

      test('the engine and the shards agree on the tower: <|image_pad|>, patch 4 · merge 2; markdown images become the template\'s image sequence', () => {
        const v = vs.server.engine.info.vision;
        assert.ok(v !== undefined, 'the shards report a vision tower for Qwen3VLForConditionalGeneration (ModelInfo.vision)');
        assert.deepEqual([v.imageTokenId, v.patchSize, v.mergeSize, v.tokensPerImage, v.rowBreaks, v.bidirectionalImages, v.imageToken, v.imagePlaceholder],
          [cases.image_token_id, cases.patch_size, cases.merge_size, undefined, undefined, undefined, '<|image_pad|>', cases.image_placeholder]);
        const budgetBelow = Object.values(cases.images).filter((i) => i.tokens > PREFILL_BUDGET);
        assert.ok(budgetBelow.length >= 2, 'the prefill budget is below the larger images');
      });

      for (const adapter of adapterNames(cases)) {
        test(`chunked prefill (budget ${PREFILL_BUDGET}): chunks end inside the images, the first token equals transformers' (${adapter ?? 'base model'})`, async () => {
          const w = await chunkedFirstTokens(vs, fx, adapter, PREFILL_BUDGET, TOP_N, ranges);
          console.log(`${CASE} ${adapter ?? 'base'} chunked: max abs first-token and top-${TOP_N} logprob error ${w.toExponential(2)}`);
        });

        test(`prefill log-probs equal transformers' (${adapter ?? 'base model'}): Qwen3VLProcessor's tokens, each image its own count, chunked`, async () => {
          const prefix = goldenPrefix(adapter);
          assert.ok(cases.sequences.some((s) => new Set(s.image_tokens).size > 1), 'one prompt has two images of different sizes');
          let w = 0;
          for (const [s, seq] of cases.sequences.entries()) {
            w = Math.max(w, matchPrefill(fx, await vs.prefill(fx.markdown(seq), adapter), seq.ids, `${prefix}/seq${s}`));
            assert.deepEqual(ranges(seq).map(([a, b]) => b - a), seq.image_tokens, `${prefix}/seq${s}: grid_t·grid_h·grid_w / merge² per image`);
          }
          console.log(`${CASE} ${adapter ?? 'base'}: ${cases.sequences.length} prompts, max abs prompt logprob error ${w.toExponential(2)}`);
        });
      }

      test('a cached prefix ending inside an image: the chunk continuing it, the logits as transformers\'', async () => {
        // seq 0's prompt up to its image's end: computed before (the tests above), its blocks inside the image found cached
        const seq = cases.sequences.find((q) => q.images.length === 1)!;
        const s = cases.sequences.indexOf(seq);
        const [start, end] = ranges(seq)[0]!;
        // the prompt: the image and <|vision_end|> (end + 1 tokens); its last token is always computed
        const cached = Math.floor(end / BLOCK) * BLOCK;
        assert.ok(cached > start && cached < end, 'the cached prefix ends inside the image');
        const { details, hit, ranges: [got] } = await vs.firstToken(fx.markdown({ prompt: fx.toFirstImage(seq.prompt), images: seq.images }), null, TOP_N);
        assert.equal(hit, cached);
        // the prompt ends with <|vision_end|> after the image: the chunk from inside the image runs past its end
        assert.equal(got![0]![0], cached, 'the first chunk starts inside the image, at the cached prefix');
        const w = checkTop(details, fx.row(`base/seq${s}`, end), `seq${s}[:${end + 1}]`, TOP_N);
        console.log(`${CASE} cached prefix inside an image: max abs logprob error ${w.toExponential(2)}`);
      });

      test('text after the images: the golden decode rows (multimodal RoPE positions past the images)', async () => {
        // the decode tokens are bytes (ASCII): appended as text, they are the same tokens
        const w = await allDecodeRows(vs, fx, cases.sequences, [null], 0);
        console.log(`${CASE} decode rows: max abs logprob error ${w.toExponential(2)}`);
      });

      test('chat: image parts rendered by the model\'s template, each image expanded to its own count', async () => {
        const { r, s, seq } = await chatTwoImages(vs, fx, '<|im_end|>', 'the template renders the fixture\'s prompt', false);
        const ref = fx.row(`base/seq${s}`, seq.ids.length - 1);
        const best = ref.indexOf(Math.max(...ref));
        const content = r.json.choices[0].logprobs.content as { logprob: number }[];
        if (best >= 256) {
          // transformers' greedy token is a special one (this tiny model's <|vision_start|>): no text, no logprobs entry
          assert.deepEqual([r.json.usage.completion_tokens, r.json.choices[0].message.content, content.length], [1, '', 0]);
        } else {
          assert.ok(Math.abs(content[0]!.logprob - ref[best]!) <= TOL, `first token logprob ${content[0]!.logprob}, transformers' best ${ref[best]}`);
        }
      });

      test('a placeholder without its image, or images swapped in size order, are told apart', async () => {
        await expect422(vs, `x${cases.image_placeholder}y`, /^the prompt has 1 image placeholder \(<\|image_pad\|>\) for 0 images/);
        await checkSwappedCounts(vs, fx, cases.sequences.find((q) => q.images.length === 2)!);
      });
    });
  }
}
