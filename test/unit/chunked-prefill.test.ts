// Chunked prefill and async-scheduling tokens on a real shard step runner (LocalEngine over the golden llama,
// CPU backend): a prompt sent as a NewSequence with `pending` tokens and then PrefillChunks samples nothing
// until its last chunk, and then the same token, logprob and following greedy/seeded tokens as the prompt
// sent whole; decode steps fed SAMPLED_LAST_STEP continue from the shard's own samples.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROTOCOL_VERSION, SAMPLED_LAST_STEP, type NewSequence, type SeqOutput, type Step } from '../../protocol/index.js';
import { LocalEngine } from '../../shard/index.js';
import { loadGoldenCase } from '../helpers/golden.js';

const BS = 4;
const SAMPLING = { temperature: 0.8, topK: 30, topP: 0.95, typicalP: 1, repetitionPenalty: 1.2, doSample: true, seed: 11 };
let stepId = 0;
const step = (p: Partial<Step>): Step => ({ v: PROTOCOL_VERSION, type: 'step', stepId: ++stepId, newSeqs: [], running: [], finished: [], ...p });

function newSeq(seqId: string, tokens: number[], table: number[], pending?: number): NewSequence {
  return { seqId, adapterSlot: 0, tokens, blockTable: table, sampling: SAMPLING, generated: [], logits: 'none',
    promptLogprobs: false, topN: 0, ...(pending ? { pending } : {}) };
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
