// JSON Schema's numeric bounds (minimum, maximum, exclusiveMinimum, exclusiveMaximum) as regular expressions over
// JSON number texts, exact: a text matches iff its value lies in the range. Integers as json-schema.ts writes
// them (at most 16 digits); bounded `number`s are written without an exponent (digits, then an optional
// fraction of at most 16 digits), which keeps the language a simple union of digit ranges. Bounds are read from
// their shortest decimal form (what the schema's author wrote: 0.1 is 0.1, not its binary neighbour).
import { ConstraintError } from '../../protocol/index.js';

/** Digits of an integer part; of a fraction. */
const INT_DIGITS = 16;
const FRAC_DIGITS = 16;

export interface NumericBounds {
  min?: number;
  minExclusive?: boolean;
  max?: number;
  maxExclusive?: boolean;
}

/** A bound as an exact nonnegative decimal: integer digits (no leading zeros; '0' for zero) and fraction digits
 * (no trailing zeros), and its sign. */
interface Decimal { neg: boolean; int: string; frac: string }

function decimalOf(x: number): Decimal {
  if (!Number.isFinite(x)) throw new ConstraintError(`numeric bound ${x} is not a finite number`);
  const [mant, expPart] = Math.abs(x).toString().split('e');
  const exp = expPart === undefined ? 0 : Number(expPart);
  const [i, f = ''] = mant!.split('.');
  let digits = i! + f, point = i!.length + exp;  // value = 0.digits × 10^point
  if (point < 0) { digits = '0'.repeat(-point) + digits; point = 0; }
  if (point > digits.length) digits += '0'.repeat(point - digits.length);
  const int = digits.slice(0, point).replace(/^0+/, '') || '0';
  const frac = digits.slice(point).replace(/0+$/, '');
  return { neg: x < 0 && (int !== '0' || frac !== ''), int, frac };
}

const alt = (xs: string[]): string => (xs.length === 1 ? xs[0]! : `(?:${xs.join('|')})`);
const NEVER = '[^\\s\\S]';
const cls = (lo: number, hi: number): string => (lo === hi ? String(lo) : lo === 0 && hi === 9 ? '[0-9]' : `[${lo}-${hi}]`);

/** n digits, each any. */
const anyDigits = (n: number): string => (n === 0 ? '' : n === 1 ? '[0-9]' : `[0-9]{${n}}`);

/** Digit strings of exactly a.length digits (leading zeros allowed) between a and b inclusive, a.length === b.length. */
function sameLength(a: string, b: string): string {
  if (a.length === 0) return '';
  const a0 = Number(a[0]), b0 = Number(b[0]);
  const rest = a.length - 1;
  if (/^0*$/.test(a.slice(1)) && /^9*$/.test(b.slice(1))) return `${cls(a0, b0)}${anyDigits(rest)}`;
  if (a0 === b0) return `${a0}${sameLength(a.slice(1), b.slice(1))}`;
  const parts = [`${a0}${sameLength(a.slice(1), '9'.repeat(rest))}`];
  if (b0 - a0 > 1) parts.push(`${cls(a0 + 1, b0 - 1)}${anyDigits(rest)}`);
  parts.push(`${b0}${sameLength('0'.repeat(rest), b.slice(1))}`);
  return alt(parts);
}

/** Integers written without leading zeros (at most INT_DIGITS digits) from lo to hi inclusive (hi null: no end). */
export function integerRange(lo: bigint, hi: bigint | null): string {
  const maxValue = 10n ** BigInt(INT_DIGITS) - 1n;
  const top = hi === null || hi > maxValue ? maxValue : hi;
  if (lo > top) return NEVER;
  const parts: string[] = [];
  const loLen = lo.toString().length, hiLen = top.toString().length;
  for (let n = loLen; n <= hiLen; n++) {
    const first = n === 1 ? 0n : 10n ** BigInt(n - 1), last = 10n ** BigInt(n) - 1n;
    const a = lo > first ? lo : first, b = top < last ? top : last;
    if (a > b) continue;
    if (a === first && b === last && n > 1 && hi === null) {  // every longer length is whole: one run of them
      parts.push(`[1-9][0-9]{${n - 1},${INT_DIGITS - 1}}`);
      break;
    }
    parts.push(sameLength(a.toString(), b.toString()));
  }
  return alt(parts);
}

/** A bound on the rest of a fraction: its remaining digits (no trailing zeros) and strictness; null: none. */
type FracBound = { digits: string; strict: boolean } | null;

/** The fraction digit strings f (at most FRAC_DIGITS - used digits) with lo ≤ 0.f ≤ hi (each as its strictness
 * says): whether the empty string is one, and a pattern of the non-empty ones (null: none). Digit by digit: a digit
 * above lo's frees the lower bound, one below hi's the upper; equal ones carry the bound on. */
