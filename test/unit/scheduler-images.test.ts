// Chunked prefill around bidirectional images (SchedulerConfig.bidirectionalImages: Gemma 3, whose image tokens attend
// to each other both ways): no chunk ends inside an image — it is shortened to end before the image, or runs to the
// image's end (an image larger than the prefill budget goes whole, as a step's first prefill work); a cached prefix may
// end inside an image and the chunk continuing it then reaches the image's end. The rule itself (chunkLength), fixed
// cases through the scheduler, and a random run (prefix caching, preemption by recompute, images over the budget)
// checking every step's chunk boundaries against a ReferenceShard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ImageRef, Step } from '../../protocol/index.js';
import { Sequence } from '../../coordinator/scheduler/index.js';
import type { SchedulerConfig } from '../../coordinator/scheduler/index.js';
import { chunkLength, splitsImage } from '../../coordinator/scheduler/image-chunks.js';
import { uniformStream } from '../../deploy/demo-model/prng.js';
import { Harness, SAMPLING, config } from '../helpers/scheduler-harness.js';

const IMG = 9;
/** A prompt of text tokens with images at the given [start, length) ranges (image tokens IMG), as the engine gives it. */
function withImages(seqId: string, length: number, images: { key: string; start: number; length: number }[], maxNew = 3, base = 10): Sequence {
  const promptTokens = Array.from({ length }, (_, i) => base + (i % 50));
  for (const img of images) for (let i = img.start; i < img.start + img.length; i++) promptTokens[i] = IMG;
  return new Sequence({ seqId, promptTokens, sampling: SAMPLING, maxNewTokens: maxNew, images });
}

/** Each sequence's prefill chunks in order, [from, to), from the steps' messages (a new sequence's cached prefix and
 * first chunk, then its chunks). */
class Boundaries {
  readonly pos = new Map<string, number>();
  readonly chunks = new Map<string, [number, number][]>();
  see(step: Step): void {
    for (const n of step.newSeqs) {
      this.pos.set(n.seqId, n.tokens.length);
      this.chunks.set(n.seqId, [...(this.chunks.get(n.seqId) ?? []), [n.cached ?? 0, n.tokens.length]]);
    }
    for (const c of step.chunks ?? []) {
      const from = this.pos.get(c.seqId)!;
      this.pos.set(c.seqId, from + c.tokens.length);
      this.chunks.get(c.seqId)!.push([from, from + c.tokens.length]);
    }
  }
}

test('chunkLength: ends before an image, or runs to its end; an image over the budget goes whole only as the step\'s first prefill', () => {
  const imgs: ImageRef[] = [{ key: 'a', start: 10, length: 20 }];
  // [from, remaining, left, fresh] -> tokens
  assert.equal(chunkLength(0, 40, 16, imgs, true, true), 10, 'shortened to end before the image');
  assert.equal(chunkLength(0, 40, 16, imgs, false, true), 16, 'not bidirectional: any boundary');
  assert.equal(chunkLength(10, 30, 16, imgs, true, true), 20, 'at the image: the whole image, over the budget, as the first prefill');
  assert.equal(chunkLength(10, 30, 16, imgs, true, false), 0, 'at the image with other prefill work in the step: waits');
  assert.equal(chunkLength(10, 30, 25, imgs, true, false), 25, 'the image fits: the budget as usual');
  assert.equal(chunkLength(0, 40, 30, imgs, true, false), 30, 'ends right at the image\'s end');
  assert.equal(chunkLength(0, 40, 10, imgs, true, false), 10, 'ends right at the image\'s start');
  assert.equal(chunkLength(28, 12, 1, imgs, true, false), 0, 'a cached prefix inside the image: the chunk must reach its end');
  assert.equal(chunkLength(28, 12, 4, imgs, true, false), 4, '… which it does');
  assert.equal(chunkLength(28, 12, 1, imgs, true, true), 2, '… or goes to the image\'s end alone');
  assert.equal(chunkLength(0, 15, 16, imgs, true, false), 15, 'the rest of the prefill fits');
  const two: ImageRef[] = [{ key: 'a', start: 2, length: 4 }, { key: 'b', start: 6, length: 4 }];
  assert.equal(chunkLength(0, 12, 8, two, true, false), 6, 'adjacent images: ends between them');
  assert.equal(chunkLength(2, 10, 5, two, true, false), 4, 'one whole image, not the next');
  assert.equal(chunkLength(6, 6, 3, two, true, true), 4);
  assert.deepEqual([splitsImage(10, imgs), splitsImage(11, imgs), splitsImage(29, imgs), splitsImage(30, imgs)], [false, true, true, false]);
});

