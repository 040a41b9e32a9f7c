// JSON Schema numeric bounds as regular expressions: checked against exact decimal comparison over every integer
// in a window and every short decimal text, for inclusive, exclusive and one-sided bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LazyDfa, compileRegex, fullMatch } from '../../protocol/index.js';
import { integerRange, numberRange, type NumericBounds } from '../../coordinator/constraints/json-number-range.js';

const matcher = (pattern: string) => {
  const dfa = new LazyDfa(compileRegex(pattern));
  return (s: string) => fullMatch(dfa, s);
};

/** Exact value of a decimal text as (numerator, scale): n / 10^scale. */
function exact(text: string): [bigint, number] {
  const neg = text.startsWith('-');
  const [i, f = ''] = text.replace('-', '').split('.');
  const n = BigInt(i! + f);
  return [neg ? -n : n, f.length];
}
function exactBound(x: number): [bigint, number] {
  const s = x.toString();
  assert.ok(!s.includes('e'), 'test bounds are plain decimals');
  return exact(s);
}
function cmp(a: [bigint, number], b: [bigint, number]): number {
  const scale = Math.max(a[1], b[1]);
  const x = a[0] * 10n ** BigInt(scale - a[1]), y = b[0] * 10n ** BigInt(scale - b[1]);
  return x < y ? -1 : x > y ? 1 : 0;
}
function inBounds(text: string, b: NumericBounds): boolean {
  const v = exact(text);
  if (b.min !== undefined) { const c = cmp(v, exactBound(b.min)); if (c < 0 || (c === 0 && b.minExclusive)) return false; }
  if (b.max !== undefined) { const c = cmp(v, exactBound(b.max)); if (c > 0 || (c === 0 && b.maxExclusive)) return false; }
  return true;
}

test('integer ranges: exactly the integers from lo to hi, written without leading zeros', () => {
  for (const [lo, hi] of [[0n, 0n], [5n, 123n], [0n, 999n], [7n, 7n], [10n, 99n], [99n, 1000n], [1n, null], [250n, null]] as [bigint, bigint | null][]) {
    const m = matcher(integerRange(lo, hi));
    for (let x = 0n; x <= 1100n; x++) assert.equal(m(x.toString()), x >= lo && (hi === null || x <= hi), `${x} in [${lo}, ${hi}]`);
    assert.ok(!m('007') && !m(''), 'no leading zeros');
    if (hi === null) assert.ok(m('9'.repeat(16)) && !m('1' + '0'.repeat(16)), 'unbounded: up to 16 digits');
  }
});

test('integer bounds: inclusive, exclusive, fractional and one-sided, negative values included', () => {
  const cases: NumericBounds[] = [{ min: 0 }, { max: 0 }, { min: -5, max: 5 }, { min: -5, minExclusive: true, max: 5, maxExclusive: true },
    { min: 1.5, max: 9.5 }, { min: -120, max: -3 }, { max: -1, maxExclusive: true }, { min: 100, max: 100 }, { min: -1000, max: 1000 }];
  for (const b of cases) {
    const m = matcher(numberRange(b, true, '#'));
    for (let x = -1100; x <= 1100; x++) assert.equal(m(String(x)), inBounds(String(x), b), `${x} in ${JSON.stringify(b)}`);
    assert.ok(!m('1.0') && !m('1e2'), 'integers only');
  }
  assert.throws(() => numberRange({ min: 3, max: 2 }, true, '#/x'), /no integer satisfies the bounds at #\/x/);
  assert.throws(() => numberRange({ min: 1.2, max: 1.8 }, true, '#'), /no integer/);
});

test('number bounds: every decimal text up to 2 integer and 3 fraction digits, both signs, against exact comparison', () => {
  const texts: string[] = [];
  for (let i = 0; i <= 12; i++) {
    texts.push(String(i));
    for (const f of ['0', '00', '1', '10', '25', '250', '5', '50', '75', '9', '99', '999', '001', '05']) texts.push(`${i}.${f}`);
  }
  const all = [...texts, ...texts.map((t) => `-${t}`)];
  const bounds = [-2.5, -1, -0.25, 0, 0.05, 0.1, 0.5, 1, 2.25, 10];
  const cases: NumericBounds[] = [];
  for (const lo of bounds) {
    cases.push({ min: lo }, { max: lo }, { min: lo, minExclusive: true }, { max: lo, maxExclusive: true });
    for (const hi of bounds) if (hi >= lo) cases.push({ min: lo, max: hi }, ...(hi > lo ? [{ min: lo, max: hi, minExclusive: true, maxExclusive: true }, { min: lo, max: hi, minExclusive: true }] : []));
  }
  let checked = 0;
  for (const b of cases) {
    const m = matcher(numberRange(b, false, '#'));
    for (const t of all) {
      if (t === '-0' || /^-0\.0*$/.test(t)) continue;  // negative zero: written as 0 (refused), whatever the bounds
      assert.equal(m(t), inBounds(t, b), `${t} in ${JSON.stringify(b)}`);
      checked++;
    }
    assert.ok(!m('1e0') && !m('01') && !m('1.') && !m('.5'), 'JSON number syntax, no exponent');
  }
  assert.ok(checked > 50_000, `${checked} checks`);
});

test('fractions: 16 digits at most, and the smallest positive steps still count', () => {
  const m = matcher(numberRange({ min: 0, minExclusive: true, max: 1 }, false, '#'));
  assert.ok(m(`0.${'0'.repeat(15)}1`));
  assert.ok(!m(`0.${'0'.repeat(16)}`));
  assert.ok(!m(`0.${'0'.repeat(16)}1`), 'a 17th digit');
  assert.ok(m('1.0000') && !m('1.0001'));
  assert.throws(() => numberRange({ min: 1, max: 1, maxExclusive: true }, false, '#'), /no number satisfies the bounds/);
});
