import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode as rawEncode } from '@msgpack/msgpack';
import {
  COLLECTIVE_ID_BYTES, MESSAGE_TYPES, PROTOCOL_VERSION, ProtocolError, adapterSubject, bytesToFloat32,
  collectiveSubject, controlSubject, decode, decodeAs, encode, float32ToBytes, shardSubject, shardWildcard, stepResultSubject, stepSubject, subjectFor,
  type AdapterVerb, type Message, type MessageType, type ShardVerb, type Step,
} from '../../protocol/index.js';

const sampling = { temperature: 0.7, topK: 50, topP: 0.9, typicalP: 1, repetitionPenalty: 1.1, doSample: true, seed: 2 ** 53 - 1 };

/** One valid example of every message type. */
function examples(): Record<MessageType, Message> {
  const v = PROTOCOL_VERSION;
  return {
    step: {
      v, type: 'step', stepId: 7,
      newSeqs: [{
        seqId: 'r1', adapterSlot: -1, tokens: [1, 2, 3], blockTable: [0], sampling, generated: [],
        logits: 'all', promptLogprobs: true, topN: 3,
      }],
      running: [{ seqId: 'r0', token: 42, newBlocks: [5] }],
      finished: ['r9'],
    },
    'step.result': {
      v, type: 'step.result', stepId: 7, rank: 0, computeMs: 3.25,
      outputs: [
        {
          seqId: 'r1', token: 5, logprob: -0.5, top: [{ token: 5, logprob: -0.5 }, { token: 6, logprob: -Infinity }],
          promptLogprobs: [-1.5, -2.25], logits: float32ToBytes(new Float32Array([0.5, -1, 2.25, 3])),
        },
        { seqId: 'r0', token: 43, logprob: -0.125, top: [] },
      ],
    },
    'adapter.load': { v, type: 'adapter.load', key: 'hub:org/a@main', slot: 0, dir: '/tmp/adapters/a' },
    'adapter.loaded': { v, type: 'adapter.loaded', key: 'hub:org/a@main', slot: 0, rank: 1, bytes: 80_000_000, maxRank: 16 },
    'adapter.failed': { v, type: 'adapter.failed', key: 'hub:org/a@main', slot: 0, rank: 1, reason: 'DoRA is not supported' },
    'adapter.evict': { v, type: 'adapter.evict', key: 'hub:org/a@main', slot: 3 },
    'adapter.prefetch': { v, type: 'adapter.prefetch', key: 'hub:org/a@main', dir: '/tmp/adapters/a' },
    'adapter.norms': { v, type: 'adapter.norms', key: 'hub:org/a@main', slot: 2, ticket: 3, rank: 1, chunk: 0, chunks: 1,
      data: new Uint8Array(new Float32Array([1.5, 2.25]).buffer) },
    'image.data': { v, type: 'image.data', key: 'sha256-ab12', height: 2, width: 1, chunk: 0, chunks: 2,
      data: new Uint8Array(new Float32Array([0.5, -1.25, 2]).buffer) },
    'shard.ready': {
      v, type: 'shard.ready', rank: 1, worldSize: 2, pid: 1234,
      model: { architecture: 'LlamaForCausalLM', vocabSize: 32000, numLayers: 32, maxPositions: 4096, eosTokenIds: [2] },
      kvBlocks: 1024, blockSize: 16, adapterSlots: 8,
    },
    'shard.heartbeat': { v, type: 'shard.heartbeat', rank: 0, ts: 1_700_000_000_000, stepId: 7 },
    'shard.collective.request': { v, type: 'shard.collective.request', groupId: '/weft-12-ab01cd02', rank: 1 },
    'shard.collective': {
      v, type: 'shard.collective', groupId: '/weft-12-ab01cd02', uniqueId: Uint8Array.from({ length: 128 }, (_, i) => i),
    },
    shutdown: { v, type: 'shutdown', reason: 'SIGTERM' },
  };
}

/** msgpack of `msg` with `edit` applied to a deep copy, bypassing encode()'s validation. */
function tampered(type: MessageType, edit: (m: any) => void): Uint8Array {
  const copy = structuredClone(examples()[type]) as any;
  edit(copy);
  return rawEncode(copy);
}

