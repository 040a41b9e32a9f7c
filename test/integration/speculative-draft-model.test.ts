// Speculative decoding with a draft model (--speculative-model): the served output is exactly what the server gives
// without it, for greedy and seeded sampled requests on the base model and on adapters, at --num-shard 2 (rank 0
// drafts and the other rank verifies the same rows); the draft here is the 4-bit AWQ quantization of the served
// model (the golden case llama_awq), so some drafts are right and some are not. A draft model whose vocabulary
// does not fit the served model's is refused before any shard starts.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GOLDEN_ROOT } from '../helpers/golden.js';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';

const DRAFT = join(GOLDEN_ROOT, 'llama_awq', 'model');
const counter = (metrics: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);

describe('a draft model changes how many steps, never the output (TP=2)', () => {
  let plain: GoldenServer;
  let draft: GoldenServer;
  before(async () => {
    plain = await startGoldenServer({ numShard: 2, blockSize: 4 });
    draft = await startGoldenServer({ numShard: 2, blockSize: 4 }, { flags: ['--speculative-model', DRAFT] });
  });
  after(async () => { await plain?.close(); await draft?.close(); });

  test('same tokens and texts for 12 concurrent mixed requests; drafts proposed and some accepted; no KV block held', async () => {
    assert.equal(((await (await fetch(`${draft.url}/info`)).json()) as { speculate: number }).speculate, 4, 'a draft model drafts 4 by default');
    const reqs = Array.from({ length: 12 }, (_, k) => {
      const parameters: Record<string, unknown> = { max_new_tokens: 10 + ((k * 7) % 25), details: true, ignore_eos_token: true };
      if (k % 3 === 1) Object.assign(parameters, { do_sample: true, seed: 100 + k, temperature: 0.7, top_k: 20 });
      if (k % 4 === 3) Object.assign(parameters, { adapter_id: 'all_r8', adapter_source: 'local' });
      const seq = plain.c.sequences[k % 3]!;
      return { inputs: textOf(seq.slice(0, 2 + (k % seq.length))), parameters };
    });
    const [one, two] = await Promise.all([plain, draft].map((g) => Promise.all(reqs.map((r) => g.post('/generate', r)))));
    one.forEach((r, k) => {
      assert.equal(r.status, 200, r.text);
      assert.equal(two[k]!.status, 200, two[k]!.text);
      const ids = (x: typeof r) => x.json.details.tokens.map((t: { id: number }) => t.id);
      assert.deepEqual(ids(two[k]!), ids(r), `request ${k}`);
      assert.equal(two[k]!.json.generated_text, r.json.generated_text, `request ${k}`);
    });
    const m = await (await fetch(`${draft.url}/metrics`)).text();
    const drafted = counter(m, 'weft_spec_draft_tokens_total'), accepted = counter(m, 'weft_spec_accepted_tokens_total');
    console.log(`draft model: ${accepted} of ${drafted} drafts accepted`);
    assert.ok(drafted > 50 && accepted > 10 && accepted < drafted, `${accepted} of ${drafted} drafts accepted`);
    assert.match(m, /^weft_kv_blocks_used 0$/m);
  });
});

test('a draft model with a larger vocabulary than the served model is refused at launch', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'weft-draft-')), 'draft');
  cpSync(DRAFT, dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, vocab_size: 1024 }));
  await assert.rejects(startGoldenServer({}, { flags: ['--speculative-model', dir] }),
    /--speculative-model .*draft: its vocabulary \(1024\) is larger than the served model's \(512\); a draft model must use the served model's tokenizer/);
});
