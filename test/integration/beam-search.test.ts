// Beam search over HTTP (`use_beam_search`, vLLM's fields) on the golden llama model, base and with an adapter, at
// --num-shard 1 and 2: the n choices are the beams a reference search finds from the model's exact next-token
// log-probs (full-vocabulary logits of every prefix from a local engine), in the same order; nothing is held after.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { LocalEngine } from '../../shard/index.js';
import { beamSearch, type Beam } from '../../coordinator/http/beam-search.js';
import { loadGoldenCase } from '../helpers/golden.js';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';
import { refLogSoftmax } from '../helpers/reference-ops.js';

const c = loadGoldenCase('llama');
const PROMPT = c.sequences[0]!;

/** The beams found from exact logits: each prefix scored whole by a local engine. */
async function reference(adapter: string | null, width: number, steps: number, lengthPenalty: number): Promise<Beam[]> {
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 64, blockSize: 16, adapterSlots: 1, device: 'cpu', dtype: 'float32' });
  try {
    if (adapter) engine.loadAdapter(0, join(c.dir, 'adapters', adapter));
    return await beamSearch({ promptLength: PROMPT.length, width, lengthPenalty, maxNewTokens: steps, eos: new Set([2]), ignoreEos: false,
      expand: async (beams) => Promise.all(beams.map(async (b) => {
        const tokens = [...PROMPT, ...b.tokens];
        const [logits] = await engine.scoreBatch([{ tokens, adapterSlot: adapter ? 0 : -1 }]);
        const last = refLogSoftmax(logits!.subarray((tokens.length - 1) * c.vocab, tokens.length * c.vocab));
        return [...last.keys()].sort((x, y) => last[y]! - last[x]!).slice(0, 2 * width).map((token) => ({ token, logprob: last[token]! }));
      })) });
  } finally {
    engine.dispose();
  }
}

for (const shards of [1, 2]) {
  describe(`beam search, --num-shard ${shards}`, () => {
    let g: GoldenServer;
    before(async () => { g = await startGoldenServer({}, { flags: ['--num-shard', String(shards)] }); });
    after(async () => { await g.close(); });

    for (const [adapter, width, lengthPenalty] of [[null, 3, 1], ['all_r8', 4, 0.5]] as const) {
      test(`${adapter ?? 'base'}, ${width} beams, length_penalty ${lengthPenalty}: the reference search's beams, best first`, async () => {
        const steps = 5;
        const expected = await reference(adapter, width, steps, lengthPenalty);
        const body = { prompt: PROMPT, max_tokens: steps, n: width, use_beam_search: true, length_penalty: lengthPenalty,
          ...(adapter ? { model: adapter, adapter_source: 'local' } : {}) };
        const r = await g.post('/v1/completions', body);
        assert.equal(r.status, 200, r.text);
        const words = (s: string) => s.trim().split(/\s+/).filter(Boolean);
        assert.deepEqual(r.json.choices.map((ch: { text: string }) => words(ch.text)),
          expected.map((b) => words(textOf(b.complete ? b.tokens.slice(0, -1) : b.tokens))));
        assert.deepEqual(r.json.choices.map((ch: { finish_reason: string }) => ch.finish_reason), expected.map((b) => (b.complete ? 'stop' : 'length')));
        assert.equal(r.json.usage.completion_tokens, expected.reduce((n, b) => n + b.tokens.length, 0));
        const stats = g.server.engine.stats();
        assert.equal(stats.usedBlocks, 0);
        assert.equal(stats.running + stats.waiting, 0);
      });
    }
  });
}
