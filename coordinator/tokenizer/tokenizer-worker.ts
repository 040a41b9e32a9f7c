// Piscina worker: loads the model directory's tokenizer once per thread and answers tasks.
import { workerData } from 'node:worker_threads';
import { ConstraintError, compileConstraint, type ConstraintSource } from '../../protocol/index.js';
import { decodeIds, encodeText, loadTokenizer } from './load-tokenizer.js';

export interface TokenizerWorkerData {
  modelDir: string;
}

export type TokenizerTask =
  | { op: 'encode'; text: string; addSpecialTokens: boolean; pair?: string }
  | { op: 'encodeBatch'; texts: string[]; addSpecialTokens: boolean }
  | { op: 'decode'; ids: number[]; skipSpecialTokens: boolean }
  | { op: 'tokenStrings'; ids: number[] }
  /** Structured output: compiles a pattern; answers why it cannot be used, or null. */
  | { op: 'checkConstraint'; source: ConstraintSource };

export interface TokenizerTaskResult {
  encode: number[];
  encodeBatch: number[][];
  decode: string;
  tokenStrings: string[];
  checkConstraint: string | null;
}

const loaded = loadTokenizer((workerData as TokenizerWorkerData).modelDir);

export default function handle(task: TokenizerTask): TokenizerTaskResult[TokenizerTask['op']] {
  switch (task.op) {
    case 'encode':
      return encodeText(loaded, task.text, task.addSpecialTokens, task.pair);
    case 'encodeBatch':
      return task.texts.map((text) => encodeText(loaded, text, task.addSpecialTokens));
    case 'decode':
      return decodeIds(loaded, task.ids, task.skipSpecialTokens);
    case 'tokenStrings':
      return task.ids.map((id) => decodeIds(loaded, [id]));
    case 'checkConstraint':
      try {
        compileConstraint(task.source);
        return null;
      } catch (e) {
        if (e instanceof ConstraintError) return e.message;
        // A pattern nested deep enough to overflow the stack, or too big for a string: the client's to simplify.
        if (e instanceof RangeError) return `the constraint is too large or nested too deeply to compile (${e.message}); simplify it`;
        throw e;
      }
    default: {
      const unknown: never = task;
      throw new Error(`unknown tokenizer task ${JSON.stringify(unknown)}`);
    }
  }
}
