// Piscina worker: loads the model directory's tokenizer once per thread and answers tasks.
import { workerData } from 'node:worker_threads';
import { decodeIds, encodeText, loadTokenizer } from './load-tokenizer.js';

export interface TokenizerWorkerData {
  modelDir: string;
}

export type TokenizerTask =
  | { op: 'encode'; text: string; addSpecialTokens: boolean }
  | { op: 'encodeBatch'; texts: string[]; addSpecialTokens: boolean }
  | { op: 'decode'; ids: number[]; skipSpecialTokens: boolean }
  | { op: 'tokenStrings'; ids: number[] };

export interface TokenizerTaskResult {
  encode: number[];
  encodeBatch: number[][];
  decode: string;
  tokenStrings: string[];
}

const loaded = loadTokenizer((workerData as TokenizerWorkerData).modelDir);

export default function handle(task: TokenizerTask): TokenizerTaskResult[TokenizerTask['op']] {
  switch (task.op) {
    case 'encode':
      return encodeText(loaded, task.text, task.addSpecialTokens);
    case 'encodeBatch':
      return task.texts.map((text) => encodeText(loaded, text, task.addSpecialTokens));
    case 'decode':
      return decodeIds(loaded, task.ids, task.skipSpecialTokens);
    case 'tokenStrings':
      return task.ids.map((id) => decodeIds(loaded, [id]));
    default: {
      const unknown: never = task;
      throw new Error(`unknown tokenizer task ${JSON.stringify(unknown)}`);
    }
  }
}
