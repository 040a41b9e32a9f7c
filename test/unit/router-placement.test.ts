// `weft router`'s placement (deploy/router/placement.ts), as pure functions: an adapter's request goes to its first
// rendezvous choice unless that replica is at the load bound ceil(c × (in flight + 1) / healthy), then to the next
// choice below it, in an order every router shares; a large c is pure affinity; replicas that are down are never
// chosen and their requests in flight do not count; base-model requests go to the least busy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadBound, placeAdapter, placeLeastBusy, rendezvousOrder, type ReplicaLoad } from '../../deploy/router/placement.js';

type R = { name: string; up: boolean; inFlight: number };
const replicas = (loads: Record<string, number>, down: string[] = []): R[] =>
  Object.entries(loads).map(([name, inFlight]) => ({ name, up: !down.includes(name), inFlight }));
const names = (rs: readonly ReplicaLoad[]) => rs.map((r) => r.name).join('');

test('the rendezvous order is the same on every router: pinned, and independent of the order replicas are listed in', () => {
  // A changed hash would move every adapter of a running deployment at once: the pins catch it.
  assert.equal(names(rendezvousOrder('sql-lora', replicas({ a: 0, b: 0, c: 0 }))), 'bca');
  assert.equal(names(rendezvousOrder('k2', replicas({ c: 0, a: 0, b: 0 }))), 'abc');
  assert.equal(names(rendezvousOrder('k1', replicas({ b: 0, c: 0, a: 0 }))), 'cab');
});

test('the load bound is ceil(c × (healthy in flight + 1) / healthy replicas); c must be at least 1', () => {
  assert.equal(loadBound(replicas({ a: 0, b: 0, c: 0 }), 1.25), 1);                 // ceil(1.25 / 3)
  assert.equal(loadBound(replicas({ a: 4, b: 1, c: 1 }), 1.25), 3);                 // ceil(1.25 × 7 / 3) = ceil(2.92)
  assert.equal(loadBound(replicas({ a: 4, b: 1, c: 1 }), 1), 3);                    // ceil(7 / 3)
  assert.equal(loadBound(replicas({ a: 4, b: 1, c: 1 }), 2), 5);                    // ceil(14 / 3)
  assert.equal(loadBound(replicas({ a: 9, b: 1, c: 1 }, ['a']), 1.25), 2);          // a is down: ceil(1.25 × 3 / 2)
  assert.equal(loadBound(replicas({ a: 1 }, ['a']), 1.25), Infinity);
  for (const c of [0, 0.99, Number.NaN]) assert.throws(() => loadBound(replicas({ a: 0 }), c), /at least 1/);
});

test('with no load an adapter goes to its first rendezvous choice, the others after it in order', () => {
  const p = placeAdapter('sql-lora', replicas({ a: 0, b: 0, c: 0 }), 1.25);
  assert.equal(names(p.candidates), 'bca');
  assert.equal(p.reason, 'affinity');
  assert.equal(p.bound, 1);
  // Load below the bound on the first choice changes nothing.
  const busy = placeAdapter('sql-lora', replicas({ a: 0, b: 2, c: 2 }), 1.25);      // bound ceil(1.25 × 5 / 3) = 3
  assert.deepEqual([names(busy.candidates), busy.reason, busy.bound], ['bca', 'affinity', 3]);
});

test('a replica at or above the bound is skipped for the next choice below it; it stays a last resort', () => {
  // sql-lora: b, c, a. Bound ceil(1.25 × (3 + 0 + 0 + 1) / 3) = 2; b has 3.
  const p = placeAdapter('sql-lora', replicas({ a: 0, b: 3, c: 0 }), 1.25);
  assert.equal(p.bound, 2);
  assert.equal(names(p.candidates), 'cab', 'c (its second choice), then a, then b (above the bound) last');
  assert.equal(p.reason, 'spill');
  // Exactly at the bound counts as full; one below it does not.
  assert.equal(names(placeAdapter('sql-lora', replicas({ a: 1, b: 2, c: 0 }), 1.25).candidates)[0], 'c');  // bound ceil(5 / 3) = 2
  assert.equal(names(placeAdapter('sql-lora', replicas({ a: 1, b: 2, c: 1 }), 1.25).candidates)[0], 'b');  // bound ceil(6.25 / 3) = 3
});

