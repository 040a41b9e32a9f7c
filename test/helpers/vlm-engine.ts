// Driving an engine (LocalEngine or a tensor-parallel shard cluster) through the vision-language golden cases of
// ./vlm.ts: steps, images, the checks that every model's conformance test makes alike.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalEngine } from '../../shard/index.js';
import { PROTOCOL_VERSION, bytesToFloat32, encode, imageDataSubject, type NewSequence, type SeqOutput, type Step } from '../../protocol/index.js';
import { refLogSoftmax } from './reference-ops.js';
import { maxAbsDiff } from './golden.js';
import { startShardCluster, type TestCluster } from './shard-cluster.js';
import { vlmGoldenKey, vlmImageMessages, vlmNewSeq, type VlmCase, type VlmSequence } from './vlm.js';

/** A step message maker with its own step ids (1, 2, ...). */
export function stepMaker(): (o: Partial<Step>) => Step {
  let stepId = 1;
  return (o) => ({ v: PROTOCOL_VERSION, type: 'step', stepId: stepId++, newSeqs: [], running: [], finished: [], ...o });
}

/** The case's slots: -1 (base), then one per adapter. */
export const allSlots = (c: VlmCase): number[] => [-1, ...c.adapters.map((_, i) => i)];

/** Every image of the case, put into the engine. */
export function putCaseImages(engine: LocalEngine, c: VlmCase): void {
  for (const image of c.imageNames) for (const m of vlmImageMessages(c, image)) engine.putImage(m);
}

type EngineOptions = Parameters<typeof LocalEngine.open>[1];

/** An engine on the case's model (4 adapter slots, a 400 ms wait for a missing image unless `options` say other)
 * with the case's adapters loaded in slots 0, 1, ... and its images put. */
export function openCaseEngine(c: VlmCase, options: Omit<EngineOptions, 'adapterSlots'> & Partial<EngineOptions>): LocalEngine {
  const engine = LocalEngine.open(c.modelDir, { adapterSlots: 4, imageWaitMs: 400, ...options });
  c.adapters.forEach((a, i) => engine.loadAdapter(i, a.dir));
  putCaseImages(engine, c);
  return engine;
}

/** Every (sequence, slot) pair of the case, each with its own blocks, for one step (adapters unsorted: every other
 * sequence lists its slots backwards); the golden key of each. */
export function mixedBatch<S extends VlmSequence>(c: VlmCase<S>, blockSize: number): { seqs: NewSequence[]; keys: string[] } {
  const seqs: NewSequence[] = [], keys: string[] = [];
  let block = 0;
  c.sequences.forEach((_, s) => {
    const slots = allSlots(c);
    if (s % 2 === 1) slots.reverse();
    for (const slot of slots) {
      const ns = vlmNewSeq(c, s, { seqId: `mix-${s}-${slot}`, slot, firstBlock: block, blockSize });
      block += ns.blockTable.length;
      seqs.push(ns);
      keys.push(vlmGoldenKey(c, s, slot));
    }
  });
  return { seqs, keys };
}

/** A sampled output's top log-probs against the golden row's log-softmax: the worst error. */
export function topLogprobError(out: SeqOutput, row: Float32Array, what: string): number {
  const want = refLogSoftmax(row);
  assert.ok(out.top.length > 0, `${what}: no alternatives`);
  let worst = 0;
  for (const alt of out.top) worst = Math.max(worst, Math.abs(alt.logprob - want[alt.token]!));
  return worst;
}

/** topLogprobError, asserted within `tol`. */
export function checkTop(out: SeqOutput, row: Float32Array, what: string, tol: number): number {
  const worst = topLogprobError(out, row, what);
  assert.ok(worst <= tol, `${what}: top log-prob error ${worst}`);
  return worst;
}

/** checkTop at `tol` of outputs that must carry no error (asserted first, naming it). */
export const checkTopOf = (tol: number) => (out: SeqOutput, row: Float32Array, what: string): number => {
  assert.equal(out.error, undefined, `${what}: ${out.error}`);
  return checkTop(out, row, what, tol);
};

/** Each output's logits against the golden rows of its key, asserted within `tol` (the message: `label(key)`, then the
 * error); the worst error. */
export function checkLogits(c: VlmCase, outs: SeqOutput[], keys: string[], tol: number, label: (key: string) => string): number {
  let worst = 0;
  outs.forEach((o, k) => {
    const e = maxAbsDiff(bytesToFloat32(o.logits!), c.logits(keys[k]!));
    assert.ok(e <= tol, `${label(keys[k]!)}: max abs error ${e}`);
    worst = Math.max(worst, e);
  });
  return worst;
}

