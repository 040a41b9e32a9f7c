// A vision-language prompt on the coordinator: placeholders expanded as LlavaProcessor, Qwen2VLProcessor and
// Gemma3Processor expand them (each processor's rule), each image's token range found (and a mismatch refused), chat messages as templates get them, the images a step's new sequences need —
// and the scheduler's side: NewSequence.images on every admission (a preempted sequence's too), and the prefix cache
// keying blocks by image, so another image never reuses an image's K/V while the same image and text do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SamplingParams } from '../../protocol/index.js';
import { ReferenceShard, Scheduler, Sequence } from '../../coordinator/scheduler/index.js';
import type { ReferenceSampler, SchedulerConfig } from '../../coordinator/scheduler/index.js';
import { extendBlockHashes, prefixSalt } from '../../coordinator/scheduler/prefix-cache.js';
import { countImageTokens, expandImageTokens, imageRefs, imageTokenCount, type PromptVision } from '../../coordinator/engine/prompt-images.js';
import { stepImages, templateMessages, tokenRule, towerMismatch } from '../../coordinator/engine/engine-vision.js';
import { imagePlaceholderText } from '../../coordinator/engine/image-placeholder.js';
import { EngineError } from '../../coordinator/engine/types.js';
import { parsePreprocessorConfig, type PreparedImage } from '../../coordinator/vision/index.js';

const V: PromptVision = { imageToken: '<image>', templateToken: '<image>', imagePlaceholder: '<image>', imageTokenId: 9, tokensPerImage: 3, imageSize: 336,
  rule: { kind: 'repeat' } };
const img = (key: string, height = 1, width = 1): PreparedImage => ({ key, height, width, data: new Float32Array(3) });

test('placeholders: expanded in the text, then each image takes the next run of tokensPerImage image tokens', () => {
  assert.equal(expandImageTokens('a<image>b<image><image>', [img('x'), img('y'), img('x')], V), 'a<image><image><image>b' + '<image>'.repeat(6));
  assert.deepEqual(imageRefs([1, 9, 9, 9, 2, 9, 9, 9, 9, 9, 9], [img('x'), img('y'), img('x')], V),
    [{ key: 'x', start: 1, length: 3 }, { key: 'y', start: 5, length: 3 }, { key: 'x', start: 8, length: 3 }]);
  assert.deepEqual(imageRefs([1, 2], [], V), []);
});

test('placeholders that do not match the images are a 422 saying what to fix', () => {
  const refusal = (ids: number[], images: PreparedImage[]) => {
    try {
      imageRefs(ids, images, V);
    } catch (e) {
      assert.ok(e instanceof EngineError && e.kind === 'validation');
      return e.message;
    }
    return assert.fail('not refused');
  };
  assert.equal(refusal([9, 9, 9], []), 'the prompt has 1 image placeholder (<image>) for 0 images; do not write <image> in the text, or send the image it stands for');
  assert.match(refusal([1, 2], [img('x')]), /^the prompt has 0 image placeholders \(<image>\) for 1 image; each image needs exactly one placeholder: check that the chat template renders image parts and that `truncate` keeps every image$/);
  assert.match(refusal([9, 9, 1, 2], [img('x')]), /^the prompt has image tokens that are not whole images for 1 image/, 'a truncate that cut into an image');
  assert.match(refusal([9, 9, 1, 9], [img('x')]), /image 1's 3 placeholder tokens are not consecutive/);
});

test('chat messages: strings as they were, or every message as content parts once one has an image or the template loops over content', () => {
  const msgs = [{ role: 'system', content: 'S' }, { role: 'user', content: 'ab', parts: [{ type: 'text' as const, text: 'a' }, { type: 'image' as const }, { type: 'text' as const, text: 'b' }] }];
  assert.deepEqual(templateMessages([{ role: 'user', content: 'hi' }], false), [{ role: 'user', content: 'hi' }]);
  assert.deepEqual(templateMessages([{ role: 'user', content: 'hi' }], true), [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }]);
  assert.deepEqual(templateMessages(msgs, false), [{ role: 'system', content: [{ type: 'text', text: 'S' }] }, { role: 'user', content: msgs[1]!.parts }]);
  // a tool prompt appended to a message with parts: the parts, then the new text
  assert.deepEqual(templateMessages([{ ...msgs[1]!, content: 'ab\n\nTOOLS' }], false)[0]!.content,
    [...msgs[1]!.parts!, { type: 'text', text: '\n\nTOOLS' }]);
});