test('scheduler: a prompt\'s chunks stop before the image, then take it whole (over a smaller budget); without the rule they split it', () => {
  const run = (bidirectionalImages: boolean) => {
    const h = new Harness(config({ maxBatchPrefillTokens: 16, bidirectionalImages }));
    const b = new Boundaries();
    h.add(withImages('a', 40, [{ key: 'A', start: 10, length: 20 }]));
    for (let s = h.step(); s !== null; s = h.step()) b.see(s);
    assert.equal(h.reason('a'), 'length');
    return b.chunks.get('a');
  };
  assert.deepEqual(run(true), [[0, 10], [10, 30], [30, 40]]);
  assert.deepEqual(run(false), [[0, 16], [16, 32], [32, 40]]);
});

test('scheduler: an image that does not fit what another prefill left waits a step; admission too', () => {
  const h = new Harness(config({ maxBatchPrefillTokens: 16, bidirectionalImages: true }));
  const b = new Boundaries();
  h.add(withImages('a', 20, []), withImages('b', 30, [{ key: 'B', start: 0, length: 12 }]));
  const s1 = h.step()!;
  b.see(s1);
  // a takes 16 of 16; b is not admitted (nothing left)
  assert.deepEqual(s1.newSeqs.map((n) => [n.seqId, n.tokens.length]), [['a', 16]]);
  const s2 = h.step()!;
  b.see(s2);
  // a's last 4 tokens leave 12: b's image (12) fits exactly
  assert.deepEqual([s2.chunks?.map((c) => [c.seqId, c.tokens.length]), s2.newSeqs.map((n) => [n.seqId, n.tokens.length])], [[['a', 4]], [['b', 12]]]);
  h.add(withImages('c', 30, [{ key: 'C', start: 2, length: 14 }]));
  const s3 = h.step()!;
  b.see(s3);
  // b continues with 16 (its image done): nothing left for c
  assert.deepEqual([s3.chunks?.map((c) => [c.seqId, c.tokens.length]), s3.newSeqs.length], [[['b', 16]], 0]);
  for (let s = h.step(); s !== null; s = h.step()) b.see(s);
  // then b's last 2 leave 14: c's first chunk stops before its image (2 tokens, not 14), then takes it with 2 more
  assert.deepEqual(b.chunks.get('c'), [[0, 2], [2, 18], [18, 30]]);
  assert.deepEqual(b.chunks.get('b'), [[0, 12], [12, 28], [28, 30]]);
});

test('scheduler: a cached prefix ending inside an image; the chunk continuing it reaches the image\'s end', () => {
  // blockSize 4: a 32-token prompt whose image is [10, 30) finds 28 tokens (7 blocks) cached: inside the image
  const h = new Harness(config({ maxBatchPrefillTokens: 16, bidirectionalImages: true, prefixCaching: true }));
  const b = new Boundaries();
  h.add(withImages('a', 32, [{ key: 'A', start: 10, length: 20 }]));
  for (let s = h.step(); s !== null; s = h.step()) b.see(s);
  assert.deepEqual(b.chunks.get('a'), [[0, 10], [10, 30], [30, 32]]);
  // another prompt takes 15 of the budget first: 1 left, which would end the cached one's chunk inside the image
  h.add(withImages('x', 15, [], 3, 100), withImages('b', 32, [{ key: 'A', start: 10, length: 20 }]));
  const s1 = h.step()!;
  b.see(s1);
  assert.deepEqual(s1.newSeqs.map((n) => n.seqId), ['x'], 'b waits: its 1 token would end inside the image');
  for (let s = h.step(); s !== null; s = h.step()) b.see(s);
  assert.deepEqual(b.chunks.get('b'), [[28, 32]], 'b: from its cached prefix (inside the image) to the end');
});