type StepFn = (o: Partial<Step>) => Step;

/** Every sequence under every slot, each alone in a step: the logits against the golden rows; the worst error. */
export async function checkEachAlone<S extends VlmSequence>(engine: LocalEngine, step: StepFn, c: VlmCase<S>, blockSize: number,
  tol: number): Promise<number> {
  let worst = 0;
  for (let s = 0; s < c.sequences.length; s++) {
    for (const slot of allSlots(c)) {
      const ns = vlmNewSeq(c, s, { seqId: `one-${s}-${slot}`, slot, firstBlock: 0, blockSize });
      const [out] = await engine.step(step({ newSeqs: [ns] }));
      await engine.step(step({ finished: [ns.seqId] }));
      assert.equal(out!.error, undefined, out!.error);
      worst = Math.max(worst, checkLogits(c, [out!], [vlmGoldenKey(c, s, slot)], tol, (key) => key));
    }
  }
  return worst;
}

/** The mixed batch of the case in one step: as many outputs as sequences, each within `tol`; the worst error. */
export async function checkMixedBatch<S extends VlmSequence>(engine: LocalEngine, step: StepFn, c: VlmCase<S>, blockSize: number,
  tol: number): Promise<number> {
  const { seqs, keys } = mixedBatch(c, blockSize);
  const outs = await engine.step(step({ newSeqs: seqs }));
  await engine.step(step({ finished: seqs.map((s) => s.seqId) }));
  assert.equal(outs.length, keys.length);
  return checkLogits(c, outs, keys, tol, (key) => `${key} in the mixed batch`);
}

/** Sends `ns`'s prompt in chunks ending at each of `cuts` (the last: where the prompt ends, `pending` counted to it):
 * the first step outputs nothing, and so does every chunk but the last where `quietChunks`; the last chunk's outputs. */
export async function prefillInChunks(engine: LocalEngine, step: StepFn, ns: NewSequence, cuts: number[],
  { quietChunks = true } = {}): Promise<SeqOutput[]> {
  const end = cuts.at(-1)!;
  assert.deepEqual(await engine.step(step({ newSeqs: [{ ...ns, tokens: ns.tokens.slice(0, cuts[0]), pending: end - cuts[0]! }] })), []);
  let outs: SeqOutput[] = [];
  for (let k = 1; k < cuts.length; k++) {
    outs = await engine.step(step({ chunks: [{ seqId: ns.seqId, tokens: ns.tokens.slice(cuts[k - 1], cuts[k]), pending: end - cuts[k]! }] }));
    if (quietChunks && k < cuts.length - 1) assert.deepEqual(outs, []);
  }
  return outs;
}

/** Sequence `s` under every slot: its prompt in chunks ending at each of `cuts` and then at its end, then its decode
 * tokens a step each; the top log-probs (checkTopOf `tol`) after the last chunk against the prompt's last golden row,
 * after each decode step against the decode rows; the worst error. */
export async function checkChunksThenDecode<S extends VlmSequence & { decode: number[] }>(engine: LocalEngine, step: StepFn,
  c: VlmCase<S>, s: number, cuts: number[], blockSize: number, tol: number): Promise<number> {
  const seq = c.sequences[s]!, n = seq.ids.length, check = checkTopOf(tol);
  let worst = 0;
  for (const slot of allSlots(c)) {
    const golden = c.logits(vlmGoldenKey(c, s, slot)), dec = c.logits(vlmGoldenKey(c, s, slot, true));
    const full = vlmNewSeq(c, s, { seqId: `chunk-${slot}`, slot, firstBlock: 0, blockSize, logits: 'none', topN: 5 });
    const [last] = await prefillInChunks(engine, step, full, [...cuts, n]);
    worst = Math.max(worst, check(last!, golden.subarray((n - 1) * c.vocab, n * c.vocab), `${vlmGoldenKey(c, s, slot)} after chunks`));
    for (const [i, tok] of seq.decode.entries()) {
      const [out] = await engine.step(step({ running: [{ seqId: full.seqId, token: tok, newBlocks: [] }] }));
      worst = Math.max(worst, check(out!, dec.subarray((i + 1) * c.vocab, (i + 2) * c.vocab), `${vlmGoldenKey(c, s, slot, true)} step ${i}`));
    }
    await engine.step(step({ finished: [full.seqId] }));
  }
  return worst;
}

/** `owner` again under another id with its first `cached` tokens cached: the owner's blocks for them, new blocks
 * (`blockOffset` further on) for the rest. */
