// A context-free grammar (gbnf.ts / lark.ts) as a lazy pushdown automaton over bytes, with the same face as
// LazyDfa (dfa.ts) so a shard's token masks work alike for both. Each rule's right-hand side is compiled by
// regex.ts's Builder into one shared NFA whose `call` nodes enter another rule; a configuration is (NFA node,
// return stack), and a state is the ε-closed set of configurations reached by a byte string — made, numbered and
// given a transition row on first use, like a regex DFA state. Only configurations that can still finish are
// kept, so a token is allowed only when the text stays completable.
//
// At compile time: every rule must be defined and derive some finite text; direct left recursion (`A ::= A x |
// b`) is rewritten as a repetition; other left recursion (a rule reaching itself through others before
// consuming a byte) is refused, naming the cycle — it would make the closure infinite. At run time a call whose continuation is only the end of
// its rule pushes nothing (tail call), so right recursion such as `list ::= item list?` runs in constant stack.
import { ConstraintError, Builder, type Ast, type Nfa } from './regex.js';
import { DEAD, UNKNOWN, MAX_DFA_STATES, type ByteDfa } from './dfa.js';
import type { Grammar } from './grammar-text.js';

/** Return-stack depth (nested rule calls) beyond which a text is not followed (the state is dead there). */
export const MAX_STACK_DEPTH = 1_000;
/** Configurations one state may hold (an ambiguous grammar can multiply them). */
export const MAX_CONFIGS = 20_000;

interface Network extends Nfa {
  calls: number[];
  ruleStart: number[];
  ruleEnd: number[];
  /** Per rule: it derives some finite text. */
  productive: Uint8Array;
}

/** Compiles a grammar to its network and checks it (throws ConstraintError saying what is wrong). */
export function compileGrammar(g: Grammar): Network {
  const b = new Builder();
  const ruleStart: number[] = [], ruleEnd: number[] = [];
  g.bodies.forEach((body, r) => {
    const [s, e] = b.build(withoutDirectLeftRecursion(body, r));
    const end = b.node();
    b.eps[e].push(end);
    ruleStart.push(s);
    ruleEnd.push(end);
  });
  const net: Network = {
    start: ruleStart[g.root]!, accept: ruleEnd[g.root]!, bytes: b.bytes, next: b.next, eps: b.eps, calls: b.calls,
    ruleStart, ruleEnd, productive: new Uint8Array(0),
  };
  net.productive = fixpoint(net, (callee, ok) => ok[callee] === 1, true);
  if (!net.productive[g.root]) throw new ConstraintError(`grammar: rule '${g.names[g.root]}' derives no finite text (every alternative recurses forever)`);
  checkLeftRecursion(net, g.names);
  return net;
}

/** `A ::= A x | A y | b | c` as `A ::= (b | c) (x | y)*`: the same language, without the direct left recursion
 * expression grammars are usually written with (Lark's parsers take it; a pushdown closure cannot). */
function withoutDirectLeftRecursion(body: Ast, rule: number): Ast {
  const alts = body.t === 'alt' ? body.items : [body];
  const bases: Ast[] = [], tails: Ast[] = [];
  for (const a of alts) {
    const items = a.t === 'seq' ? a.items : [a];
    const first = items[0];
    if (first?.t === 'call' && first.rule === rule) tails.push({ t: 'seq', items: items.slice(1) });
    else bases.push(a);
  }
  if (tails.length === 0 || bases.length === 0) return body;  // no recursion here, or none that ends (refused later)
  const one = (xs: Ast[]): Ast => (xs.length === 1 ? xs[0]! : { t: 'alt', items: xs });
  return { t: 'seq', items: [one(bases), { t: 'rep', item: one(tails), min: 0, max: Infinity }] };
}

/** Per rule: whether its end is reachable from its start, moving through bytes (when `bytes`), ε-edges, and calls
 * of rules for which `through` holds — iterated to a fixpoint (productive rules; nullable ones without bytes). */
function fixpoint(net: Network, through: (callee: number, ok: Uint8Array) => boolean, bytes: boolean): Uint8Array {
  const ok = new Uint8Array(net.ruleStart.length);
  for (let changed = true; changed;) {
    changed = false;
    for (let r = 0; r < ok.length; r++) {
      if (ok[r]) continue;
      if (reaches(net.ruleStart[r]!, net.ruleEnd[r]!, (n) => {
        const c = net.calls[n]!;
        if (c >= 0) return through(c, ok) ? [net.next[n]!] : [];
        if (net.bytes[n]) return bytes ? [net.next[n]!] : [];
        return net.eps[n]!;
      })) { ok[r] = 1; changed = true; }
    }
  }
  return ok;
}

