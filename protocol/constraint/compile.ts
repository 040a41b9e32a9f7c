// A constraint's source (NewSequence.constraint) -> its byte automaton: a regular expression's lazy DFA or a
// grammar's lazy pushdown automaton. The coordinator calls it to refuse a bad constraint with a 422 before the
// request is scheduled; each shard calls it again to run the automaton over its vocabulary.
import type { ConstraintSource } from '../messages.js';
import { LazyDfa, type ByteDfa } from './dfa.js';
import { parseGbnf } from './gbnf.js';
import { GrammarDfa, compileGrammar } from './grammar.js';
import { parseLark } from './lark.js';
import { ConstraintError, compileRegex, parseRegex } from './regex.js';
import type { Grammar } from './grammar-text.js';

/** Rules one grammar may define: real grammars (JSON, SQL, a DSL) have tens to a few hundred; checking a grammar
 * costs more than linear time in its rules, so a huge one would hold a tokenizer worker (and each shard) for seconds. */
export const MAX_GRAMMAR_RULES = 1_000;

/** Throws ConstraintError saying what is wrong with the source. */
export function compileConstraint(src: ConstraintSource, maxStates?: number): ByteDfa {
  if (src.syntax === 'gbnf' || src.syntax === 'lark') checkRuleCount(src);
  switch (src.syntax) {
    case undefined: return new LazyDfa(compileRegex(src.pattern), maxStates);
    case 'gbnf': return new GrammarDfa(compileGrammar(parseGbnf(src.pattern)), maxStates);
    case 'lark': return new GrammarDfa(compileGrammar(parseLark(src.pattern)), maxStates);
    case 'rules': return new GrammarDfa(compileGrammar(parseRules(src.pattern)), maxStates);
  }
}

/** A cheap count of the definitions before any parsing (GBNF's `::=`, Lark's `name:` at a line start); the
 * `rules` syntax is counted once its list is read. */
function checkRuleCount(src: ConstraintSource): void {
  const count = src.syntax === 'gbnf' ? src.pattern.split('::=').length - 1
    : (src.pattern.match(/^[ \t]*[?!]?[A-Za-z_][A-Za-z0-9_]*(?:\.-?\d+)?[ \t]*:(?!:)/gm) ?? []).length;
  tooManyRules(count);
}

function tooManyRules(count: number): void {
  if (count > MAX_GRAMMAR_RULES) {
    throw new ConstraintError(`the grammar defines ${count} rules; at most ${MAX_GRAMMAR_RULES} are supported`);
  }
}

/** `["root regex", "rule 1 regex", …]` with `\R{k}` calling rule k. */
function parseRules(text: string): Grammar {
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch {
    throw new ConstraintError('rules: not a JSON array of regular expressions');
  }
  if (!Array.isArray(list) || list.length === 0 || !list.every((r) => typeof r === 'string')) {
    throw new ConstraintError('rules: not a JSON array of regular expressions');
  }
  tooManyRules(list.length);
  const bodies = list.map((r: string) => parseRegex(r, true));
  const names = bodies.map((_, k) => (k === 0 ? 'root' : `rule ${k}`));
  const check = (a: typeof bodies[number]): void => {
    if (a.t === 'call' && a.rule >= bodies.length) throw new ConstraintError(`rules: \\R{${a.rule}} calls a rule that is not there`);
    if (a.t === 'seq' || a.t === 'alt') a.items.forEach(check);
    if (a.t === 'rep') check(a.item);
  };
  bodies.forEach(check);
  return { names, bodies, root: 0 };
}

/** A key naming the constraint (caches). */
export function constraintKey(src: ConstraintSource): string {
  return `${src.syntax ?? 'regex'}\n${src.pattern}`;
}