export function withCachedPrefix(owner: NewSequence, seqId: string, cached: number, blockSize: number, blockOffset: number): NewSequence {
  const keep = cached / blockSize;
  return { ...owner, seqId, cached,
    blockTable: [...owner.blockTable.slice(0, keep), ...owner.blockTable.slice(keep).map((b) => b + blockOffset)] };
}

/** Sequence `s` under every slot, whole, then again with its first `cached` tokens (each of `prefixes`, whole blocks)
 * taken from the whole one's cache: the same next-token top log-probs (checkTopOf `tol`) as the golden row. */
export async function checkCachedPrefixes(engine: LocalEngine, step: StepFn, c: VlmCase, s: number, prefixes: number[],
  blockSize: number, tol: number): Promise<void> {
  const seq = c.sequences[s]!, check = checkTopOf(tol);
  for (const slot of allSlots(c)) {
    const golden = c.logits(vlmGoldenKey(c, s, slot));
    const owner = vlmNewSeq(c, s, { seqId: `own-${slot}`, slot, firstBlock: 0, blockSize, logits: 'none', topN: 5 });
    const [o] = await engine.step(step({ newSeqs: [owner] }));
    const lastRow = golden.subarray((seq.ids.length - 1) * c.vocab);
    check(o!, lastRow, `${vlmGoldenKey(c, s, slot)} whole`);
    for (const cached of prefixes) {
      const reuse = withCachedPrefix(owner, `reuse-${slot}-${cached}`, cached, blockSize, 100);
      const [r] = await engine.step(step({ newSeqs: [reuse] }));
      check(r!, lastRow, `${vlmGoldenKey(c, s, slot)} cached ${cached}`);
      await engine.step(step({ finished: [reuse.seqId] }));
    }
    await engine.step(step({ finished: [owner.seqId] }));
  }
}

/** Sequence 1 under the base and the last adapter (from block `adapterBlock`) on the model of `modelDir` (the case's
 * in another checkpoint layout): the same logits as the golden rows. */
export async function checkOtherLayout(modelDir: string, step: StepFn, c: VlmCase, blockSize: number, tol: number,
  adapterBlock: number): Promise<void> {
  const other = LocalEngine.open(modelDir, { numBlocks: 64, blockSize, adapterSlots: 2 });
  try {
    other.loadAdapter(0, c.adapters.at(-1)!.dir);
    putCaseImages(other, c);
    const seqs = [-1, 0].map((slot) => vlmNewSeq(c, 1, { seqId: `l-${slot}`, slot, firstBlock: slot < 0 ? 0 : adapterBlock, blockSize }));
    const outs = await other.step(step({ newSeqs: seqs }));
    const keys = ['base/seq1', `adapter/${c.adapters.at(-1)!.name}/seq1`];
    outs.forEach((o, k) => assert.ok(maxAbsDiff(bytesToFloat32(o.logits!), c.logits(keys[k]!)) <= tol, keys[k]));
  } finally {
    other.dispose();
  }
}

/** A shard cluster of `world` ranks on the case's model with its adapters loaded and its images published, for
 * `run`; stopped after. */
export async function withCaseCluster(c: VlmCase, world: number, kvBlocks: number, run: (cluster: TestCluster) => Promise<void>): Promise<void> {
  const cluster = await startShardCluster({ modelDir: c.modelDir, world, kvBlocks });
  try {
    // The cluster's name, from its shards' heartbeat subjects (weft.<cluster>.shard.<rank>.heartbeat).
    const name = await new Promise<string>((resolve) => {
      const sub = cluster.nc.subscribe('weft.*.shard.*.heartbeat', { max: 1, callback: (_e, m) => resolve(m.subject.split('.')[1]!) });
      void sub;
    });
    for (let i = 0; i < c.adapters.length; i++) await cluster.group.loadAdapter(c.adapters[i]!.name, i, { dir: c.adapters[i]!.dir });
    for (const image of c.imageNames) for (const m of vlmImageMessages(c, image)) cluster.nc.publish(imageDataSubject(name), encode(m));
    await cluster.nc.flush();
    await run(cluster);
  } finally {
    await cluster.stop();
  }
}

/** The case's mixed batch in one step of the cluster: no step error, each output's logits within `tol` (the message:
 * `label(key)`); its sequences (still running) and the worst error. */