test('a step\'s images: each once, from the requests that hold them; a key no request holds is a bug, thrown', () => {
  const held = new Map([['s1', [img('x'), img('y')]], ['s2', [img('x')]]]);
  const newSeq = (seqId: string, keys: string[]) => ({ seqId, adapterSlot: -1, tokens: [], blockTable: [], sampling: SAMPLING, generated: [],
    logits: 'none' as const, promptLogprobs: false, topN: 0, images: keys.map((key) => ({ key, start: 0, length: 3 })) });
  assert.deepEqual(stepImages([newSeq('s1', ['x', 'y']), newSeq('s2', ['x']), newSeq('s3', [])], (id) => held.get(id)).map((i) => i.key), ['x', 'y']);
  assert.throws(() => stepImages([newSeq('s2', ['y'])], (id) => held.get(id)), /refers to image y, which its request does not hold/);
});

const SAMPLING: SamplingParams = { temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: false, seed: 0 };
const sampler: ReferenceSampler = (_id, tokens) => 100 + tokens.reduce((h, t) => (h * 31 + t) % 997, 7);
const config = (over: Partial<SchedulerConfig> = {}): SchedulerConfig => ({ numBlocks: 32, blockSize: 4, maxBatchSize: 16,
  maxBatchPrefillTokens: 256, maxTotalTokens: 256, maxActiveAdapters: 4, adapterCycleTimeS: 10, prefixCaching: true, ...over });
// 2 text tokens, an image of 3 placeholder tokens at 2..4, then text: the image starts in block 0 (blockSize 4).
const PROMPT = [1, 2, 9, 9, 9, 3, 4, 5, 6, 7, 8, 10, 11];
const withImage = (seqId: string, key: string, prompt = PROMPT) => new Sequence({ seqId, promptTokens: prompt, sampling: SAMPLING, maxNewTokens: 4,
  images: [{ key, start: 2, length: 3 }] });

test('block keys: from the block where an image starts on, they differ per image; before it and for the same image they do not', () => {
  const keys = (images: { key: string; start: number; length: number }[]) => {
    const h: string[] = [];
    extendBlockHashes(h, [...PROMPT, 12, 13, 14], 4, prefixSalt(null), 4, images);
    return h;
  };
  const none = keys([]), a = keys([{ key: 'A', start: 5, length: 3 }]), b = keys([{ key: 'B', start: 5, length: 3 }]);
  assert.equal(a[0], none[0], 'block 0 ends before the image');
  assert.equal(a[0], b[0]);
  for (let i = 1; i < 4; i++) {
    assert.notEqual(a[i], b[i], `block ${i}: other image`);
    assert.notEqual(a[i], none[i], `block ${i}: no image`);
  }
  assert.deepEqual(keys([{ key: 'A', start: 5, length: 3 }]), a, 'same image, same keys');
  assert.notDeepEqual(keys([{ key: 'A', start: 4, length: 3 }]), a, 'the same image at another position');
});

test('scheduler: NewSequence.images on admission; the same image shares cached blocks, another image none', () => {
  const sched = new Scheduler(config());
  const shard = new ReferenceShard(32, 4, sampler);
  const step = () => {
    const s = sched.schedule()!;
    sched.update(shard.run(s.step));
    return s.step;
  };
  sched.add(withImage('a', 'A'));
  const first = step();
  assert.deepEqual(first.newSeqs[0]!.images, [{ key: 'A', start: 2, length: 3 }]);
  sched.add(withImage('b', 'A'));
  sched.add(withImage('c', 'B'));
  const second = step();
  const byId = new Map(second.newSeqs.map((n) => [n.seqId, n]));
  assert.equal(byId.get('b')!.cached, 12, 'same image and text: the three full blocks');
  assert.equal(byId.get('c')!.cached, undefined, 'another image: not even block 0, where the image starts');
  assert.deepEqual(byId.get('c')!.images, [{ key: 'B', start: 2, length: 3 }]);
  while (sched.hasWork()) step();
});

