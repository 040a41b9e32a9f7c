// A constraint's source (NewSequence.constraint) -> its byte automaton: a regular expression's lazy DFA or a
// grammar's lazy pushdown automaton. The coordinator calls it to refuse a bad constraint with a 422 before the
// request is scheduled; each shard calls it again to run the automaton over its vocabulary.
import type { ConstraintSource } from '../messages.js';
import { LazyDfa, type ByteDfa } from './dfa.js';
import { parseGbnf } from './gbnf.js';
import { GrammarDfa, compileGrammar } from './grammar.js';
import { parseLark } from './lark.js';
import { compileRegex } from './regex.js';

/** Throws ConstraintError saying what is wrong with the source. */
export function compileConstraint(src: ConstraintSource, maxStates?: number): ByteDfa {
  switch (src.syntax) {
    case undefined: return new LazyDfa(compileRegex(src.pattern), maxStates);
    case 'gbnf': return new GrammarDfa(compileGrammar(parseGbnf(src.pattern)), maxStates);
    case 'lark': return new GrammarDfa(compileGrammar(parseLark(src.pattern)), maxStates);
  }
}

/** A key naming the constraint (caches). */
export function constraintKey(src: ConstraintSource): string {
  return `${src.syntax ?? 'regex'}\n${src.pattern}`;
}
