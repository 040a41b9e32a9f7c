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
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, type Launched } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';
import { SafetensorsFile } from '../../shard/formats/index.js';
import { decodeRgb, preprocessImage, qwen2VLTokens, readPreprocessorConfig } from '../../coordinator/vision/index.js';
import { refLogSoftmax } from '../helpers/reference-ops.js';
import type { Step } from '../../protocol/index.js';
import type { ScheduledStep } from '../../coordinator/scheduler/index.js';

const ROOT = join(import.meta.dirname, '../../../test/fixtures/vlm');
interface Sequence { ids: number[]; images: string[]; prompt: string; image_tokens: number[]; decode: number[] }
interface ImageInfo { png: string; pixel_values: string; height: number; width: number; image_grid_thw: number[]; tokens: number }
interface Cases {
  architecture: string; sequences: Sequence[]; image_token_id: number; patch_size: number; merge_size: number; image_placeholder: string;
  adapters: { name: string; dir: string }[]; images: Record<string, ImageInfo>;
}
const TOL = 1e-4;
const PREFILL_BUDGET = 8;
const BLOCK = 4;
const TOP_N = 4;

// Each case: Qwen3-VL, and Qwen3-VL-MoE (Qwen3VLMoeForConditionalGeneration: the same processor, its fused experts
// loaded by the shards; nothing else differs on the coordinator's side).
for (const [CASE, ARCH] of [['qwen3_vl', 'Qwen3VLForConditionalGeneration'], ['qwen3_vl_moe', 'Qwen3VLMoeForConditionalGeneration']] as const) {
  const DIR = join(ROOT, CASE);
  if (!existsSync(join(DIR, 'cases.json'))) {
    test(`Qwen3-VL images end to end (${CASE})`, { skip: `no fixture at ${DIR} (test/fixtures/golden/make_qwen3_vl.py)` }, () => {});
  } else {
    describe(`Qwen3-VL images end to end (${CASE})`, () => {
      const cases = JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as Cases;
      const golden = SafetensorsFile.open(join(DIR, 'golden.safetensors'));
      const logits = (key: string) => ({ data: golden.readF32(key), vocab: golden.info(key).shape.at(-1)! });
      const row = (key: string, r: number) => {
        const l = logits(key);
        return refLogSoftmax(l.data.subarray(r * l.vocab, (r + 1) * l.vocab));
      };
      const png = (image: string) => readFileSync(join(DIR, cases.images[image]!.png));
      const dataUrl = (image: string) => `data:image/png;base64,${png(image).toString('base64')}`;
      /** The prompt as TGI markdown images: each image placeholder in turn becomes ![](data: URL of the next image). */
      const markdown = (seq: Pick<Sequence, 'prompt' | 'images'>) => {
        let i = 0;
        return seq.prompt.replaceAll(cases.image_placeholder, () => `![](${dataUrl(seq.images[i++]!)})`);
      };
      /** Image k's range [start, end) in a sequence's ids: the k-th run of image tokens. */
      const ranges = (seq: Sequence) => {
        const out: [number, number][] = [];
        for (let p = 0; p < seq.ids.length; p++) {
          if (seq.ids[p] !== cases.image_token_id) continue;
          if (p > 0 && seq.ids[p - 1] === cases.image_token_id) out.at(-1)![1] = p + 1;
          else out.push([p, p + 1]);
        }
        return out;
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
      /** /generate's prefill of `inputs` with decoder_input_details: each prompt token and its log-prob. */
      const prefill = async (inputs: string, adapter: string | null) => {
        const r = await post('/generate', { inputs, parameters: { max_new_tokens: 1, details: true, decoder_input_details: true, ...adapterParams(adapter) } });
        assert.equal(r.status, 200, r.text);
        return r.json.details.prefill as { id: number; logprob: number | null }[];
      };
      /** got's log-probs of positions first + 1 … first + n against golden rows 0 … n − 1 of `key`: the worst difference. */
      const worst = (got: { id: number; logprob: number | null }[], first: number, key: string, n: number) => {
        let w = 0;
        for (let r = 0; r < n; r++) {
          const pos = first + r + 1;
          const ref = row(key, r)[got[pos]!.id]!;
          const err = Math.abs(got[pos]!.logprob! - ref);
          assert.ok(err <= TOL, `${key} position ${pos}: logprob ${got[pos]!.logprob}, transformers ${ref}`);
          w = Math.max(w, err);
        }
        return w;
      };

      before(async () => {
        const flags = ['--model-id', join(DIR, 'model'), '--port', '0', '--hostname', '127.0.0.1', '--cluster', `q3${CASE.length}${process.pid}`,
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

      test('the fixture\'s pixel values, grids and token counts are what weft\'s preprocessing gives (Qwen3VLProcessor\'s image processor)', async () => {
        assert.equal(cases.architecture, ARCH);
        const config = readPreprocessorConfig(join(DIR, 'model'));
        assert.ok(config.kind === 'qwen2_vl');
        assert.deepEqual([config.patchSize, config.mergeSize, config.imageMean, config.imageStd], [cases.patch_size, cases.merge_size, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]);
        for (const [image, info] of Object.entries(cases.images)) {
          const px = preprocessImage(await decodeRgb(png(image), 1e8, image), config);
          assert.deepEqual([px.height, px.width], [info.height, info.width], `${image}: smart_resize`);
          assert.deepEqual([1, px.height / config.patchSize, px.width / config.patchSize], info.image_grid_thw, `${image}: grid`);
          assert.equal(qwen2VLTokens(px.height, px.width, config.patchSize, config.mergeSize), info.tokens, `${image}: tokens`);
          const want = new Float32Array(new Uint8Array(readFileSync(join(DIR, info.pixel_values))).buffer);
          assert.deepEqual(px.data, want, `${image}: bit for bit`);
        }
      });

      test('the engine and the shards agree on the tower: <|image_pad|>, patch 4 · merge 2; markdown images become the template\'s image sequence', () => {
        const v = server.engine.info.vision;
        assert.ok(v !== undefined, 'the shards report a vision tower for Qwen3VLForConditionalGeneration (ModelInfo.vision)');
        assert.deepEqual([v.imageTokenId, v.patchSize, v.mergeSize, v.tokensPerImage, v.rowBreaks, v.bidirectionalImages, v.imageToken, v.imagePlaceholder],
          [cases.image_token_id, cases.patch_size, cases.merge_size, undefined, undefined, undefined, '<|image_pad|>', cases.image_placeholder]);
        const budgetBelow = Object.values(cases.images).filter((i) => i.tokens > PREFILL_BUDGET);
        assert.ok(budgetBelow.length >= 2, 'the prefill budget is below the larger images');
      });

      for (const adapter of [null, ...cases.adapters.map((a) => a.name)]) {
        test(`chunked prefill (budget ${PREFILL_BUDGET}): chunks end inside the images, the first token equals transformers' (${adapter ?? 'base model'})`, async () => {
          const prefix = adapter ? `adapter/${adapter}` : 'base';
          let w = 0;
          for (const [s, seq] of cases.sequences.entries()) {
            if (seq.images.length === 0) continue;
            steps.length = 0;
            const hits = await cacheHits();
            const r = await post('/generate', { inputs: markdown(seq), parameters: { max_new_tokens: 1, details: true, top_n_tokens: TOP_N,
              ...adapterParams(adapter) } });
            assert.equal(r.status, 200, r.text);
            assert.ok(await cacheHits() - hits <= ranges(seq)[0]![0], 'the images are computed, not found cached');
            const [got] = prefillRanges();
            assert.ok(got !== undefined && got.length >= 3, `${prefix}/seq${s}: chunked (${JSON.stringify(got)})`);
            for (const [from, to] of got!) assert.ok(to - from <= PREFILL_BUDGET, `${prefix}/seq${s}: chunk [${from}, ${to}) within the budget`);
            const inside = got!.filter(([, to]) => ranges(seq).some(([a, b]) => a < to && to < b));
            assert.ok(inside.length > 0, `${prefix}/seq${s}: some chunk ends inside an image (${JSON.stringify(got)})`);
            w = Math.max(w, checkTop(r.json.details, row(`${prefix}/seq${s}`, seq.ids.length - 1), `${prefix}/seq${s}`));
          }
          console.log(`${CASE} ${adapter ?? 'base'} chunked: max abs first-token and top-${TOP_N} logprob error ${w.toExponential(2)}`);
        });

        test(`prefill log-probs equal transformers' (${adapter ?? 'base model'}): Qwen3VLProcessor's tokens, each image its own count, chunked`, async () => {
          const prefix = adapter ? `adapter/${adapter}` : 'base';
          assert.ok(cases.sequences.some((s) => new Set(s.image_tokens).size > 1), 'one prompt has two images of different sizes');
          let w = 0;
          for (const [s, seq] of cases.sequences.entries()) {
            const got = await prefill(markdown(seq), adapter);
            assert.deepEqual(got.map((p) => p.id), seq.ids, `${prefix}/seq${s}: the tokens transformers' processor gives`);
            assert.deepEqual(ranges(seq).map(([a, b]) => b - a), seq.image_tokens, `${prefix}/seq${s}: grid_t·grid_h·grid_w / merge² per image`);
            w = Math.max(w, worst(got, 0, `${prefix}/seq${s}`, seq.ids.length - 1));
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
        const inputs = markdown({ prompt: seq.prompt.slice(0, seq.prompt.indexOf(cases.image_placeholder) + cases.image_placeholder.length), images: seq.images });
        const before = await cacheHits();
        steps.length = 0;
        const r = await post('/generate', { inputs, parameters: { max_new_tokens: 1, details: true, top_n_tokens: TOP_N } });
        assert.equal(r.status, 200, r.text);
        assert.equal(await cacheHits() - before, cached);
        // the prompt ends with <|vision_end|> after the image: the chunk from inside the image runs past its end
        const [got] = prefillRanges();
        assert.equal(got![0]![0], cached, 'the first chunk starts inside the image, at the cached prefix');
        const w = checkTop(r.json.details, row(`base/seq${s}`, end), `seq${s}[:${end + 1}]`);
        console.log(`${CASE} cached prefix inside an image: max abs logprob error ${w.toExponential(2)}`);
      });

      test('text after the images: the golden decode rows (multimodal RoPE positions past the images)', async () => {
        let w = 0;
        for (const [s, seq] of cases.sequences.entries()) {
          if (seq.decode.length === 0) continue;
          // the decode tokens are bytes (ASCII): appended as text, they are the same tokens
          const got = await prefill(markdown(seq) + String.fromCharCode(...seq.decode), null);
          assert.deepEqual(got.map((p) => p.id), [...seq.ids, ...seq.decode]);
          w = Math.max(w, worst(got, seq.ids.length - 1, `base/seq${s}/decode`, seq.decode.length));
        }
        console.log(`${CASE} decode rows: max abs logprob error ${w.toExponential(2)}`);
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
        const ref = row(`base/seq${s}`, seq.ids.length - 1);
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
        const bare = await post('/generate', { inputs: `x${cases.image_placeholder}y`, parameters: { max_new_tokens: 1 } });
        assert.equal(bare.status, 422, bare.text);
        assert.match(bare.json.error, /^the prompt has 1 image placeholder \(<\|image_pad\|>\) for 0 images/);
        const seq = cases.sequences.find((q) => q.images.length === 2)!;
        const got = await prefill(markdown({ ...seq, images: [...seq.images].reverse() }), null);
        assert.equal(got.filter((p) => p.id === cases.image_token_id).length, seq.image_tokens.reduce((a, b) => a + b, 0));
        const firstRun = got.findIndex((p) => p.id === cases.image_token_id);
        let n = 0;
        while (got[firstRun + n]?.id === cases.image_token_id) n++;
        assert.equal(n, seq.image_tokens.at(-1), 'the first placeholder takes the first image\'s count');
      });
    });
  }
}