function reaches(from: number, to: number, succ: (n: number) => number[]): boolean {
  const seen = new Set<number>([from]);
  const stack = [from];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (n === to) return true;
    for (const m of succ(n)) if (!seen.has(m)) { seen.add(m); stack.push(m); }
  }
  return false;
}

/** Refuses a rule that can call itself again before any byte is consumed (directly or through other rules). */
function checkLeftRecursion(net: Network, names: string[]): void {
  const nullable = fixpoint(net, (callee, ok) => ok[callee] === 1, false);
  // leftCalls[r]: the rules r may call before consuming a byte.
  const leftCalls = net.ruleStart.map((s) => {
    const out = new Set<number>();
    const seen = new Set<number>([s]);
    const stack = [s];
    while (stack.length > 0) {
      const n = stack.pop()!;
      const c = net.calls[n]!;
      const next: number[] = c >= 0 ? (out.add(c), nullable[c] ? [net.next[n]!] : []) : net.bytes[n] ? [] : net.eps[n]!;
      for (const m of next) if (!seen.has(m)) { seen.add(m); stack.push(m); }
    }
    return [...out];
  });
  const color = new Uint8Array(names.length);  // 0 new, 1 on the path, 2 done
  const path: number[] = [];
  const visit = (r: number): void => {
    color[r] = 1;
    path.push(r);
    for (const c of leftCalls[r]!) {
      if (color[c] === 1) {
        const cycle = [...path.slice(path.indexOf(c)), c].map((x) => names[x]).join(' → ');
        throw new ConstraintError(`grammar: rule '${names[c]}' is left-recursive (${cycle} before any text); ` +
          `write it as a repetition, e.g. \`list ::= item ("," item)*\` instead of \`list ::= list "," item | item\``);
      }
      if (color[c] === 0) visit(c);
    }
    path.pop();
    color[r] = 2;
  };
  for (let r = 0; r < names.length; r++) if (color[r] === 0) visit(r);
}

/** The lazy pushdown automaton of a compiled grammar. */
export class GrammarDfa implements ByteDfa {
  readonly start: number;
  /** Interned return stacks: id -> (node to return to, the stack below; -1 = empty), and depth. */
  private readonly stackRet: number[] = [];
  private readonly stackBelow: number[] = [];
  private readonly stackDepth: number[] = [];
  private readonly stackIds = new Map<string, number>();
  /** Per state: its configurations as pairs (node, stack) flattened. */
  private readonly configs: Int32Array[] = [];
  private readonly ids = new Map<string, number>();
  private readonly rows: Int32Array[] = [];
  private readonly acceptFlags: boolean[] = [];
  /** Nodes from which their rule's end is reachable (calls of productive rules counted). */
  private readonly coReach: Uint8Array;
  /** Nodes whose continuation is only the end of their rule (a call returning there need not push). */
  private readonly tail: Uint8Array;
  private readonly isEnd: Uint8Array;

  constructor(private readonly net: Network, private readonly maxStates = MAX_DFA_STATES) {
    this.coReach = coReachable(net);
    this.isEnd = new Uint8Array(net.bytes.length);
    for (const e of net.ruleEnd) this.isEnd[e] = 1;
    this.tail = tailNodes(net, this.isEnd);
    this.start = this.intern(this.closure([net.start, -1]));
  }

  get size(): number {
    return this.configs.length;
  }
  accepting(state: number): boolean {
    return state >= 0 && this.acceptFlags[state]!;
  }
  row(state: number): Int32Array {
    return this.rows[state]!;
  }

  step(state: number, byte: number): number {
    if (state < 0) return DEAD;
    const row = this.rows[state]!;
    const known = row[byte]!;
    if (known !== UNKNOWN) return known;
    const moved: number[] = [];
    const bit = 1 << (byte & 31), word = byte >> 5;
    const cf = this.configs[state]!;
    for (let k = 0; k < cf.length; k += 2) {
      const bits = this.net.bytes[cf[k]!];
      if (bits && (bits[word]! & bit) !== 0) moved.push(this.net.next[cf[k]!]!, cf[k + 1]!);
    }
    row[byte] = moved.length === 0 ? DEAD : this.intern(this.closure(moved));
    return row[byte]!;
  }

  walk(state: number, bytes: Uint8Array): number {
    for (let i = 0; i < bytes.length && state >= 0; i++) state = this.step(state, bytes[i]!);
    return state;
  }

