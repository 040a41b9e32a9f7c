// Chunked prefill and async-scheduling tokens on a real shard step runner (LocalEngine over the golden llama,
// CPU backend): a prompt sent as a NewSequence with `pending` tokens and then PrefillChunks samples nothing
// until its last chunk, and then the same token, logprob and following greedy/seeded tokens as the prompt
// sent whole; decode steps fed SAMPLED_LAST_STEP continue from the shard's own samples. A NewSequence whose
// leading blocks are another sequence's (prefix caching, `cached`) computes only the rest, with the same result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROTOCOL_VERSION, SAMPLED_LAST_STEP, type NewSequence, type SeqOutput, type Step } from '../../protocol/index.js';
import { LocalEngine } from '../../shard/index.js';
import { loadGoldenCase } from '../helpers/golden.js';

const BS = 4;
const SAMPLING = { temperature: 0.8, topK: 30, topP: 0.95, typicalP: 1, repetitionPenalty: 1.2, doSample: true, seed: 11 };
let stepId = 0;
const step = (p: Partial<Step>): Step => ({ v: PROTOCOL_VERSION, type: 'step', stepId: ++stepId, newSeqs: [], running: [], finished: [], ...p });

function newSeq(seqId: string, tokens: number[], table: number[], pending?: number, cached?: number): NewSequence {
  return { seqId, adapterSlot: 0, tokens, blockTable: table, sampling: SAMPLING, generated: [], logits: 'none',
    promptLogprobs: false, topN: 0, ...(pending ? { pending } : {}), ...(cached ? { cached } : {}) };
}

test('a prompt prefilled in three chunks samples exactly what the whole prompt samples, then decodes the same', async () => {
  const c = loadGoldenCase('llama');
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 64, blockSize: BS, adapterSlots: 1 });
  try {
    engine.loadAdapter(0, c.adapters[0].dir);
    const prompt = [...c.sequences[1], ...c.sequences[0]]; // 19 tokens
    const tables = { whole: Array.from({ length: 8 }, (_, i) => i), chunked: Array.from({ length: 8 }, (_, i) => 8 + i) };
    const whole: SeqOutput[] = [];
    whole.push(...(await engine.step(step({ newSeqs: [newSeq('whole', prompt, tables.whole)] }))));

    const chunked: SeqOutput[] = [];
    assert.deepEqual(await engine.step(step({ newSeqs: [newSeq('chunked', prompt.slice(0, 6), tables.chunked, 13)] })), [],
      'a step with only a pending prefill samples nothing');
    assert.deepEqual(await engine.step(step({ chunks: [{ seqId: 'chunked', tokens: prompt.slice(6, 15), pending: 4 }] })), []);
    chunked.push(...(await engine.step(step({ chunks: [{ seqId: 'chunked', tokens: prompt.slice(15), pending: 0 }] }))));
    assert.equal(chunked.length, 1);
    assert.equal(chunked[0]!.token, whole[0]!.token);
    assert.ok(Math.abs(chunked[0]!.logprob - whole[0]!.logprob) < 1e-5, `${chunked[0]!.logprob} vs ${whole[0]!.logprob}`);

    // Decode both: 'whole' fed the tokens explicitly, 'chunked' with SAMPLED_LAST_STEP (the shard's own sample).
    for (let i = 0; i < 5; i++) {
      const out = await engine.step(step({ running: [
        { seqId: 'whole', token: whole.at(-1)!.token, newBlocks: [] },
        { seqId: 'chunked', token: SAMPLED_LAST_STEP, newBlocks: [] },
      ] }));
      whole.push(out.find((o) => o.seqId === 'whole')!);
      chunked.push(out.find((o) => o.seqId === 'chunked')!);
    }
    assert.deepEqual(chunked.map((o) => o.token), whole.map((o) => o.token));

    await assert.rejects(engine.step(step({ chunks: [{ seqId: 'whole', tokens: [1, 2], pending: 0 }] })), /awaits 0/,
      'a chunk for a sequence whose prefill is complete is refused');
  } finally {
    engine.dispose();
  }
});

test('a prompt whose first blocks are cached (another sequence computed them) samples what the whole prompt samples', async () => {
  const c = loadGoldenCase('llama');
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 64, blockSize: BS, adapterSlots: 1 });
  try {
    engine.loadAdapter(0, c.adapters[0].dir);
    const prompt = [...c.sequences[1], ...c.sequences[0]]; // 19 tokens
    const owner = Array.from({ length: 5 }, (_, i) => i);
    const whole = await engine.step(step({ newSeqs: [newSeq('owner', prompt, owner)] }));
    // 12 tokens (3 blocks) shared with 'owner'; the 7 others computed into blocks of its own, in a later step
    // next to 'owner' decoding, and chunked too.
    const table = [...owner.slice(0, 3), 20, 21];
    assert.deepEqual(await engine.step(step({ newSeqs: [newSeq('reader', prompt.slice(0, 15), table, 4, 12)],
      running: [{ seqId: 'owner', token: whole[0]!.token, newBlocks: [] }] })).then((o) => o.map((x) => x.seqId)), ['owner']);
    const out = await engine.step(step({ chunks: [{ seqId: 'reader', tokens: prompt.slice(15), pending: 0 }] }));
    assert.equal(out[0]!.token, whole[0]!.token);
    assert.ok(Math.abs(out[0]!.logprob - whole[0]!.logprob) < 1e-5, `${out[0]!.logprob} vs ${whole[0]!.logprob}`);

    for (const [cached, why] of [[6, /whole blocks/], [20, /fewer than/]] as const) {
      await assert.rejects(engine.step(step({ newSeqs: [newSeq(`bad${cached}`, prompt, table, 0, cached)] })), why);
    }
  } finally {
    engine.dispose();
  }
});