function fractions(lo: FracBound, hi: FracBound, used: number): { empty: boolean; nonEmpty: string | null } {
  if (lo !== null && lo.digits === '' && !lo.strict) lo = null;  // ≥ 0: no bound
  // The string ending here: value 0 against the bounds' remaining digits.
  const empty = (lo === null || (lo.digits === '' && !lo.strict)) && (hi === null || !hi.strict || hi.digits !== '');
  const room = FRAC_DIGITS - used;
  if (room <= 0) return { empty, nonEmpty: null };
  // Runs of next digits that leave the same bounds behind (below lo's digit: none; lo's: lo's rest; …).
  const groups: { from: number; to: number; key: string; lo: FracBound; hi: FracBound }[] = [];
  for (let d = 0; d <= 9; d++) {
    const ld = lo === null ? -1 : Number(lo.digits[0] ?? 0), hd = hi === null ? 10 : Number(hi.digits[0] ?? 0);
    if (d < ld || d > hd) continue;
    const nlo: FracBound = lo === null || d > ld ? null : { digits: lo.digits.slice(1), strict: lo.strict };
    const nhi: FracBound = hi === null || d < hd ? null : { digits: hi.digits.slice(1), strict: hi.strict };
    const key = JSON.stringify([nlo, nhi]);
    const last = groups.at(-1);
    if (last && last.key === key && last.to === d - 1) last.to = d;
    else groups.push({ from: d, to: d, key, lo: nlo, hi: nhi });
  }
  const parts: string[] = [];
  for (const g of groups) {
    let tail: string | null;
    if (g.lo === null && g.hi === null) tail = room > 1 ? `[0-9]{0,${room - 1}}` : '';  // both bounds settled: any digits
    else {
      const rest = fractions(g.lo, g.hi, used + 1);
      tail = rest.nonEmpty === null ? (rest.empty ? '' : null) : rest.empty ? `(?:${rest.nonEmpty})?` : rest.nonEmpty;
    }
    if (tail !== null) parts.push(`${cls(g.from, g.to)}${tail}`);
  }
  return { empty, nonEmpty: parts.length === 0 ? null : alt(parts) };
}

/** An integer part followed by a fraction within the bounds (none written: the value's fraction is 0). */
function withFraction(int: string, lo: FracBound, hi: FracBound): string | null {
  const f = fractions(lo, hi, 0);
  if (f.nonEmpty === null) return f.empty ? int : null;
  return f.empty ? `${int}(?:\\.${f.nonEmpty})?` : `${int}\\.${f.nonEmpty}`;
}

/** Nonnegative decimals (integer part + optional fraction) in [a, b] (b null: no end), bounds' exclusivity given. */
function nonNegativeRange(a: Decimal, aStrict: boolean, b: Decimal | null, bStrict: boolean): string {
  const ia = BigInt(a.int), ib = b === null ? null : BigInt(b.int);
  const lo: FracBound = { digits: a.frac, strict: aStrict };
  const hi: FracBound = b === null ? null : { digits: b.frac, strict: bStrict };
  const parts: (string | null)[] = [];
  if (ib !== null && ia === ib) parts.push(withFraction(a.int, lo, hi));
  else if (ib === null || ia < ib) {
    parts.push(withFraction(a.int, lo, null));
    const middle = integerRange(ia + 1n, ib === null ? null : ib - 1n);
    if (middle !== NEVER) parts.push(`${middle}(?:\\.[0-9]{1,${FRAC_DIGITS}})?`);
    if (b !== null) parts.push(withFraction(b.int, null, hi));
  }
  const kept = parts.filter((p): p is string => p !== null);
  return kept.length === 0 ? NEVER : alt(kept);
}

function negate(d: Decimal): Decimal {
  return { neg: !d.neg && (d.int !== '0' || d.frac !== ''), int: d.int, frac: d.frac };
}
const ZERO: Decimal = { neg: false, int: '0', frac: '' };
const isZero = (d: Decimal) => d.int === '0' && d.frac === '';

/** JSON numbers (no exponent) in the bounds; `integer`: whole numbers only. Throws ConstraintError when none. */
export function numberRange(b: NumericBounds, integer: boolean, at: string): string {
  if (integer) return integerBounds(b, at);
  const lo = b.min === undefined ? null : decimalOf(b.min), hi = b.max === undefined ? null : decimalOf(b.max);
  const loS = b.minExclusive === true, hiS = b.maxExclusive === true;
  const parts: string[] = [];
  // Nonnegative values: from max(lo, 0) to hi.
  if (hi === null || !hi.neg) {
    const from = lo === null || lo.neg ? ZERO : lo;
    const fromStrict = lo !== null && !lo.neg && loS;
    const r = nonNegativeRange(from, fromStrict, hi, hiS);
    if (r !== NEVER) parts.push(r);
  }
  // Negative values -m: m from max(-hi, 0) (exclusive at 0: -0 is written as 0) to -lo.
  if (lo === null || lo.neg) {
    const mFrom = hi !== null && hi.neg ? negate(hi) : ZERO;
    const mFromStrict = hi !== null && hi.neg ? hiS : true;
    const mTo = lo === null ? null : negate(lo);
    const r = isZero(mFrom) && mTo !== null && isZero(mTo) ? NEVER : nonNegativeRange(mFrom, mFromStrict, mTo, loS);
    if (r !== NEVER) parts.push(`-${r}`);
  }
  if (parts.length === 0) throw new ConstraintError(`no number satisfies the bounds at ${at}`);
  return alt(parts);
}

function integerBounds(b: NumericBounds, at: string): string {
  let lo: bigint | null = null, hi: bigint | null = null;
  if (b.min !== undefined) {
    const c = Math.ceil(b.min);
    lo = BigInt(c) + (b.minExclusive && c === b.min ? 1n : 0n);
  }
  if (b.max !== undefined) {
    const f = Math.floor(b.max);
    hi = BigInt(f) - (b.maxExclusive && f === b.max ? 1n : 0n);
  }
  if (lo !== null && hi !== null && lo > hi) throw new ConstraintError(`no integer satisfies the bounds at ${at}`);
  const parts: string[] = [];
  if (hi === null || hi >= 0n) parts.push(integerRange(lo === null || lo < 0n ? 0n : lo, hi));
  if (lo === null || lo < 0n) {
    // -m for m from max(1, -hi) to -lo.
    const mFrom = hi !== null && hi < 0n ? -hi : 1n;
    parts.push(`-${integerRange(mFrom, lo === null ? null : -lo)}`);
  }
  return alt(parts.filter((p) => !p.endsWith(NEVER)));
}