  private push(ret: number, below: number): number {
    const key = `${ret},${below}`;
    let id = this.stackIds.get(key);
    if (id === undefined) {
      id = this.stackRet.length;
      this.stackRet.push(ret);
      this.stackBelow.push(below);
      this.stackDepth.push(below < 0 ? 1 : this.stackDepth[below]! + 1);
      this.stackIds.set(key, id);
    }
    return id;
  }

  /** The configurations that consume a byte or accept, reachable from `seeds` (pairs) without consuming. */
  private closure(seeds: number[]): Int32Array {
    const net = this.net, nodes = net.bytes.length;
    const seen = new Set<number>();
    const kept: number[] = [];
    const work = [...seeds];
    while (work.length > 0) {
      const st = work.pop()!, n = work.pop()!;
      const key = (st + 1) * nodes + n;
      if (seen.has(key) || !this.coReach[n]) continue;
      seen.add(key);
      const callee = net.calls[n]!;
      if (callee >= 0) {
        const ret = net.next[n]!;
        if (this.tail[ret]) work.push(net.ruleStart[callee]!, st);
        else if (st < 0 || this.stackDepth[st]! < MAX_STACK_DEPTH) work.push(net.ruleStart[callee]!, this.push(ret, st));
        continue;
      }
      if (this.isEnd[n]) {
        if (st < 0) kept.push(n, -1);  // the whole text is complete here
        else work.push(this.stackRet[st]!, this.stackBelow[st]!);
        continue;
      }
      if (net.bytes[n]) kept.push(n, st);
      for (const m of net.eps[n]!) work.push(m, st);
    }
    if (kept.length / 2 > MAX_CONFIGS) {
      throw new ConstraintError(`the grammar is too ambiguous: one position has more than ${MAX_CONFIGS} ways to go on; make its alternatives distinct`);
    }
    // Canonical order, so equal sets intern to one state.
    const pairs: [number, number][] = [];
    for (let k = 0; k < kept.length; k += 2) pairs.push([kept[k]!, kept[k + 1]!]);
    pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const out = new Int32Array(pairs.length * 2);
    pairs.forEach(([n, st], k) => { out[2 * k] = n; out[2 * k + 1] = st; });
    return out;
  }

  private intern(cf: Int32Array): number {
    if (cf.length === 0) return DEAD;
    const key = cf.join(',');
    const hit = this.ids.get(key);
    if (hit !== undefined) return hit;
    if (this.configs.length >= this.maxStates) {
      throw new ConstraintError(`the grammar needs more than ${this.maxStates} automaton states for this output; ` +
        'simplify it (deep nesting and large {n,m} counts each need their own states)');
    }
    const id = this.configs.length;
    this.configs.push(cf);
    this.ids.set(key, id);
    this.rows.push(new Int32Array(256).fill(UNKNOWN));
    let accepts = false;
    for (let k = 0; k < cf.length; k += 2) if (this.isEnd[cf[k]!] && cf[k + 1] === -1) accepts = true;
    this.acceptFlags.push(accepts);
    return id;
  }
}

function coReachable(net: Network): Uint8Array {
  const n = net.bytes.length;
  const rev: number[][] = Array.from({ length: n }, () => []);
  for (let i = 0; i < n; i++) {
    for (const m of net.eps[i]!) rev[m]!.push(i);
    const c = net.calls[i]!;
    if ((net.bytes[i] || (c >= 0 && net.productive[c])) && net.next[i]! >= 0) rev[net.next[i]!]!.push(i);
  }
  const seen = new Uint8Array(n);
  const stack = [...net.ruleEnd];
  for (const e of stack) seen[e] = 1;
  while (stack.length > 0) {
    for (const p of rev[stack.pop()!]!) if (!seen[p]) { seen[p] = 1; stack.push(p); }
  }
  return seen;
}

/** Nodes from which only ε-edges lead on, all to their rule's end (the greatest such set: an ε-cycle whose exits
 * all end the rule consumes nothing, so it is a tail too). */
function tailNodes(net: Network, isEnd: Uint8Array): Uint8Array {
  const n = net.bytes.length;
  const tail = new Uint8Array(n);
  for (let x = 0; x < n; x++) tail[x] = isEnd[x] || (!net.bytes[x] && net.calls[x]! < 0 && net.eps[x]!.length > 0) ? 1 : 0;
  for (let changed = true; changed;) {
    changed = false;
    for (let x = 0; x < n; x++) {
      if (tail[x] && !isEnd[x] && !net.eps[x]!.every((m) => tail[m])) { tail[x] = 0; changed = true; }
    }
  }
  return tail;
}