test('random load: no chunk ends inside an image (prefix caching, preemption, images over the budget); every request completes', () => {
  let preemptions = 0, cachedInside = 0, overBudget = 0, shortened = 0, chunksSeen = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const rand = uniformStream(seed);
    const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
    const blockSize = [1, 2, 4, 16][int(0, 3)]!;
    const cfg: SchedulerConfig = config({
      blockSize, numBlocks: Math.ceil(int(80, 200) / blockSize), maxBatchSize: int(1, 6), maxBatchPrefillTokens: int(6, 40),
      maxTotalTokens: 80, prefixCaching: rand() < 0.6, bidirectionalImages: true,
    });
    const capacity = Math.min(cfg.maxTotalTokens, cfg.numBlocks * blockSize);
    const ctx = `seed ${seed} ${JSON.stringify(cfg)}`;
    const h = new Harness(cfg);
    const b = new Boundaries();
    // a few shared images (same key, same position) so that cached prefixes end inside them
    const shared = Array.from({ length: 3 }, (_, i) => ({ key: `S${i}`, start: int(0, 6), length: int(1, 30) }));
    const seqs: Sequence[] = [];
    const add = () => {
      const length = int(4, capacity - 8);
      const images: ImageRef[] = [];
      let at = 0;
      if (rand() < 0.5) {
        const s = shared[int(0, shared.length - 1)]!;
        if (s.start + s.length <= length) {
          images.push({ ...s });
          at = s.start + s.length;
        }
      }
      while (at < length - 1 && rand() < 0.6) {
        const start = at + int(0, 5);
        const len = int(1, Math.max(1, Math.min(2 * cfg.maxBatchPrefillTokens, length - start)));
        if (start + len > length) break;
        images.push({ key: `k${seqs.length}-${images.length}`, start, length: len });
        at = start + len;
      }
      const seq = withImages(`r${seqs.length}`, length, images, int(1, 12));
      // shared images keep the same tokens before them (the prefix cache needs the same text)
      for (let i = 0; i < (images[0]?.start ?? 0); i++) (seq.promptTokens as number[])[i] = 10 + i;
      seqs.push(seq);
      h.add(seq);
    };
    for (let i = 0; i < 8; i++) add();
    for (let n = 0; h.sched.hasWork() || seqs.length < 40; n++) {
      assert.ok(n < 5000, `${ctx}: no progress`);
      if (seqs.length < 40 && rand() < 0.5) add();
      const s = h.step();
      if (s === null) {
        assert.ok(!h.sched.hasWork() && seqs.length < 40, `${ctx}: stalled`);
        continue;
      }
      const sched = h.last!;
      preemptions += sched.preempted.length;
      b.see(s);
      const items = s.newSeqs.map((x) => x.tokens.length - (x.cached ?? 0)).concat((s.chunks ?? []).map((c) => c.tokens.length));
      if (sched.prefillTokens > cfg.maxBatchPrefillTokens) {
        overBudget++;
        assert.equal(items.length, 1, `${ctx}: a step over the prefill budget holds one image-whole chunk only`);
      }
      for (const x of [...s.newSeqs.map((q) => q.seqId), ...(s.chunks ?? []).map((c) => c.seqId)]) {
        const seq = seqs.find((q) => q.seqId === x)!;
        const [from, to] = b.chunks.get(x)!.at(-1)!;
        chunksSeen++;
        assert.ok(!splitsImage(to, seq.images), `${ctx}: ${x}'s chunk [${from}, ${to}) ends inside an image ${JSON.stringify(seq.images)}`);
        if (splitsImage(from, seq.images)) cachedInside++;
        if (seq.images.some((img) => img.start === to && img.start > from)) shortened++;
      }
    }
    for (const seq of seqs) assert.ok(seq.isFinished, `${ctx}: ${seq.seqId} finished`);
    assert.equal(h.sched.usedBlocks, 0);
  }
  console.log(`chunks ${chunksSeen}, ending right before an image ${shortened}, starting inside an image (cached prefix) ${cachedInside}, ` +
    `image-whole steps over the budget ${overBudget}, preempted ${preemptions}`);
  assert.ok(preemptions > 0 && cachedInside > 0 && overBudget > 0 && shortened > 0, 'the run exercised every case');
});