test('scheduler: a preempted sequence is admitted again with its images', () => {
  // 7 blocks of 4: two 12-token prompts take 6; decoding past them needs more than is left, so one is preempted.
  const sched = new Scheduler(config({ numBlocks: 7, prefixCaching: false }));
  const shard = new ReferenceShard(7, 4, sampler);
  const prompt = PROMPT.slice(0, 12);
  sched.add(new Sequence({ seqId: 'a', promptTokens: prompt, sampling: SAMPLING, maxNewTokens: 8, images: [{ key: 'A', start: 2, length: 3 }] }));
  sched.add(new Sequence({ seqId: 'b', promptTokens: [...prompt].reverse(), sampling: SAMPLING, maxNewTokens: 8 }));
  const admissions: { seqId: string; images: unknown }[] = [];
  for (let i = 0; i < 30 && sched.hasWork(); i++) {
    const s = sched.schedule();
    if (s === null) break;
    for (const n of s.step.newSeqs) admissions.push({ seqId: n.seqId, images: n.images });
    sched.update(shard.run(s.step));
  }
  assert.ok(sched.preemptions > 0, 'the cache ran out: one was preempted');
  const a = admissions.filter((x) => x.seqId === 'a');
  const b = admissions.filter((x) => x.seqId === 'b');
  assert.ok(a.length + b.length > 2, 'someone was admitted again');
  for (const x of a) assert.deepEqual(x.images, [{ key: 'A', start: 2, length: 3 }]);
  for (const x of b) assert.equal(x.images, undefined);
});

// Qwen2-VL: a dynamic-resolution tower (patch 14, merge 2: one token per 28 x 28 pixels), each image its own count.
const Q: PromptVision = { imageToken: '<|image_pad|>', templateToken: '<|image_pad|>', imagePlaceholder: '<|vision_start|><|image_pad|><|vision_end|>',
  imageTokenId: 7, patchSize: 14, mergeSize: 2, rule: { kind: 'repeat' } };
const VS = 5, VE = 6;  // <|vision_start|>, <|vision_end|>

test('dynamic resolution: each image takes (H/28)·(W/28) tokens, the i-th placeholder expanded to the i-th image\'s count', () => {
  const a = img('a', 56, 84), b = img('b', 28, 28 * 5);  // 2 x 3 = 6 tokens; 1 x 5 = 5 tokens
  assert.deepEqual([imageTokenCount(a, Q), imageTokenCount(b, Q), imageTokenCount(a, V)], [6, 5, 3]);
  assert.throws(() => imageTokenCount(img('c', 56, 70), Q), /70 x 56 pixels is not a whole number of 28-pixel merged patches/);
  const text = 'x<|vision_start|><|image_pad|><|vision_end|>y<|vision_start|><|image_pad|><|vision_end|>';
  assert.equal(expandImageTokens(text, [a, b], Q),
    `x<|vision_start|>${'<|image_pad|>'.repeat(6)}<|vision_end|>y<|vision_start|>${'<|image_pad|>'.repeat(5)}<|vision_end|>`);
  assert.equal(expandImageTokens(text, [b, a], Q),
    `x<|vision_start|>${'<|image_pad|>'.repeat(5)}<|vision_end|>y<|vision_start|>${'<|image_pad|>'.repeat(6)}<|vision_end|>`, 'in order');
  const ids = [1, VS, ...Array(6).fill(7), VE, 2, VS, ...Array(5).fill(7), VE];
  assert.deepEqual(imageRefs(ids, [a, b], Q), [{ key: 'a', start: 2, length: 6 }, { key: 'b', start: 11, length: 5 }]);
  // two images whose runs touch (a template without wrappers): still split by count
  assert.deepEqual(imageRefs([...Array(11).fill(7)], [a, b], Q), [{ key: 'a', start: 0, length: 6 }, { key: 'b', start: 6, length: 5 }]);
});

