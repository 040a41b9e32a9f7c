// Structured output's admission check: a 422 unless the model can constrain output (its tokenizer's pieces are
// text: the shards read the same tokenizer.json, so a refusal here keeps the request out of their steps) and the
// constraint compiles — on a tokenizer worker, off the event loop (a large one takes a few hundred ms).
import { constraintKey, type ConstraintSource } from '../../protocol/index.js';
import type { TokenizerPool } from '../tokenizer/index.js';
import { EngineError } from './types.js';

/** Constraints remembered (a schema sent with every request compiles once). */
const REMEMBERED = 256;

export class ConstraintChecker {
  /** Why each recently checked constraint cannot be used, or null. */
  private readonly problems = new Map<string, string | null>();

  constructor(private readonly tokenizer: Pick<TokenizerPool, 'structuredOutputProblem' | 'checkConstraint'>) {}

  async check(source: ConstraintSource): Promise<void> {
    const unusable = this.tokenizer.structuredOutputProblem;
    if (unusable !== null) throw new EngineError('validation', `structured output is not available for this model: ${unusable}`);
    const key = constraintKey(source);
    let problem = this.problems.get(key);
    if (problem === undefined) {
      problem = await this.tokenizer.checkConstraint(source);
      this.problems.set(key, problem);
      if (this.problems.size > REMEMBERED) this.problems.delete(this.problems.keys().next().value!);
    }
    if (problem !== null) throw new EngineError('validation', `structured output: ${problem}`);
  }
}