export async function checkClusterMixedBatch<S extends VlmSequence>(cluster: TestCluster, step: StepFn, c: VlmCase<S>,
  blockSize: number, tol: number, label: (key: string) => string): Promise<{ seqs: NewSequence[]; worst: number }> {
  const { seqs, keys } = mixedBatch(c, blockSize);
  const r = await cluster.group.step(step({ newSeqs: seqs }));
  assert.equal(r.error, undefined);
  return { seqs, worst: checkLogits(c, r.outputs, keys, tol, label) };
}

type DecodeSequence = VlmSequence & { decode: number[] };

/** Every sequence with decode tokens under every slot (top `topN`, blocks one after another) in one step, then their
 * decode tokens a step each, every sequence in one step: each step's top log-probs (checkTop `tol`) against its decode
 * row; the steps and the worst error. */
export async function checkDecodeBatch<S extends DecodeSequence>(engine: LocalEngine, step: StepFn, c: VlmCase<S>,
  blockSize: number, topN: number, tol: number): Promise<{ steps: number; worst: number }> {
  const withDecode = c.sequences.map((q, s) => ({ q, s })).filter(({ q }) => q.decode.length > 0);
  const seqs: NewSequence[] = [], keys: string[] = [];
  let block = 0;
  for (const { s } of withDecode) {
    for (const slot of allSlots(c)) {
      const ns = vlmNewSeq(c, s, { seqId: `dec-${s}-${slot}`, slot, firstBlock: block, blockSize, logits: 'none', topN });
      block += ns.blockTable.length;
      seqs.push(ns);
      keys.push(vlmGoldenKey(c, s, slot, true));
    }
  }
  let worst = 0;
  let outs = await engine.step(step({ newSeqs: seqs }));
  const steps = withDecode[0]!.q.decode.length;
  for (let d = 0; d <= steps; d++) {
    outs.forEach((o, k) => {
      worst = Math.max(worst, checkTop(o, c.logits(keys[k]!).subarray(d * c.vocab, (d + 1) * c.vocab), `${keys[k]} step ${d}`, tol));
    });
    if (d === steps) break;
    const decode = (k: number): number => c.sequences[Number(/seq(\d+)/.exec(keys[k]!)![1])]!.decode[d]!;
    outs = await engine.step(step({ running: seqs.map((ns, k) => ({ seqId: ns.seqId, token: decode(k), newBlocks: [] })) }));
  }
  await engine.step(step({ finished: seqs.map((s) => s.seqId) }));
  return { steps, worst };
}

/** Sequence `s` under every slot (top `topN`): its prompt in chunks ending at each of `cuts` (the last: its end), then
 * its decode tokens a step each; the top log-probs (checkTop `tol`) after the chunks and after each decode step against
 * the decode rows (the message after the chunks: `<key> after chunks<suffix>`). */
export async function checkChunksThenDecodeRows<S extends DecodeSequence>(engine: LocalEngine, step: StepFn, c: VlmCase<S>,
  s: number, cuts: number[], blockSize: number, topN: number, tol: number, suffix = ''): Promise<void> {
  const seq = c.sequences[s]!;
  for (const slot of allSlots(c)) {
    const golden = c.logits(vlmGoldenKey(c, s, slot, true));
    const full = vlmNewSeq(c, s, { seqId: `chunk-${slot}`, slot, firstBlock: 0, blockSize, logits: 'none', topN });
    const [last] = await prefillInChunks(engine, step, full, cuts);
    checkTop(last!, golden.subarray(0, c.vocab), `${vlmGoldenKey(c, s, slot)} after chunks${suffix}`, tol);
    for (let d = 0; d < seq.decode.length; d++) {
      const [out] = await engine.step(step({ running: [{ seqId: full.seqId, token: seq.decode[d]!, newBlocks: [] }] }));
      checkTop(out!, golden.subarray((d + 1) * c.vocab, (d + 2) * c.vocab), `${vlmGoldenKey(c, s, slot)} decode ${d}`, tol);
    }
    await engine.step(step({ finished: [full.seqId] }));
  }
}

/** Sequence `s` under every slot, whole (top `topN`), then again with its first `cached` tokens (each of `prefixes`,
 * whole blocks) taken from the whole one's cache (new blocks 200 further on), then one decode step: the top log-probs
 * (checkTop `tol`) against the decode rows. */