test('dynamic resolution: placeholders that do not match the images are a 422 saying what to fix', () => {
  const a = img('a', 56, 84), b = img('b', 28, 140);
  const refusal = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof EngineError && e.kind === 'validation');
      return e.message;
    }
    return assert.fail('not refused');
  };
  assert.equal(refusal(() => expandImageTokens('<|image_pad|>', [a, b], Q)),
    'the prompt has 1 image placeholder (<|image_pad|>) for 2 images; each image needs exactly one placeholder: check that the chat template renders image parts and that `truncate` keeps every image');
  assert.match(refusal(() => imageRefs([1, VS, ...Array(6).fill(7), VE], [a, b], Q)), /^the prompt has 1 image placeholder \(<\|image_pad\|>\) for 2 images/);
  assert.match(refusal(() => imageRefs([1, 2], [a], Q)), /^the prompt has 0 image placeholders \(<\|image_pad\|>\) for 1 image/);
  assert.match(refusal(() => imageRefs([...Array(4).fill(7), VE, 2, VS, ...Array(5).fill(7), VE], [a, b], Q)),
    /^the prompt has image tokens that are not whole images for 2 images/, 'a truncate that cut into the first image');
  assert.match(refusal(() => imageRefs([VS, 7, 7, 7, VE, 7, 7], [a], Q)), /^the prompt has 2 image placeholders \(<\|image_pad\|>\) for 1 image/);
  assert.equal(refusal(() => imageRefs([VS, 7, 7, 7, VE, 7, 7, 7], [a], Q)), 'image 1\'s 6 placeholder tokens are not consecutive in the tokenized prompt');
  assert.equal(refusal(() => imageRefs([7, 7, 7], [], Q)),
    'the prompt has 1 image placeholder (<|image_pad|>) for 0 images; do not write <|image_pad|> in the text, or send the image it stands for');
});

test('the preprocessor and the shards\' tower must agree, or the model is refused at start naming both', () => {
  const qwen = parsePreprocessorConfig({ image_processor_type: 'Qwen2VLImageProcessor', patch_size: 14, merge_size: 2 });
  const clip = parsePreprocessorConfig({ size: 336, crop_size: 336 });
  assert.equal(towerMismatch({ imageTokenId: 7, patchSize: 14, mergeSize: 2 }, qwen), null);
  assert.equal(towerMismatch({ imageTokenId: 9, tokensPerImage: 576, imageSize: 336 }, clip), null);
  assert.equal(towerMismatch({ imageTokenId: 7, patchSize: 16, mergeSize: 2 }, qwen),
    'preprocessor_config.json has patch_size 14 and merge_size 2 but the shards\' vision tower has patch size 16 and merge size 2 (config.json\'s vision_config): they must agree');
  assert.match(towerMismatch({ imageTokenId: 7, patchSize: 14, mergeSize: 1 }, qwen)!, /merge_size 2 .* merge size 1/);
  assert.match(towerMismatch({ imageTokenId: 9, tokensPerImage: 576, imageSize: 336 }, qwen)!,
    /describes Qwen2VLImageProcessor \(dynamic resolution\) but the shards report a fixed-size vision tower \(336 x 336 pixels, 576 tokens per image\)/);
  assert.match(towerMismatch({ imageTokenId: 7, patchSize: 14, mergeSize: 2 }, clip)!, /dynamic-resolution vision tower \(patch size 14, merge size 2\) but preprocessor_config\.json describes CLIPImageProcessor/);
  assert.match(towerMismatch({ imageTokenId: 9, tokensPerImage: 576, imageSize: 224 }, clip)!, /gives 336 x 336 pixel images .* takes 224 x 224/);
  assert.match(towerMismatch({ imageTokenId: 9, patchSize: 14 }, qwen)!, /incomplete vision tower/);
});

// Qwen2-VL-7B-Instruct's chat template (chat_template.json), and LLaVA-1.5's (images before the text).
const QWEN_TEMPLATE = "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}" +
  "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}" +
  "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}" +
  "{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}" +
  "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}" +
  "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}" +
  "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}" +
  "<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n" +
  "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
const LLAVA_TEMPLATE = "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}" +
  "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}" +
  "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% endfor %}";
const QWEN_SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|vision_start|>', '<|vision_end|>', '<|image_pad|>', '<|video_pad|>'];

