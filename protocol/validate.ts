// Runtime schemas of every message, one table entry per `type`, checked against messages.ts at compile time.
import { ProtocolError } from './errors.js';
import type { Message, MessageOf, MessageType } from './messages.js';
import {
  FieldError, arrayOf, bool, bytes, describe, int, ints, isPlainObject, literal, logprob, num, object, refine, str,
  type Validator,
} from './schema.js';
import { PROTOCOL_VERSION } from './version.js';

/** Bytes in a ShardCollective's uniqueId: NCCL_UNIQUE_ID_BYTES. */
export const COLLECTIVE_ID_BYTES = 128;

const id = str({ nonEmpty: true });
const count = int(0); // ids, positions, sizes: non-negative integers
const positive = int(1);
const tokenIds = ints(0); // token and block ids
const version = literal(PROTOCOL_VERSION);

const sampling = object({
  temperature: num({ min: 0 }),
  topK: count,
  topP: num({ above: 0, max: 1 }),
  typicalP: num({ above: 0, max: 1 }),
  repetitionPenalty: num({ above: 0 }),
  doSample: bool,
  seed: count,
}, { minP: num({ min: 0, max: 1 }), frequencyPenalty: num({ min: -2, max: 2 }), presencePenalty: num({ min: -2, max: 2 }),
  logitBias: arrayOf(object({ token: count, bias: num({ min: -100, max: 100 }) })), minTokens: count, endTokens: tokenIds,
  allowedTokens: tokenIds, badWords: arrayOf(tokenIds), prediction: tokenIds });

const newSequence = object({
  seqId: id,
  adapterSlot: int(-1),
  tokens: ints(0, { minLength: 1 }),
  blockTable: tokenIds,
  sampling,
  generated: tokenIds,
  logits: literal('none', 'all', 'hidden'),
  promptLogprobs: bool,
  topN: count,
}, { pending: count, cached: count, pooling: literal('mean', 'max', 'cls'), constraint: object({ pattern: str({ nonEmpty: true }), endTokens: tokenIds }, { syntax: literal('gbnf', 'lark', 'rules') }),
  images: arrayOf(object({ key: id, start: count, length: positive })) });

const prefillChunk = object({ seqId: id, tokens: ints(0, { minLength: 1 }), pending: count });

const collectiveId = refine(bytes(), (b) =>
  b.byteLength === COLLECTIVE_ID_BYTES ? undefined : `expected ${COLLECTIVE_ID_BYTES} bytes, got ${b.byteLength}`);

const mergeRecipe = object({
  dirs: arrayOf(id, { minLength: 1 }),
  weights: arrayOf(num(), { minLength: 1 }),
  strategy: literal('linear', 'ties', 'dare_linear', 'dare_ties', 'cat'),
  majoritySignMethod: literal('total', 'frequency'),
  seed: count,
}, { density: num({ above: 0, max: 1 }) });
const runningSequence = object({ seqId: id, token: int(-1), newBlocks: tokenIds }, { draft: count }); // -1: SAMPLED_LAST_STEP

const tokenChoice = object({ token: count, logprob });
const seqOutput = object(
  { seqId: id, token: count, logprob, top: arrayOf(tokenChoice) },
  { promptLogprobs: arrayOf(logprob), promptTop: arrayOf(arrayOf(tokenChoice)),
    logits: bytes({ multipleOf: 4 }), hidden: bytes({ multipleOf: 4 }), error: str({ nonEmpty: true }),
    more: arrayOf(object({ token: count, logprob, top: arrayOf(tokenChoice) })), drafted: count },
);

/** The first seq id that occurs twice in `ids`, if any. */
function firstDuplicate(ids: Iterable<string>): string | undefined {
  const seen = new Set<string>();
  for (const x of ids) {
    if (seen.has(x)) return x;
    seen.add(x);
  }
  return undefined;
}

function duplicateReason(what: string, ids: Iterable<string>): string | undefined {
  const dup = firstDuplicate(ids);
  return dup === undefined ? undefined : `sequence ${describe(dup)} appears more than once in ${what}`;
}

