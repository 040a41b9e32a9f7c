// A lazy DFA over an Nfa (regex.ts): states are ε-closed sets of NFA nodes, made and numbered on first use,
// each with a 256-entry transition row filled as bytes are tried. `live` says whether the pattern can still
// be completed from a state (some node in it reaches the accept node), so a token is allowed only when its
// bytes end in a live state — generation can never paint itself into a corner.
import { ConstraintError, type Nfa } from './regex.js';

export const DEAD = -1;
/** A `row` entry not computed yet: call step(). */
export const UNKNOWN = -2;
/** DFA states one constraint may create (each holds a 1 KiB transition row). */
export const MAX_DFA_STATES = 20_000;

/** A deterministic automaton over bytes built as it is walked: a regex's (LazyDfa) or a grammar's (GrammarDfa). */
export interface ByteDfa {
  readonly start: number;
  accepting(state: number): boolean;
  /** The transition row of a live state (entries: next state, DEAD or UNKNOWN), for hot loops. */
  row(state: number): Int32Array;
  /** The state after a byte (DEAD: the text cannot be completed any more). */
  step(state: number, byte: number): number;
  walk(state: number, bytes: Uint8Array): number;
}

export class LazyDfa implements ByteDfa {
  readonly start: number;
  private readonly sets: Int32Array[] = [];
  private readonly ids = new Map<string, number>();
  private readonly rows: Int32Array[] = [];
  private readonly acceptFlags: boolean[] = [];
  private readonly liveFlags: boolean[] = [];
  /** NFA nodes from which the accept node is reachable. */
  private readonly coReach: Uint8Array;

  constructor(private readonly nfa: Nfa, private readonly maxStates = MAX_DFA_STATES) {
    this.coReach = coReachable(nfa);
    this.start = this.intern(this.closure([nfa.start]));
  }

  get size(): number {
    return this.sets.length;
  }
  accepting(state: number): boolean {
    return state >= 0 && this.acceptFlags[state];
  }
  live(state: number): boolean {
    return state >= 0 && this.liveFlags[state];
  }

  /** The transition row of a live state (entries: next state, DEAD or UNKNOWN), for hot loops. */
  row(state: number): Int32Array {
    return this.rows[state];
  }

  step(state: number, byte: number): number {
    if (state < 0) return DEAD;
    const row = this.rows[state];
    const known = row[byte];
    if (known !== UNKNOWN) return known;
    const moved: number[] = [];
    const bit = 1 << (byte & 31), word = byte >> 5;
    for (const n of this.sets[state]) {
      const bits = this.nfa.bytes[n];
      if (bits && (bits[word] & bit) !== 0) moved.push(this.nfa.next[n]);
    }
    const to = moved.length === 0 ? DEAD : this.intern(this.closure(moved));
    row[byte] = to >= 0 && !this.liveFlags[to] ? DEAD : to;
    return row[byte];
  }

  /** Runs bytes from a state; DEAD as soon as the pattern cannot be completed. */
  walk(state: number, bytes: Uint8Array): number {
    for (let i = 0; i < bytes.length && state >= 0; i++) state = this.step(state, bytes[i]);
    return state;
  }

  private closure(seeds: number[]): Int32Array {
    const seen = new Set<number>();
    const stack = [...seeds];
    const kept: number[] = [];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (seen.has(n)) continue;
      seen.add(n);
      // Only nodes that consume a byte, and the accept node, distinguish states; and only those that can
      // still reach the accept node matter.
      if ((this.nfa.bytes[n] || n === this.nfa.accept) && this.coReach[n]) kept.push(n);
      for (const m of this.nfa.eps[n]) if (!seen.has(m)) stack.push(m);
    }
    return Int32Array.from(kept).sort();
  }

  private intern(set: Int32Array): number {
    const key = set.join(',');
    const hit = this.ids.get(key);
    if (hit !== undefined) return hit;
    if (this.sets.length >= this.maxStates) {
      throw new ConstraintError(`the constraint needs more than ${this.maxStates} automaton states; simplify the schema or pattern ` +
        '(large maxLength / maxItems / {n,m} counts need one state per step of the count)');
    }
    const id = this.sets.length;
    this.sets.push(set);
    this.ids.set(key, id);
    this.rows.push(new Int32Array(256).fill(UNKNOWN));
    this.acceptFlags.push(set.includes(this.nfa.accept));
    this.liveFlags.push(set.length > 0);
    return id;
  }
}

function coReachable(nfa: Nfa): Uint8Array {
  const n = nfa.bytes.length;
  const rev: number[][] = Array.from({ length: n }, () => []);
  for (let i = 0; i < n; i++) {
    for (const m of nfa.eps[i]) rev[m].push(i);
    if (nfa.bytes[i] && nfa.next[i] >= 0) rev[nfa.next[i]].push(i);
  }
  const seen = new Uint8Array(n);
  const stack = [nfa.accept];
  seen[nfa.accept] = 1;
  while (stack.length > 0) {
    for (const p of rev[stack.pop()!]) if (!seen[p]) { seen[p] = 1; stack.push(p); }
  }
  return seen;
}

/** Whether the whole of `text` matches (tests, and checking a generated output). */
export function fullMatch(dfa: ByteDfa, text: string): boolean {
  return dfa.accepting(dfa.walk(dfa.start, new Uint8Array(Buffer.from(text, 'utf8'))));
}