test('TGI markdown images: the image token with the special tokens its chat template writes around it (TGI\'s sequence)', () => {
  assert.equal(imagePlaceholderText('<|image_pad|>', { chatTemplate: QWEN_TEMPLATE, specialTokens: QWEN_SPECIALS }),
    '<|vision_start|><|image_pad|><|vision_end|>');
  // "Picture 1: " (add_vision_id) is text, not part of the wrapper
  assert.equal(imagePlaceholderText('<|image_pad|>', { chatTemplate: QWEN_TEMPLATE.replace('{% if add_vision_id %}', '{% if true %}'), specialTokens: QWEN_SPECIALS }),
    '<|vision_start|><|image_pad|><|vision_end|>');
  assert.equal(imagePlaceholderText('<image>', { chatTemplate: LLAVA_TEMPLATE, specialTokens: ['<s>', '</s>', '<image>'] }), '<image>');
  assert.equal(imagePlaceholderText('<image>', { chatTemplate: null, specialTokens: ['<image>'] }), '<image>');
  // no template: Qwen2-VL's vision tokens in the tokenizer give Qwen2-VL's wrapper, as TGI writes it
  assert.equal(imagePlaceholderText('<|image_pad|>', { chatTemplate: null, specialTokens: QWEN_SPECIALS }), '<|vision_start|><|image_pad|><|vision_end|>');
  assert.equal(imagePlaceholderText('<|image_pad|>', { chatTemplate: '{{ raise_exception("x") }}{% for c in message.content %}{% endfor %}', specialTokens: [] }),
    '<|image_pad|>', 'a template that fails: the bare token');
});

// Gemma 3: the template writes <start_of_image> once per image; Gemma3Processor replaces each with its
// full_image_sequence, "\n\n<start_of_image>" + <image_soft_token> × image_seq_length + "<end_of_image>\n\n".
const BOI = '<start_of_image>', EOI = '<end_of_image>', SOFT = '<image_soft_token>';
const G: PromptVision = { imageToken: SOFT, templateToken: BOI, imagePlaceholder: BOI, imageTokenId: 262144, tokensPerImage: 3, imageSize: 896,
  bidirectionalImages: true, rule: { kind: 'gemma3', boiToken: BOI, eoiToken: EOI } };
// google/gemma-3-4b-it's chat template
const GEMMA3_TEMPLATE = "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- if messages[0]['content'] is string -%}" +
  "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}" +
  "{%- endif -%}{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = \"\" -%}{%- set loop_messages = messages -%}{%- endif -%}" +
  "{%- for message in loop_messages -%}{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}" +
  "{{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}{%- endif -%}" +
  "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}" +
  "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}{%- if message['content'] is string -%}" +
  "{{ message['content'] | trim }}{%- elif message['content'] is iterable -%}{%- for item in message['content'] -%}" +
  "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}" +
  "{%- endfor -%}{%- else -%}{{ raise_exception(\"Invalid content type\") }}{%- endif -%}{{ '<end_of_turn>\n' }}{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}{%- endif -%}";
const GEMMA3_SPECIALS = ['<bos>', '<eos>', '<start_of_turn>', '<end_of_turn>', BOI, EOI, SOFT];

test('Gemma 3: each <start_of_image> becomes Gemma3Processor\'s full image sequence, boi and eoi around the soft tokens, blank lines around that', () => {
  const seq = `\n\n${BOI}${SOFT.repeat(3)}${EOI}\n\n`;
  assert.equal(expandImageTokens(`<start_of_turn>user\n${BOI}Compare${BOI}<end_of_turn>`, [img('x'), img('y')], G),
    `<start_of_turn>user\n${seq}Compare${seq}<end_of_turn>`);
  // the sequence holds the boi token again: each is replaced once, not again inside what replaced it
  assert.equal(countImageTokens(expandImageTokens(BOI, [img('x')], G), BOI), 1);
  assert.equal(expandImageTokens('no image', [], G), 'no image');
  // the ranges are the soft tokens only (boi = 5, eoi = 6, "\n\n" = 108 are text to the model: causal)
  const S = G.imageTokenId;
  assert.deepEqual(imageRefs([2, 108, 5, S, S, S, 6, 108, 7, 108, 5, S, S, S, 6, 108], [img('x'), img('y')], G),
    [{ key: 'x', start: 3, length: 3 }, { key: 'y', start: 11, length: 3 }]);
});