const schemas: { [K in MessageType]: Validator<MessageOf<K>> } = {
  step: refine(
    object({
      v: version,
      type: literal('step'),
      stepId: count,
      newSeqs: arrayOf(newSequence),
      running: arrayOf(runningSequence),
      finished: arrayOf(id),
    }, { chunks: arrayOf(prefillChunk) }),
    (m) => duplicateReason('newSeqs + running + chunks', [...m.newSeqs, ...m.running, ...(m.chunks ?? [])].map((s) => s.seqId)),
  ),
  'step.result': refine(
    object(
      {
        v: version,
        type: literal('step.result'),
        stepId: count,
        rank: count,
        outputs: arrayOf(seqOutput),
        computeMs: num({ min: 0 }),
      },
      { error: str(), fatal: bool },
    ),
    (m) => duplicateReason('outputs', m.outputs.map((o) => o.seqId)),
  ),
  'adapter.load': object({ v: version, type: literal('adapter.load'), key: id, slot: count, dir: str() }, { merge: mergeRecipe }),
  'adapter.prefetch': object({ v: version, type: literal('adapter.prefetch'), key: id, dir: str() }, { merge: mergeRecipe }),
  'adapter.loaded': object({
    v: version,
    type: literal('adapter.loaded'),
    key: id,
    slot: count,
    rank: count,
    bytes: count,
    maxRank: positive,
  }, { fromHost: bool, hostBytes: count, readMs: num({ min: 0 }), installMs: num({ min: 0 }), dora: bool }),
  'adapter.failed': object({
    v: version,
    type: literal('adapter.failed'),
    key: id,
    slot: count,
    rank: count,
    reason: str(),
  }),
  'adapter.evict': object({ v: version, type: literal('adapter.evict'), key: id, slot: count }),
  'adapter.norms': object({
    v: version,
    type: literal('adapter.norms'),
    key: id,
    slot: count,
    ticket: positive,
    rank: count,
    chunk: count,
    chunks: positive,
    data: bytes({ multipleOf: 4 }),
  }, { error: str() }),
  'image.data': refine(
    object({
      v: version,
      type: literal('image.data'),
      key: id,
      height: positive,
      width: positive,
      chunk: count,
      chunks: positive,
      data: bytes({ multipleOf: 4 }),
    }),
    (m) => (m.chunk < m.chunks ? undefined : `chunk ${m.chunk} is not below chunks ${m.chunks}`),
  ),
  'shard.ready': refine(
    object({
      v: version,
      type: literal('shard.ready'),
      rank: count,
      worldSize: positive,
      pid: positive,
      model: object({
        architecture: id,
        vocabSize: positive,
        numLayers: positive,
        maxPositions: positive,
        eosTokenIds: tokenIds,
      }, { ropeLongFrom: positive, hiddenSize: positive,
        vision: object({ imageTokenId: count }, { tokensPerImage: positive, imageSize: positive, patchSize: positive,
          mergeSize: positive, bidirectionalImages: bool, rowBreaks: bool }) }),
      kvBlocks: positive,
      blockSize: positive,
      adapterSlots: count,
    }),
    (m) => (m.rank < m.worldSize ? undefined : `rank ${m.rank} is not below worldSize ${m.worldSize}`),
  ),
  'shard.heartbeat': object({
    v: version,
    type: literal('shard.heartbeat'),
    rank: count,
    ts: num({ min: 0 }),
    stepId: count,
  }),
  'shard.collective.request': object({
    v: version,
    type: literal('shard.collective.request'),
    groupId: id,
    rank: positive, // rank 0 makes the id, it never asks for one
  }),
  'shard.collective': object({
    v: version,
    type: literal('shard.collective'),
    groupId: id,
    uniqueId: collectiveId,
  }),
  shutdown: object({ v: version, type: literal('shutdown'), reason: str() }),
};

/** Every message type, in a stable order. */
export const MESSAGE_TYPES = Object.freeze(Object.keys(schemas) as MessageType[]);

export function isMessageType(value: unknown): value is MessageType {
  return typeof value === 'string' && Object.hasOwn(schemas, value);
}

/**
 * Checks that `value` is one complete, valid message of this protocol version and returns it unchanged
 * (no copy), typed. Throws ProtocolError otherwise; never returns a partly valid object.
 */
export function validateMessage(value: unknown): Message {
  if (!isPlainObject(value)) {
    throw new ProtocolError(`expected a msgpack map at the top level, got ${describe(value)}`, 'MALFORMED');
  }
  const { v, type } = value;
  if (v === undefined) {
    throw new ProtocolError(`missing protocol version field "v" (this build supports v=${PROTOCOL_VERSION})`, 'VERSION');
  }
  if (v !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      `unsupported protocol version: received v=${describe(v)}, this build supports v=${PROTOCOL_VERSION}`,
      'VERSION',
    );
  }
  if (typeof type !== 'string') throw new ProtocolError(`expected a string "type" field, got ${describe(type)}`, 'MALFORMED');
  if (!isMessageType(type)) throw new ProtocolError(`unknown message type ${describe(type)}`, 'UNKNOWN_TYPE');
  try {
    return schemas[type](value);
  } catch (err) {
    if (!(err instanceof FieldError)) throw err;
    const where = err.path ? `${err.path}: ` : '';
    throw new ProtocolError(`invalid "${type}" message: ${where}${err.reason}`, 'INVALID_FIELD', { cause: err });
  }
}
