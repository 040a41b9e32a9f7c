// Structured output on a shard: a request's pattern (NewSequence.constraint) as a lazy DFA over bytes, and
// per DFA state the set of tokens whose bytes keep the text completable — a bitmask the sampler applies
// (cpu::SamplingParams::allowed_mask). Masks are computed once per state by walking the vocabulary in byte
// order (tokens sharing a prefix share its walk) and cached; compiled patterns are cached per shard, so every
// request with the same schema reuses them. Every rank runs the same automaton on the same tokens, so all
// ranks sample alike (async scheduling).
import { DEAD, UNKNOWN, compileConstraint, constraintKey, type ByteDfa, type Constraint, type ConstraintSource, type TokenVocab } from '../../protocol/index.js';

/** Masks kept per pattern (each vocab/8 bytes); beyond it the oldest are dropped and recomputed when needed. */
const MAX_MASKS = 4096;
/** Compiled patterns kept per shard. */
const MAX_PATTERNS = 64;

export class TokenAutomaton {
  private readonly dfa: ByteDfa;
  private readonly masks = new Map<number, Uint8Array>();

  /** `source`: a constraint, or a regular expression. */
  constructor(source: ConstraintSource | string, private readonly vocab: TokenVocab, private readonly eos: readonly number[], maxStates?: number) {
    this.dfa = compileConstraint(typeof source === 'string' ? { pattern: source } : source, maxStates);
  }

  get start(): number {
    return this.dfa.start;
  }
  /** Masks held (computed, not yet evicted). */
  get maskCount(): number {
    return this.masks.size;
  }

  /** The state after a token; DEAD when the token breaks the pattern (EOS keeps the state). */
  advance(state: number, token: number): number {
    if (this.eos.includes(token)) return this.dfa.accepting(state) ? state : DEAD;
    const b = this.vocab.bytes[token];
    return b && b.length > 0 ? this.dfa.walk(state, b) : DEAD;
  }

  /** Bit t set: token t may come next. EOS only where the text is complete. */
  mask(state: number): Uint8Array {
    const hit = this.masks.get(state);
    if (hit) return hit;
    const { order, lcp, bytes } = this.vocab;
    const m = new Uint8Array((bytes.length + 7) >> 3);
    if (state === DEAD) {  // a replayed history that broke the pattern (not reachable through masks): end it
      for (const e of this.eos) if (e >= 0 && e < bytes.length) m[e >> 3] |= 1 << (e & 7);
      return m;
    }
    const dfa = this.dfa;
    const path = new Int32Array(256 + 1);
    let depth = 0;  // path[0..depth] are valid states for the previous token's prefix
    path[0] = state;
    for (let k = 0; k < order.length; k++) {
      const id = order[k], b = bytes[id];
      let d = Math.min(lcp[k], depth, b.length);
      let s = path[d];
      for (; d < b.length; d++) {
        let next = dfa.row(s)[b[d]];
        if (next === UNKNOWN) next = dfa.step(s, b[d]);
        s = next;
        if (s === DEAD) break;
        if (d + 1 < path.length) path[d + 1] = s;
      }
      if (s === DEAD) {
        // Every following token that shares this dead prefix (bytes 0..d) is dead too: skip them unwalked.
        while (k + 1 < order.length && lcp[k + 1] > d) k++;
        depth = Math.min(d, path.length - 1);
        continue;
      }
      depth = Math.min(d, path.length - 1);
      m[id >> 3] |= 1 << (id & 7);
    }
    // EOS where the text is complete — and where no token can continue it (a vocabulary without some byte the
    // pattern needs), so that generation ends instead of drawing from an empty distribution.
    if (this.dfa.accepting(state) || m.every((b) => b === 0)) {
      for (const e of this.eos) if (e >= 0 && e < bytes.length) m[e >> 3] |= 1 << (e & 7);
    }
    if (this.masks.size >= MAX_MASKS) this.masks.delete(this.masks.keys().next().value!);
    this.masks.set(state, m);
    return m;
  }
}

/** A shard's compiled patterns, most recently used last. */
export class AutomatonCache {
  private readonly byPattern = new Map<string, TokenAutomaton>();

  /** `maxStates`: DFA states per pattern (default MAX_DFA_STATES); a sequence whose automaton outgrows it fails alone. */
  constructor(private readonly vocab: () => TokenVocab, private readonly maxStates?: number) {}

  get(c: Constraint): TokenAutomaton {
    const key = `${c.endTokens.join(',')}\n${constraintKey(c)}`;
    let a = this.byPattern.get(key);
    if (a) this.byPattern.delete(key);
    else a = new TokenAutomaton(c, this.vocab(), c.endTokens, this.maxStates);
    this.byPattern.set(key, a);
    if (this.byPattern.size > MAX_PATTERNS) this.byPattern.delete(this.byPattern.keys().next().value!);
    return a;
  }
}