test('the spill order is deterministic: first and second choices full → the third, the same whatever the listing order', () => {
  // sql-lora: b, c, a. b and c at 4, a at 0: bound ceil(1.25 × 9 / 3) = 4.
  const orders = [['a', 'b', 'c'], ['c', 'a', 'b'], ['b', 'c', 'a']].map((order) => {
    const loads: Record<string, number> = {};
    for (const n of order) loads[n] = n === 'a' ? 0 : 4;
    return placeAdapter('sql-lora', replicas(loads), 1.25);
  });
  for (const p of orders) assert.deepEqual([names(p.candidates), p.reason, p.bound], ['abc', 'spill', 4], 'a, then b and c (full) in rendezvous order');
  // Different adapters spill to different second choices (a hot replica's load spreads over the others).
  const seconds = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const key = `k${i}`;
    const first = rendezvousOrder(key, replicas({ a: 0, b: 0, c: 0 }))[0]!.name;
    const loads = { a: 0, b: 0, c: 0, [first]: 10 };
    const p = placeAdapter(key, replicas(loads), 1.25);
    assert.equal(p.reason, 'spill');
    assert.notEqual(p.candidates[0]!.name, first);
    assert.equal(p.candidates[0]!.name, rendezvousOrder(key, replicas(loads))[1]!.name, `${key}: its second rendezvous choice`);
    seconds.add(`${first}>${p.candidates[0]!.name}`);
  }
  assert.ok(seconds.size >= 4, `spills from one replica go to more than one other: ${[...seconds].join(' ')}`);
});

test('a large load factor is pure affinity: the first choice however loaded', () => {
  const p = placeAdapter('sql-lora', replicas({ a: 0, b: 500, c: 0 }), 1e9);
  assert.deepEqual([names(p.candidates), p.reason], ['bca', 'affinity']);
  assert.equal(placeAdapter('sql-lora', replicas({ a: 0, b: 500, c: 0 }), 1.25).reason, 'spill', 'while 1.25 spills it');
});

test('replicas that are down are never candidates; an adapter whose first choice is down goes to its next', () => {
  const p = placeAdapter('sql-lora', replicas({ a: 0, b: 0, c: 0 }, ['b']), 1.25);
  assert.equal(names(p.candidates), 'ca');
  assert.equal(p.reason, 'affinity', 'the first healthy choice');
  // b's requests in flight (still streaming from a replica marked down) do not raise the bound: ceil(1.25 × 3 / 2)
  // = 2, so c (at 2) is full; counted, they would make it ceil(1.25 × 53 / 3) = 23.
  const p2 = placeAdapter('sql-lora', replicas({ a: 0, b: 50, c: 2 }, ['b']), 1.25);
  assert.deepEqual([names(p2.candidates), p2.reason, p2.bound], ['ac', 'spill', 2]);
  assert.deepEqual(placeAdapter('sql-lora', replicas({ a: 0 }, ['a']), 1.25).candidates, []);
});

test('a hot adapter\'s burst: load falls along its rendezvous order, never above the bound, on as few replicas as c allows', () => {
  // 40 requests for one adapter over 4 idle replicas, all still in flight: c = 1 evens them out, a larger c keeps
  // them on fewer replicas (c = 2: two), each a replica before it in the order holds at least as many.
  const expected = new Map([[1, [10, 10, 10, 10]], [1.25, [13, 13, 12, 2]], [1.5, [15, 15, 10, 0]], [2, [20, 20, 0, 0]]]);
  for (const [c, want] of expected) {
    const rs = replicas({ a: 0, b: 0, c: 0, d: 0 });
    const order = rendezvousOrder('hot', rs);
    for (let k = 1; k <= 40; k++) {
      const p = placeAdapter('hot', rs, c);
      if (k === 1) assert.deepEqual([p.candidates[0], p.reason], [order[0], 'affinity'], 'the first request: the first choice');
      p.candidates[0]!.inFlight++;
      for (const r of rs) assert.ok(r.inFlight <= Math.ceil(c * k / rs.length), `c=${c}: ${r.name} at ${r.inFlight} after ${k}`);
    }
    assert.deepEqual(order.map((r) => r.inFlight), want, `c=${c} over ${names(order)}`);
  }
});

test('a request with no adapter goes to the least busy healthy replica (ties: as listed)', () => {
  const p = placeLeastBusy(replicas({ a: 3, b: 1, c: 0, d: 1 }, ['c']));
  assert.deepEqual([names(p.candidates), p.reason], ['bda', 'least_busy']);
});
