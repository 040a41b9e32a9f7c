// Beam search over HTTP (`use_beam_search`, vLLM's fields) on the golden llama model, base and with an adapter, at
// --num-shard 1 and 2: the n choices are the beams a reference search finds from the model's exact next-token
// log-probs (full-vocabulary logits of every prefix from a local engine), in the same order; nothing is held after.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { beamChoices, choicesOf, referenceBeams } from '../helpers/beam-reference.js';
import { loadGoldenCase } from '../helpers/golden.js';
import { startGoldenServer, type GoldenServer } from '../helpers/golden-server.js';

const c = loadGoldenCase('llama');
const PROMPT = c.sequences[0]!;

for (const shards of [1, 2]) {
  describe(`beam search, --num-shard ${shards}`, () => {
    let g: GoldenServer;
    before(async () => { g = await startGoldenServer({}, { flags: ['--num-shard', String(shards)] }); });
    after(async () => { await g.close(); });

    for (const [adapter, width, lengthPenalty] of [[null, 3, 1], ['all_r8', 4, 0.5]] as const) {
      test(`${adapter ?? 'base'}, ${width} beams, length_penalty ${lengthPenalty}: the reference search's beams, best first`, async () => {
        const steps = 5;
        const expected = await referenceBeams(c, { prompt: PROMPT, adapter, width, steps, lengthPenalty });
        const body = { prompt: PROMPT, max_tokens: steps, n: width, use_beam_search: true, length_penalty: lengthPenalty,
          ...(adapter ? { model: adapter, adapter_source: 'local' } : {}) };
        const r = await g.post('/v1/completions', body);
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(choicesOf(r.json), beamChoices(expected));
        assert.equal(r.json.usage.completion_tokens, expected.reduce((n, b) => n + b.tokens.length, 0));
        const stats = g.server.engine.stats();
        assert.equal(stats.usedBlocks, 0);
        assert.equal(stats.running + stats.waiting, 0);
      });
    }
  });
}