test('Gemma 3: placeholders counted as <start_of_image> (what the template writes), a mismatch a 422 naming it', () => {
  assert.throws(() => expandImageTokens(`a${BOI}b`, [], G), (e: unknown) => e instanceof EngineError && e.kind === 'validation' &&
    e.message === 'the prompt has 1 image placeholder (<start_of_image>) for 0 images; do not write <start_of_image> in the text, or send the image it stands for');
  assert.throws(() => expandImageTokens('a', [img('x')], G), /^EngineError: the prompt has 0 image placeholders \(<start_of_image>\) for 1 image; each image needs exactly one placeholder/);
  // soft tokens written in the text (or cut by `truncate`) do not make whole images
  const S = G.imageTokenId;
  assert.throws(() => imageRefs([5, S, S, S, S, 6], [img('x')], G), /image tokens that are not whole images for 1 image/);
  assert.throws(() => imageRefs([5, S, S, 6], [img('x')], G), /image tokens that are not whole images/);
});

test('Gemma 3: the markdown image placeholder is <start_of_image>, what its template writes for an image part', () => {
  assert.equal(imagePlaceholderText(BOI, { chatTemplate: GEMMA3_TEMPLATE, bosToken: '<bos>', specialTokens: GEMMA3_SPECIALS }), BOI);
  assert.equal(imagePlaceholderText(BOI, { chatTemplate: null, specialTokens: GEMMA3_SPECIALS }), BOI);
});

test('the processor rule: Gemma3Processor for Gemma3ImageProcessor (boi / eoi from tokenizer_config.json, else Gemma 3\'s), else the image token repeated', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-gemma3-rule-'));
  const ids = new Map([[BOI, 5], [EOI, 6], ['<img>', 7], ['</img>', 8]]);
  const tok = { modelDir: dir, tokenId: (t: string) => ids.get(t) ?? null };
  const gemma = parsePreprocessorConfig({ image_processor_type: 'Gemma3ImageProcessor', size: 896 });
  assert.deepEqual(tokenRule(parsePreprocessorConfig({ size: 336, crop_size: 336 }), tok), { kind: 'repeat' });
  assert.deepEqual(tokenRule(parsePreprocessorConfig({ image_processor_type: 'Qwen2VLImageProcessor' }), tok), { kind: 'repeat' });
  assert.deepEqual(tokenRule(gemma, tok), { kind: 'gemma3', boiToken: BOI, eoiToken: EOI });
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ boi_token: '<img>', extra_special_tokens: { eoi_token: { content: '</img>' } } }));
  assert.deepEqual(tokenRule(gemma, tok), { kind: 'gemma3', boiToken: '<img>', eoiToken: '</img>' });
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ extra_special_tokens: { boi_token: '<nope>' } }));
  assert.throws(() => tokenRule(gemma, tok), /^Error: cannot serve images: Gemma3Processor needs the begin-of-image \(boi_token\) token "<nope>", which is not a token of the model's tokenizer$/);
});

test('Gemma 3: the processor\'s size and image_seq_length must be the tower\'s image_size and mm_tokens_per_image', () => {
  const gemma = parsePreprocessorConfig({ image_processor_type: 'Gemma3ImageProcessor', size: { height: 896, width: 896 } });
  assert.ok(gemma.kind === 'gemma3');
  const tower = { imageTokenId: 262144, tokensPerImage: 256, imageSize: 896, bidirectionalImages: true };
  assert.equal(towerMismatch(tower, gemma), null);
  assert.equal(towerMismatch({ ...tower, tokensPerImage: 64 }, gemma),
    'processor_config.json gives Gemma3Processor an image_seq_length of 256 tokens per image but the shards\' model takes 64 (config.json\'s mm_tokens_per_image): they must agree');
  assert.match(towerMismatch({ ...tower, imageSize: 448 }, gemma)!, /gives 896 x 896 pixel images \(its size\) but the shards' vision tower takes 448 x 448/);
  assert.match(towerMismatch({ imageTokenId: 7, patchSize: 14, mergeSize: 2 }, gemma)!, /preprocessor_config\.json describes Gemma3ImageProcessor, which gives every image one fixed size/);
  assert.equal(towerMismatch({ ...tower, tokensPerImage: 64 }, { ...gemma, imageSeqLength: 64 }), null);
});