export async function checkCachedPrefixesThenDecode<S extends DecodeSequence>(engine: LocalEngine, step: StepFn, c: VlmCase<S>,
  s: number, prefixes: number[], blockSize: number, topN: number, tol: number): Promise<void> {
  const seq = c.sequences[s]!;
  for (const slot of allSlots(c)) {
    const golden = c.logits(vlmGoldenKey(c, s, slot, true));
    const owner = vlmNewSeq(c, s, { seqId: `own-${slot}`, slot, firstBlock: 0, blockSize, logits: 'none', topN });
    const [o] = await engine.step(step({ newSeqs: [owner] }));
    checkTop(o!, golden.subarray(0, c.vocab), `${vlmGoldenKey(c, s, slot)} whole`, tol);
    for (const cached of prefixes) {
      const reuse = withCachedPrefix(owner, `reuse-${slot}-${cached}`, cached, blockSize, 200);
      const [r] = await engine.step(step({ newSeqs: [reuse] }));
      assert.equal(r!.error, undefined, r!.error);
      checkTop(r!, golden.subarray(0, c.vocab), `${vlmGoldenKey(c, s, slot)} cached ${cached}`, tol);
      const [d] = await engine.step(step({ running: [{ seqId: reuse.seqId, token: seq.decode[0]!, newBlocks: [] }] }));
      checkTop(d!, golden.subarray(c.vocab, 2 * c.vocab), `${vlmGoldenKey(c, s, slot)} cached ${cached}, decode`, tol);
      await engine.step(step({ finished: [reuse.seqId] }));
    }
    await engine.step(step({ finished: [owner.seqId] }));
  }
}

/** On a shard cluster of `world` ranks (withCaseCluster, 512 KV blocks): the case's mixed batch (checkClusterMixedBatch),
 * then sequence 1 under the last adapter (blocks from 400, top `topN`) fed its decode tokens, each step's top log-probs
 * (checkTop `tol`) against its decode rows; logs the batch's worst logit error. `name`: the case's, in the messages. */
export async function checkClusterDecode<S extends DecodeSequence>(c: VlmCase<S>, name: string, world: number, step: StepFn,
  blockSize: number, topN: number, tol: number): Promise<void> {
  await withCaseCluster(c, world, 512, async (cluster) => {
    const { seqs, worst } = await checkClusterMixedBatch(cluster, step, c, blockSize, tol, (key) => `TP=${world} ${name} ${key}`);
    // Decode: sequence 1 (the Qwen cases': two images) under the last (the vision) adapter, fed its decode tokens.
    const s = 1, slot = c.adapters.length - 1, seq = c.sequences[s]!;
    const ns = vlmNewSeq(c, s, { seqId: 'tp-dec', slot, firstBlock: 400, blockSize, logits: 'none', topN });
    const golden = c.logits(vlmGoldenKey(c, s, slot, true));
    let out = (await cluster.group.step(step({ newSeqs: [ns], finished: seqs.map((x) => x.seqId) }))).outputs[0]!;
    for (let d = 0; d <= seq.decode.length; d++) {
      checkTop(out, golden.subarray(d * c.vocab, (d + 1) * c.vocab), `TP=${world} ${name} decode ${d}`, tol);
      if (d === seq.decode.length) break;
      out = (await cluster.group.step(step({ running: [{ seqId: 'tp-dec', token: seq.decode[d]!, newBlocks: [] }] }))).outputs[0]!;
    }
    console.log(`# ${name} TP=${world}: worst max abs logit error ${worst.toExponential(2)}`);
  });
}

/** Registers, in the describe that calls it, the engine tests of a case with decode tokens (`get`: the case and its
 * engine, once its before hook has run): base and each adapter alone (checkEachAlone), the mixed batch
 * (checkMixedBatch), decode steps (checkDecodeBatch, top `topN`), all within `tol`. `name`: the case's, in the
 * diagnostics. */
export function testEachAloneMixedDecode<S extends DecodeSequence>(name: string, get: () => { c: VlmCase<S>; engine: LocalEngine },
  step: StepFn, blockSize: number, topN: number, tol: number): void {
  test('base and each adapter alone match transformers + PEFT', async (t) => {
    const worst = await checkEachAlone(get().engine, step, get().c, blockSize, tol);
    t.diagnostic(`${name}: worst max abs logit error alone ${worst.toExponential(2)}`);
  });

  test('base, every adapter and a text-only sequence in one heterogeneous batch', async (t) => {
    const worst = await checkMixedBatch(get().engine, step, get().c, blockSize, tol);
    t.diagnostic(`${name}: worst max abs logit error in the mixed batch ${worst.toExponential(2)}`);
  });

  test('decode steps after the images (the rope delta), every adapter in one batch', async (t) => {
    const { steps, worst } = await checkDecodeBatch(get().engine, step, get().c, blockSize, topN, tol);
    t.diagnostic(`${name}: worst top log-prob error over ${steps} decode steps ${worst.toExponential(2)}`);
  });
}
