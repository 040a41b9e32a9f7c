// The Responses API store (coordinator/http/response-store.ts): least recently used out past its size, a use
// refreshes an entry, entries are visible only to their owner, size 0 stores nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResponseStore, ownerOf } from '../../coordinator/http/response-store.js';

const entry = (n: number) => ({ response: { id: `r${n}` }, items: [{ type: 'message', role: 'user', content: `m${n}` }] });

test('least recently used out; get refreshes; owners are kept apart; 0 entries stores nothing', () => {
  const s = new ResponseStore(2);
  s.put('r1', 'a', entry(1));
  s.put('r2', 'a', entry(2));
  assert.deepEqual(s.get('r1', 'a'), entry(1));  // r1 is now the most recent
  s.put('r3', 'a', entry(3));
  assert.equal(s.get('r2', 'a'), undefined, 'r2 was the least recently used');
  assert.deepEqual([s.get('r1', 'a')?.response, s.get('r3', 'a')?.response], [{ id: 'r1' }, { id: 'r3' }]);
  assert.equal(s.get('r1', 'b'), undefined, "another owner's");
  assert.equal(s.delete('r1', 'b'), false);
  assert.equal(s.delete('r1', 'a'), true);
  assert.equal(s.size, 1);
  const off = new ResponseStore(0);
  off.put('r1', 'a', entry(1));
  assert.equal(off.enabled, false);
  assert.equal(off.get('r1', 'a'), undefined);
});

test('the owner is a digest of the credentials, never the credentials themselves', () => {
  const a = ownerOf({ authorization: 'Bearer secret-a' });
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.ok(!a.includes('secret'));
  assert.notEqual(a, ownerOf({ authorization: 'Bearer secret-b' }));
  assert.notEqual(ownerOf({ 'x-api-key': 'k1' }), ownerOf({ 'x-api-key': 'k2' }));
  assert.equal(ownerOf({}), '');
});
