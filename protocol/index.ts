// Public surface of protocol/: the coordinator↔shard wire contract.
export { PROTOCOL_VERSION } from './version.js';
export { ProtocolError, type ProtocolErrorCode } from './errors.js';
export type {
  AdapterEvict,
  AdapterNorms,
  AdapterPrefetch,
  AdapterFailed,
  AdapterLoad,
  AdapterLoaded,
  Constraint,
  ConstraintSource,
  MergeRecipe,
  Message,
  MessageOf,
  MessageType,
  ModelInfo,
  NewSequence,
  PrefillChunk,
  RunningSequence,
  SamplingParams,
  SeqOutput,
  ShardCollective,
  ShardCollectiveRequest,
  ShardHeartbeat,
  ShardReady,
  Shutdown,
  Step,
  StepResult,
  TokenChoice,
  GeneratedToken,
  ImageData,
  ImageRef,
  VisionInfo,
} from './messages.js';
export { GREEDY, SAMPLED_LAST_STEP } from './messages.js';
export { COLLECTIVE_ID_BYTES, MESSAGE_TYPES, isMessageType, validateMessage } from './validate.js';
export { bytesToFloat32, decode, decodeAs, encode, float32ToBytes } from './codec.js';
export {
  ADAPTER_VERBS,
  CONTROL_VERBS,
  SHARD_VERBS,
  SUBJECT_ROOT,
  adapterSubject,
  checkCluster,
  collectiveSubject,
  controlSubject,
  imageDataSubject,
  shardSubject,
  shardWildcard,
  stepResultSubject,
  stepSubject,
  subjectFor,
  type AdapterVerb,
  type ControlVerb,
  type ShardVerb,
} from './subjects.js';
export { MessageBus, type MessageBusOptions, type MessageHandler, type MessageHeaders } from './bus.js';
// Structured output: the constraint language of NewSequence.constraint, shared by the coordinator (which
// checks a request's pattern) and the shards (which run it over the vocabulary's token bytes).
export { ConstraintError, MAX_CP, compileRegex, escapeRegex, parseRegex, type Ast, type Nfa } from './constraint/regex.js';
export { DEAD, LazyDfa, UNKNOWN, fullMatch, type ByteDfa } from './constraint/dfa.js';
export { parseGbnf } from './constraint/gbnf.js';
export { parseLark } from './constraint/lark.js';
export type { Grammar } from './constraint/grammar-text.js';
export { GrammarDfa, compileGrammar } from './constraint/grammar.js';
export { compileConstraint, constraintKey } from './constraint/compile.js';
export { loadTokenVocab, sortedVocab, tokenizerJsonProblem, type TokenVocab } from './constraint/token-bytes.js';