function rejects(bytes: Uint8Array, code: string, message: RegExp): void {
  assert.throws(() => decode(bytes), (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${String(err)}`);
    assert.equal(err.name, 'ProtocolError');
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}

describe('protocol codec: round trip', () => {
  it('covers every message type', () => {
    assert.deepEqual([...MESSAGE_TYPES].sort(), Object.keys(examples()).sort());
  });
  for (const [type, msg] of Object.entries(examples())) {
    it(`round-trips ${type}`, () => {
      const bytes = encode(msg);
      assert.ok(bytes instanceof Uint8Array);
      assert.deepEqual(decode(bytes), msg);
      assert.deepEqual(decodeAs(bytes, msg.type), msg);
    });
  }
  it('keeps the largest seed exact', () => {
    const step = decodeAs(encode(examples().step), 'step');
    assert.equal(step.newSeqs[0]!.sampling.seed, Number.MAX_SAFE_INTEGER);
  });
  it('carries logits as binary views of the payload and back to float32', () => {
    const result = decodeAs(encode(examples()['step.result']), 'step.result');
    const logits = result.outputs[0]!.logits!;
    assert.ok(logits instanceof Uint8Array);
    assert.deepEqual([...bytesToFloat32(logits)], [0.5, -1, 2.25, 3]);
    assert.equal(result.outputs[1]!.logits, undefined);
    assert.ok(!('error' in result), 'absent optional fields stay absent');
  });
  it('bytesToFloat32 views aligned bytes and copies misaligned ones', () => {
    const f = new Float32Array([1, 2, 3]);
    const aligned = float32ToBytes(f);
    assert.equal(aligned.buffer, f.buffer);
    assert.equal(bytesToFloat32(aligned).buffer, f.buffer);
    const shifted = new Uint8Array(13);
    shifted.set(aligned, 1);
    const copy = bytesToFloat32(shifted.subarray(1));
    assert.deepEqual([...copy], [1, 2, 3]);
    assert.throws(() => bytesToFloat32(new Uint8Array(6)), /multiple of 4 bytes, got 6/);
  });
  it('omits optional fields set to undefined', () => {
    const msg = { ...examples()['step.result'], error: undefined } as Message;
    assert.ok(!('error' in decode(encode(msg))));
  });
});

describe('protocol codec: malformed payloads', () => {
  it('rejects bytes that are not msgpack', () => {
    rejects(new Uint8Array([0xc1]), 'NOT_MSGPACK', /not one msgpack value \(1 bytes\)/);
    rejects(new Uint8Array([]), 'NOT_MSGPACK', /not one msgpack value \(0 bytes\)/);
    rejects(encode(examples().shutdown).subarray(0, 5), 'NOT_MSGPACK', /not one msgpack value/);
  });
  it('keeps the msgpack error as cause', () => {
    try {
      decode(new Uint8Array([0xc1]));
      assert.fail('decoded garbage');
    } catch (err) {
      assert.ok(err instanceof ProtocolError && err.cause instanceof Error);
    }
  });
  it('rejects trailing bytes after one message', () => {
    const one = encode(examples().shutdown);
    const two = new Uint8Array(one.length * 2);
    two.set(one);
    two.set(one, one.length);
    rejects(two, 'NOT_MSGPACK', /Extra/);
  });
  it('rejects a __proto__ key', () => {
    const evil = rawEncode(JSON.parse('{"v":2,"type":"shutdown","reason":"x","__proto__":{"polluted":true}}'));
    assert.throws(() => decode(evil), ProtocolError);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
  it('rejects a top level that is not a map', () => {
    rejects(rawEncode([1, 2]), 'MALFORMED', /expected a msgpack map at the top level, got an array of 2/);
    rejects(rawEncode(42), 'MALFORMED', /got 42/);
    rejects(rawEncode(null), 'MALFORMED', /got null/);
  });
  it('rejects a missing or unsupported version, naming both versions', () => {
    const v = PROTOCOL_VERSION;
    rejects(tampered('shutdown', (m) => delete m.v), 'VERSION', new RegExp(`missing protocol version field "v" \\(this build supports v=${v}\\)`));
    rejects(tampered('shutdown', (m) => (m.v = v + 1)), 'VERSION', new RegExp(`received v=${v + 1}, this build supports v=${v}`));
    rejects(tampered('shutdown', (m) => (m.v = String(v))), 'VERSION', new RegExp(`received v="${v}", this build supports v=${v}`));
  });
  it('rejects a missing or unknown type', () => {
    rejects(tampered('shutdown', (m) => delete m.type), 'MALFORMED', /expected a string "type" field, got nothing/);
    rejects(tampered('shutdown', (m) => (m.type = 'reboot')), 'UNKNOWN_TYPE', /unknown message type "reboot"/);
    rejects(tampered('shutdown', (m) => (m.type = 'constructor')), 'UNKNOWN_TYPE', /unknown message type "constructor"/);
  });
  it('rejects wrong field types with the field path', () => {
    rejects(tampered('step', (m) => (m.stepId = '7')), 'INVALID_FIELD', /invalid "step" message: stepId: expected an integer, got "7"/);
    rejects(tampered('step', (m) => (m.stepId = 1.5)), 'INVALID_FIELD', /stepId: expected an integer, got 1.5/);
    rejects(tampered('step', (m) => (m.newSeqs[0].tokens[2] = 'x')), 'INVALID_FIELD', /newSeqs\[0\]\.tokens\[2\]: expected an integer, got "x"/);
    rejects(tampered('step', (m) => (m.running = {})), 'INVALID_FIELD', /running: expected an array, got a map/);
    rejects(tampered('step', (m) => (m.newSeqs[0].sampling.doSample = 1)), 'INVALID_FIELD', /sampling\.doSample: expected a boolean, got 1/);
    rejects(tampered('step.result', (m) => (m.outputs[0].logits = [1, 2])), 'INVALID_FIELD', /outputs\[0\]\.logits: expected binary data, got an array of 2/);
    rejects(tampered('shard.ready', (m) => (m.model.eosTokenIds = [2, null])), 'INVALID_FIELD', /model\.eosTokenIds\[1\]: expected an integer, got null/);
  });
  it('rejects out-of-range values', () => {
    rejects(tampered('adapter.load', (m) => (m.slot = -1)), 'INVALID_FIELD', /"adapter.load" message: slot: expected an integer in \[0, 9007199254740991\], got -1/);
    rejects(tampered('step', (m) => (m.newSeqs[0].adapterSlot = -2)), 'INVALID_FIELD', /newSeqs\[0\]\.adapterSlot: expected an integer in \[-1, /);
    rejects(tampered('step', (m) => (m.newSeqs[0].sampling.temperature = NaN)), 'INVALID_FIELD', /sampling\.temperature: expected a finite number, got NaN/);
    rejects(tampered('step', (m) => (m.newSeqs[0].sampling.temperature = Infinity)), 'INVALID_FIELD', /got Infinity/);
    rejects(tampered('step', (m) => (m.newSeqs[0].sampling.topP = 0)), 'INVALID_FIELD', /sampling\.topP: expected a number > 0 and <= 1, got 0/);
    rejects(tampered('step', (m) => (m.newSeqs[0].sampling.typicalP = 1.5)), 'INVALID_FIELD', /typicalP: expected a number > 0 and <= 1, got 1.5/);
    rejects(tampered('step', (m) => (m.newSeqs[0].sampling.seed = 2 ** 53)), 'INVALID_FIELD', /sampling\.seed: expected an integer, got 9007199254740992/);
    rejects(tampered('step.result', (m) => (m.outputs[0].logprob = NaN)), 'INVALID_FIELD', /outputs\[0\]\.logprob: expected a log-probability, got NaN/);
    rejects(tampered('step.result', (m) => (m.outputs[0].logits = new Uint8Array(6))), 'INVALID_FIELD', /multiple of 4, got 6/);
    rejects(tampered('adapter.loaded', (m) => (m.maxRank = 0)), 'INVALID_FIELD', /maxRank: expected an integer in \[1, /);
    rejects(tampered('shard.ready', (m) => (m.rank = 2)), 'INVALID_FIELD', /rank 2 is not below worldSize 2/);
  });
  it('rejects bad enum values, empty ids and empty token lists', () => {
    rejects(tampered('step', (m) => (m.newSeqs[0].logits = 'some')), 'INVALID_FIELD', /newSeqs\[0\]\.logits: expected "none" \| "all" \| "hidden", got "some"/);
    rejects(tampered('step', (m) => (m.finished = [''])), 'INVALID_FIELD', /finished\[0\]: expected a non-empty string/);
    rejects(tampered('step', (m) => (m.newSeqs[0].tokens = [])), 'INVALID_FIELD', /tokens: expected at least 1 element\(s\), got 0/);
  });
  it('rejects missing, unknown and null fields', () => {
    rejects(tampered('adapter.load', (m) => delete m.dir), 'INVALID_FIELD', /"adapter.load" message: missing required field "dir"/);
    rejects(tampered('step', (m) => delete m.newSeqs[0].sampling.seed), 'INVALID_FIELD', /newSeqs\[0\]\.sampling: missing required field "seed"/);
    rejects(tampered('shutdown', (m) => (m.force = true)), 'INVALID_FIELD', /unknown field "force"/);
    rejects(tampered('step', (m) => (m.running[0].extra = 1)), 'INVALID_FIELD', /running\[0\]: unknown field "extra"/);
    rejects(tampered('step.result', (m) => (m.error = null)), 'INVALID_FIELD', /error: expected a string, got null/);
  });
  it('rejects a sequence listed twice in one step', () => {
    rejects(
      tampered('step', (m) => (m.running[0].seqId = 'r1')),
      'INVALID_FIELD',
      /sequence "r1" appears more than once in newSeqs \+ running/,
    );
    rejects(tampered('step.result', (m) => (m.outputs[1].seqId = 'r1')), 'INVALID_FIELD', /"r1" appears more than once in outputs/);
  });
  it('requires a shard.collective unique id of exactly 128 bytes', () => {
    assert.equal(COLLECTIVE_ID_BYTES, 128);
    rejects(tampered('shard.collective', (m) => (m.uniqueId = new Uint8Array(127))), 'INVALID_FIELD',
      /"shard.collective" message: uniqueId: expected 128 bytes, got 127/);
    rejects(tampered('shard.collective', (m) => (m.uniqueId = new Uint8Array(129))), 'INVALID_FIELD',
      /uniqueId: expected 128 bytes, got 129/);
    rejects(tampered('shard.collective', (m) => (m.uniqueId = new Uint8Array(0))), 'INVALID_FIELD',
      /uniqueId: expected 128 bytes, got 0/);
    rejects(tampered('shard.collective', (m) => (m.uniqueId = Array.from({ length: 128 }, () => 0))), 'INVALID_FIELD',
      /uniqueId: expected binary data, got an array of 128/);
    rejects(tampered('shard.collective', (m) => delete m.uniqueId), 'INVALID_FIELD', /missing required field "uniqueId"/);
    rejects(tampered('shard.collective', (m) => (m.groupId = '')), 'INVALID_FIELD', /groupId: expected a non-empty string/);
    rejects(tampered('shard.collective', (m) => (m.rank = 1)), 'INVALID_FIELD', /unknown field "rank"/);
  });
  it('carries the unique id bytes unchanged', () => {
    const msg = decodeAs(encode(examples()['shard.collective']), 'shard.collective');
    assert.ok(msg.uniqueId instanceof Uint8Array);
    assert.deepEqual([...msg.uniqueId], Array.from({ length: 128 }, (_, i) => i));
  });
  it('accepts unique-id requests from ranks >= 1 only, with a group id', () => {
    rejects(tampered('shard.collective.request', (m) => (m.rank = 0)), 'INVALID_FIELD',
      /"shard.collective.request" message: rank: expected an integer in \[1, /);
    rejects(tampered('shard.collective.request', (m) => delete m.groupId), 'INVALID_FIELD', /missing required field "groupId"/);
    rejects(tampered('shard.collective.request', (m) => (m.groupId = 7)), 'INVALID_FIELD', /groupId: expected a string, got 7/);
  });
  it('sets the field error as cause', () => {
    try {
      decode(tampered('shutdown', (m) => (m.reason = 1)));
      assert.fail('decoded an invalid message');
    } catch (err) {
      assert.ok(err instanceof ProtocolError);
      assert.ok(err.cause instanceof Error);
    }
  });
  it('decodeAs rejects a valid message of another type', () => {
    assert.throws(() => decodeAs(encode(examples().shutdown), 'step'), (err: unknown) => {
      assert.ok(err instanceof ProtocolError);
      assert.equal(err.code, 'WRONG_TYPE');
      assert.match(err.message, /expected a "step" message, got "shutdown"/);
      return true;
    });
  });
  it('encode refuses an invalid message instead of sending it', () => {
    const bad = structuredClone(examples().step) as Step;
    bad.newSeqs[0]!.sampling.temperature = NaN;
    assert.throws(() => encode(bad), /invalid "step" message: newSeqs\[0\]\.sampling\.temperature/);
    assert.throws(() => encode({ v: PROTOCOL_VERSION, type: 'nope' } as unknown as Message), /unknown message type "nope"/);
  });
  it('does not echo huge strings into error messages', () => {
    const err = (() => {
      try {
        decode(tampered('shutdown', (m) => (m.type = 'x'.repeat(100_000))));
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    assert.ok(err && err.message.length < 200, err?.message);
  });
});

describe('protocol subjects', () => {
  it('follows weft.<cluster>.<family>.<verb>', () => {
    assert.equal(stepSubject('c1'), 'weft.c1.step');
    assert.equal(stepResultSubject('c1'), 'weft.c1.step.result');
    for (const verb of ['load', 'loaded', 'failed', 'evict'] as const) {
      assert.equal(adapterSubject('c1', verb), `weft.c1.adapter.${verb}`);
    }
    assert.equal(shardSubject('c1', 3, 'heartbeat'), 'weft.c1.shard.3.heartbeat');
    assert.equal(shardSubject('prod_eu-1', 0, 'ready'), 'weft.prod_eu-1.shard.0.ready');
    assert.equal(shardWildcard('c1', 'heartbeat'), 'weft.c1.shard.*.heartbeat');
    assert.equal(controlSubject('c1', 'shutdown'), 'weft.c1.control.shutdown');
    assert.equal(collectiveSubject('c1'), 'weft.c1.shard.collective');
    assert.throws(() => collectiveSubject('a.b'), /invalid cluster name/);
  });

  it('rejects cluster names that are not one token', () => {
    for (const bad of ['', 'a.b', 'a b', '*', '>', 'c1\n', 'é']) {
      assert.throws(() => stepSubject(bad), (err: unknown) => {
        assert.ok(err instanceof ProtocolError);
        assert.equal(err.code, 'BAD_SUBJECT');
        assert.match(err.message, /invalid cluster name/);
        return true;
      }, JSON.stringify(bad));
    }
  });

  it('rejects bad ranks and verbs', () => {
    assert.throws(() => shardSubject('c1', -1, 'ready'), /invalid shard rank -1/);
    assert.throws(() => shardSubject('c1', 1.5, 'ready'), /invalid shard rank 1.5/);
    assert.throws(() => shardSubject('c1', 0, 'gone' as ShardVerb), /invalid shard verb "gone": expected one of ready, heartbeat/);
    assert.throws(() => adapterSubject('c1', 'merge' as AdapterVerb), /invalid adapter verb "merge"/);
  });

  it('maps each message to its subject', () => {
    const v = PROTOCOL_VERSION;
    assert.equal(subjectFor('c1', { v, type: 'shard.heartbeat', rank: 2, ts: 0, stepId: 0 }), 'weft.c1.shard.2.heartbeat');
    assert.equal(subjectFor('c1', { v, type: 'adapter.failed', key: 'k', slot: 0, rank: 1, reason: '' }), 'weft.c1.adapter.failed');
    assert.equal(subjectFor('c1', { v, type: 'step', stepId: 0, newSeqs: [], running: [], finished: [] }), 'weft.c1.step');
    assert.equal(subjectFor('c1', { v, type: 'shutdown', reason: 'x' }), 'weft.c1.control.shutdown');
    assert.equal(subjectFor('c1', { v, type: 'shard.collective.request', groupId: 'g', rank: 1 }), 'weft.c1.shard.collective');
    assert.equal(subjectFor('c1', { v, type: 'shard.collective', groupId: 'g', uniqueId: new Uint8Array(128) }),
      'weft.c1.shard.collective');
  });
});
