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
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parsePreprocessorConfig } from '../../coordinator/vision/index.js';
import { VLM_ROOT } from '../helpers/vlm.js';
import { adapterNames, allDecodeRows, chatTwoImages, checkQwenPreprocessing, checkSwappedCounts, expect422, firstRunLength, goldenPrefix, matchPrefill,
  tokenizeRoutes, useVisionServer, visionFixture, type QwenCases } from '../helpers/vision-server.js';

const CASE_NAMES = ['qwen2_vl', 'qwen2_5_vl'].filter((n) => existsSync(join(VLM_ROOT, n, 'cases.json')));

if (CASE_NAMES.length === 0) {
  test('Qwen2-VL images end to end', { skip: `no fixture at ${VLM_ROOT} (run test/fixtures/golden/make_qwen2_vl.py)` }, () => {});
}

for (const name of CASE_NAMES) {
  describe(`dynamic-resolution images end to end: ${name}`, () => {
    const fx = visionFixture<QwenCases>(VLM_ROOT, name);
    const { cases } = fx;
    const vs = useVisionServer({ dir: fx.dir, cluster: `q${process.pid}` });

    test('the fixture\'s pixel values and token counts are what weft\'s preprocessing gives', async () => {
      const config = parsePreprocessorConfig(fx.preprocessorJson());
      assert.ok(config.kind === 'qwen2_vl');
      await checkQwenPreprocessing(fx, config);
    });

    test('the engine and the shards agree on the tower; markdown images become the template\'s image sequence', () => {
      const v = vs.server.engine.info.vision;
      assert.deepEqual([v?.imageTokenId, v?.patchSize, v?.mergeSize, v?.tokensPerImage, v?.imagePlaceholder],
        [cases.image_token_id, cases.patch_size, cases.merge_size, undefined, cases.image_placeholder]);
    });

    for (const adapter of adapterNames(cases)) {
      test(`prefill log-probs equal transformers' (${adapter ?? 'base model'}), each image its own token count`, async () => {
        const prefix = goldenPrefix(adapter);
        assert.ok(cases.sequences.some((s) => new Set(s.image_tokens).size > 1), 'one prompt has two images of different sizes');
        const errs = await Promise.all(cases.sequences.map(async (seq, s) =>
          matchPrefill(fx, await vs.prefill(fx.markdown(seq), adapter), seq.ids, `${prefix}/seq${s}`)));
        console.log(`${name} ${adapter ?? 'base'}: ${cases.sequences.length} prompts, max abs logprob error ${Math.max(...errs).toExponential(2)}`);
      });
    }

    test('text after the images: the golden decode rows (multimodal RoPE positions past the images)', async () => {
      // the decode tokens are bytes (ASCII): appended as text, they are the same tokens
      const w = await allDecodeRows(vs, fx, cases.sequences, [null], 0);
      console.log(`${name} decode rows: max abs logprob error ${w.toExponential(2)}`);
    });

    test('chat: image parts rendered by the model\'s template, each image expanded to its own count', async () => {
      // the first answer token is the greedy one of transformers' last prompt row
      await chatTwoImages(vs, fx, '<|im_end|>', 'the template renders the fixture\'s prompt');
    });

    test('/tokenize and /chat_tokenize with image parts: the fixture\'s ids, each image expanded to its own count', async () => {
      for (const seq of cases.sequences.filter((q) => q.images.length > 0)) {
        const text = fx.textAfterImages(seq.prompt, '<|im_end|>');
        const { v, t } = await tokenizeRoutes(vs, [{ role: 'user', content: [...fx.imageParts(seq.images), { type: 'text', text }] }], seq,
          'the tokens transformers\' processor gives');
        assert.deepEqual([v.json.count, v.json.max_model_len], [seq.ids.length, 256]);
        const pads = (t.json.tokenize_response as { id: number; start: number; stop: number }[]).filter((x) => x.id === cases.image_token_id);
        assert.ok(pads.every((x) => seq.prompt.slice(x.start, x.stop) === '<|image_pad|>'), 'each image\'s tokens span its placeholder');
      }
      // swapped: each image still its own count
      const seq = cases.sequences.find((q) => q.images.length === 2)!;
      const swapped = await vs.post('/tokenize', { messages: [{ role: 'user', content: fx.imageParts([...seq.images].reverse()) }] });
      assert.equal(swapped.status, 200, swapped.text);
      assert.equal(firstRunLength(swapped.json.tokens as number[], cases.image_token_id), seq.image_tokens.at(-1), 'the first image takes its own count');
    });

    test('a placeholder without its image, or images swapped in size order, are told apart', async () => {
      await expect422(vs, `x${cases.image_placeholder}y`, /^the prompt has 1 image placeholder \(<\|image_pad\|>\) for 0 images/);
      // the same two images in the other order: each still takes its own count
      await checkSwappedCounts(vs, fx, cases.sequences.find((q) => q.images.length === 2)!);
    });
  });
}
