// Tokenization off the main thread: a piscina pool of workers, each holding the model's tokenizer,
// plus one in-process copy for the synchronous calls streaming needs (one decode per generated token).
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { type LoadedTokenizer, decodeIds, encodeText, loadTokenizer } from './load-tokenizer.js';
import type { ConstraintSource } from '../../protocol/index.js';
import { EngineError } from '../engine/types.js';
import type { TokenizerTask, TokenizerTaskResult, TokenizerWorkerData } from './tokenizer-worker.js';

export interface TokenizerPoolOptions {
  /** Worker threads; default: a quarter of the cores, between 1 and 4. */
  threads?: number;
  /** A chat template that replaces the model's (--chat-template). */
  chatTemplate?: string;
}

export class TokenizerPool {
  readonly modelDir: string;
  readonly vocabSize: number;
  readonly eosTokenIds: number[];
  readonly bosTokenId: number | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly chatTemplate: string | null;
  readonly specialTokenIds: ReadonlySet<number>;
  readonly structuredOutputProblem: string | null;
  #closed = false;

  private constructor(
    private readonly local: LoadedTokenizer,
    private readonly pool: Piscina<TokenizerTask, unknown>,
    chatTemplate?: string,
  ) {
    const info = local.info;
    this.modelDir = info.modelDir;
    this.vocabSize = info.vocabSize;
    this.eosTokenIds = [...info.eosTokenIds];
    this.bosTokenId = info.bosTokenId;
    this.bosToken = info.bosToken;
    this.eosToken = info.eosToken;
    this.chatTemplate = chatTemplate ?? info.chatTemplate;
    this.structuredOutputProblem = info.structuredOutputProblem;
    this.specialTokenIds = new Set(info.specialTokenIds);
  }

  /**
   * Loads `modelDir`'s tokenizer and starts the workers. Rejects with a TokenizerLoadError naming the
   * directory when tokenizer.json is missing or unreadable, so the server can refuse to start.
   */
  static async create(modelDir: string, opts: TokenizerPoolOptions = {}): Promise<TokenizerPool> {
    const local = loadTokenizer(modelDir);
    const threads = opts.threads ?? Math.max(1, Math.min(4, Math.floor(availableParallelism() / 4)));
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${threads}`);
    const workerData: TokenizerWorkerData = { modelDir: local.info.modelDir };
    const pool = new Piscina<TokenizerTask, unknown>({
      filename: fileURLToPath(new URL('./tokenizer-worker.js', import.meta.url)),
      name: 'default',
      minThreads: threads,
      maxThreads: threads,
      workerData,
    });
    const tokenizerPool = new TokenizerPool(local, pool, opts.chatTemplate);
    try {
      await tokenizerPool.encode(''); // surfaces a worker that cannot load now, not on the first request
    } catch (err) {
      await pool.destroy();
      throw err;
    }
    return tokenizerPool;
  }

  /** `pair`: a second text for the tokenizer's pair template (a cross-encoder's query and document). */
  async encode(text: string, opts: { addSpecialTokens?: boolean; pair?: string } = {}): Promise<number[]> {
    return knownIds(await this.run({ op: 'encode', text, addSpecialTokens: opts.addSpecialTokens ?? true,
      ...(opts.pair !== undefined ? { pair: opts.pair } : {}) }));
  }

  async encodeBatch(texts: string[], opts: { addSpecialTokens?: boolean } = {}): Promise<number[][]> {
    return (await this.run({ op: 'encodeBatch', texts, addSpecialTokens: opts.addSpecialTokens ?? true })).map(knownIds);
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): Promise<string> {
    return this.run({ op: 'decode', ids, skipSpecialTokens: opts.skipSpecialTokens ?? false });
  }

  /** The text of each token on its own (special tokens included), e.g. for `details.tokens[].text`. */
  tokenStrings(ids: number[]): Promise<string[]> {
    return this.run({ op: 'tokenStrings', ids });
  }

  /** In-process encode; for short texts where a worker round trip would cost more than the work. */
  encodeSync(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return knownIds(encodeText(this.local, text, opts.addSpecialTokens ?? true));
  }

  /** In-process decode, for StreamingDetokenizer on the coordinator's main thread. */
  decodeSync(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return decodeIds(this.local, ids, opts.skipSpecialTokens ?? false);
  }

  /** The id of `token` in the vocabulary (added tokens included), or null. */
  tokenId(token: string): number | null {
    const id = this.local.tokenizer.token_to_id(token);
    return typeof id === 'number' ? id : null;
  }

  /** Whether `token` is one token of the vocabulary (added tokens included). */
  hasToken(token: string): boolean {
    return this.local.tokenizer.token_to_id(token) !== undefined && this.local.tokenizer.token_to_id(token) !== null;
  }

  tokenStringsSync(ids: readonly number[]): string[] {
    return ids.map((id) => decodeIds(this.local, [id]));
  }

  /** Compiles a structured-output pattern on a worker: why it cannot be used, or null. */
  checkConstraint(source: ConstraintSource): Promise<string | null> {
    return this.run({ op: 'checkConstraint', source });
  }

  /** Stops the workers; idempotent. Calls made afterwards reject. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.pool.close();
  }

  private async run<K extends TokenizerTask['op']>(
    task: Extract<TokenizerTask, { op: K }>,
  ): Promise<TokenizerTaskResult[K]> {
    if (this.#closed) throw new Error('TokenizerPool is closed');
    return (await this.pool.run(task)) as TokenizerTaskResult[K];
  }
}

/** The ids of an encoded text, or a 422 when part of it has no token (encodeText's -1: no unknown token to stand for it). */
function knownIds(ids: number[]): number[] {
  if (ids.some((id) => id < 0)) {
    throw new EngineError('validation', 'Input validation error: the tokenizer has no token for part of the text and defines no unknown ' +
      'token to stand for it; use only text the model\'s vocabulary covers');
  }
  return ids;
}
