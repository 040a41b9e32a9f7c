// Granite 4.0 H (GraniteMoeHybridForCausalLM: Mamba-2 and attention layers) served over HTTP: base and adapter
// requests batched together, prompts split over steps (chunked prefill carries each sequence's recurrent state),
// at --num-shard 1, 2 and 4, generate transformers' greedy tokens; prefix caching and drafts are off for it; sequences
// preempted by a tiny KV cache (recomputed in fresh state slots) give the same output; --device cuda is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { textOf, startGoldenServer, type GoldenServer } from '../helpers/golden-server.js';
import { goldenKey } from '../helpers/golden-server.js';
import { loadGoldenCase } from '../helpers/golden.js';
import { loadModel, readModelSpec } from '../../shard/index.js';

const CASE = 'granitemoehybrid';

/** Every sequence under the base and every adapter, at once; each answer's tokens equal the golden greedy ones up to
 * the first step whose top two log-probs are within 1e-3 (where float rounding may pick either). */
async function greedyMatches(g: GoldenServer, steps = 6): Promise<number> {
  const { c } = g;
  let compared = 0;
  const jobs = c.sequences.flatMap((seq, s) => [null, ...c.adapters.map((a) => a.name)].map(async (a) => {
    const parameters: Record<string, unknown> = { max_new_tokens: steps, details: true, top_n_tokens: 2, ignore_eos_token: true };
    if (a) Object.assign(parameters, { adapter_id: a, adapter_source: 'local' });
    const r = await g.post('/generate', { inputs: textOf(seq), parameters });
    assert.equal(r.status, 200, r.text);
    const key = goldenKey(a, s), want = c.greedy[key]!;
    const tokens = r.json.details.tokens as { id: number; top_tokens?: { id: number; logprob: number }[] }[];
    for (let i = 0; i < Math.min(steps, want.length); i++) {
      assert.equal(tokens[i]!.id, want[i], `${key}: token ${i}`);
      compared++;
      const top = tokens[i]!.top_tokens ?? [];
      if (top.length === 2 && Math.abs(top[0]!.logprob - top[1]!.logprob) < 1e-3) break;  // a near tie: stop here
    }
  }));
  await Promise.all(jobs);
  return compared;
}

for (const numShard of [1, 2, 4]) {
  test(`--num-shard ${numShard}: mixed adapters, chunked prefill, greedy tokens as transformers; no prefix caching or drafts`, async () => {
    // 5 prompt tokens per step: the 7- and 12-token prompts are computed over 2 and 3 steps.
    const g = await startGoldenServer({ numShard, maxBatchPrefillTokens: 5, speculate: 4 }, { caseName: CASE });
    try {
      const info = await fetch(`${g.url}/info`).then((r) => r.json() as Promise<Record<string, unknown>>);
      assert.equal(info.prefix_caching, false);
      assert.equal(info.speculate, 0);
      const compared = await greedyMatches(g);
      assert.ok(compared >= 20, `only ${compared} tokens compared`);
      // The same prompt twice in a row (a cached prefix if caching were on) still generates the golden tokens.
      assert.ok(await greedyMatches(g) >= 20);
    } finally {
      await g.close();
    }
  });
}

test('sequences preempted by a tiny KV cache are recomputed from their tokens and generate the same', async () => {
  const g = await startGoldenServer({}, { caseName: CASE, flags: ['--block-size', '4', '--kv-cache-blocks', '6'] });
  try {
    assert.ok(await greedyMatches(g) >= 20);
    const metrics = await fetch(`${g.url}/metrics`).then((r) => r.text());
    const preempted = Number(/^weft_preemptions_total(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1] ?? 0);
    assert.ok(preempted > 0, 'no sequence was preempted: the test does not test preemption');
  } finally {
    await g.close();
  }
});

test('a shard refuses to load a hybrid Mamba model on --device cuda, by name', () => {
  // (weft launch refuses it before starting shards; on a machine without a GPU its CUDA check comes first.)
  const c = loadGoldenCase(CASE);
  assert.throws(() => loadModel(c.modelDir, readModelSpec(c.modelDir), { rank: 0, world: 1, numBlocks: 8, blockSize: 4, adapterSlots: 1,
    device: 'cuda' }), /granitemoehybrid: hybrid Mamba-2 models run on --device cpu only/);
});
