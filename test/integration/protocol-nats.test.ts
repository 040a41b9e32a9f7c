import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { encode as rawEncode } from '@msgpack/msgpack';
import {
  MessageBus, PROTOCOL_VERSION, ProtocolError, shardSubject, shardWildcard, stepSubject, type MessageHeaders,
  type ShardHeartbeat,
} from '../../protocol/index.js';
import { startNatsServer, type NatsServerHandle } from '../helpers/nats-server.js';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

function heartbeat(rank: number, stepId: number): ShardHeartbeat {
  return { v: PROTOCOL_VERSION, type: 'shard.heartbeat', rank, ts: Date.now(), stepId };
}

/** Resolves once `predicate` holds, polling; fails after `ms`. */
async function until(predicate: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('protocol over a real nats-server', () => {
  let server: NatsServerHandle;
  let pub: NatsConnection;
  let sub: NatsConnection;

  before(async () => {
    server = await startNatsServer();
    pub = await connect({ servers: server.url });
    sub = await connect({ servers: server.url });
  });

  after(async () => {
    await pub?.close();
    await sub?.close();
    await server?.stop();
  });

  it('delivers valid messages with trace headers and reports garbage without stopping', async () => {
    const got: Array<{ msg: ShardHeartbeat; headers: MessageHeaders }> = [];
    const invalid: Array<{ subject: string; err: ProtocolError }> = [];
    const rx = new MessageBus(sub, { onInvalid: (subject, err) => invalid.push({ subject, err }) });
    const tx = new MessageBus(pub, { onInvalid: () => assert.fail('publisher got an invalid message') });
    const subscription = rx.subscribe(shardWildcard('t1', 'heartbeat'), 'shard.heartbeat', (msg, headers) => {
      got.push({ msg, headers });
    });
    await sub.flush();

    pub.publish(shardSubject('t1', 0, 'heartbeat'), new Uint8Array([0xc1, 0x00, 0xff])); // not msgpack
    tx.publish(shardSubject('t1', 1, 'heartbeat'), heartbeat(1, 10), { traceparent: TRACEPARENT, tracestate: 'weft=1' });
    pub.publish(shardSubject('t1', 2, 'heartbeat'), rawEncode({ ...heartbeat(2, 11), v: PROTOCOL_VERSION + 1 })); // version skew
    tx.publish(shardSubject('t1', 3, 'heartbeat'), { v: PROTOCOL_VERSION, type: 'shutdown', reason: 'x' }); // wrong type
    tx.publish(shardSubject('t1', 0, 'heartbeat'), heartbeat(0, 12));
    await pub.flush();

    await until(() => got.length === 2 && invalid.length === 3, 'two valid and three invalid messages');
    assert.deepEqual(got.map((g) => g.msg.stepId), [10, 12]);
    assert.equal(got[0]!.headers.traceparent, TRACEPARENT);
    assert.equal(got[0]!.headers.tracestate, 'weft=1');
    assert.deepEqual(got[1]!.headers, {});
    assert.deepEqual(invalid.map((i) => i.subject), ['weft.t1.shard.0.heartbeat', 'weft.t1.shard.2.heartbeat', 'weft.t1.shard.3.heartbeat']);
    assert.deepEqual(invalid.map((i) => i.err.code), ['NOT_MSGPACK', 'VERSION', 'WRONG_TYPE']);
    assert.match(invalid[1]!.err.message, new RegExp(`received v=${PROTOCOL_VERSION + 1}, this build supports v=${PROTOCOL_VERSION}`));
    assert.equal(subscription.isClosed(), false);
    subscription.unsubscribe();
  });

  it('reports a throwing or rejecting handler and keeps delivering in order', async () => {
    const seen: number[] = [];
    const failures: Array<{ subject: string; err: unknown }> = [];
    const rx = new MessageBus(sub, {
      onInvalid: (_s, err) => assert.fail(`unexpected invalid message: ${err.message}`),
      onHandlerError: (subject, err) => failures.push({ subject, err }),
    });
    const subject = stepSubject('t2');
    rx.subscribe(subject, 'step', async (msg) => {
      seen.push(msg.stepId);
      if (msg.stepId === 1) throw new Error('sync-ish failure');
      await new Promise((r) => setTimeout(r, 5)); // a slow handler must not reorder later steps
      if (msg.stepId === 2) throw new Error('async failure');
    });
    await sub.flush();
    const tx = new MessageBus(pub, { onInvalid: () => undefined });
    for (let stepId = 1; stepId <= 4; stepId++) {
      tx.publish(subject, { v: PROTOCOL_VERSION, type: 'step', stepId, newSeqs: [], running: [], finished: [] });
    }
    await pub.flush();
    await until(() => seen.length === 4, 'four steps');
    assert.deepEqual(seen, [1, 2, 3, 4]);
    assert.deepEqual(failures.map((f) => (f.err as Error).message), ['sync-ish failure', 'async failure']);
    assert.ok(failures.every((f) => f.subject === subject));
  });

  it('without onHandlerError, reports handler failures to onInvalid as HANDLER_FAILED', async () => {
    const invalid: ProtocolError[] = [];
    const rx = new MessageBus(sub, { onInvalid: (_s, err) => invalid.push(err) });
    const subject = shardSubject('t3', 0, 'ready');
    let calls = 0;
    rx.subscribe(subject, 'shard.heartbeat', () => {
      calls++;
      throw new Error('boom');
    });
    await sub.flush();
    new MessageBus(pub, { onInvalid: () => undefined }).publish(subject, heartbeat(0, 1));
    await pub.flush();
    await until(() => invalid.length === 1, 'the handler failure');
    assert.equal(calls, 1);
    assert.equal(invalid[0]!.code, 'HANDLER_FAILED');
    assert.match(invalid[0]!.message, /handler for weft\.t3\.shard\.0\.ready failed: boom/);
    assert.equal((invalid[0]!.cause as Error).message, 'boom');
  });

  it('refuses to publish an invalid message', () => {
    const tx = new MessageBus(pub, { onInvalid: () => undefined });
    assert.throws(() => tx.publish('weft.t4.step', { ...heartbeat(0, 1), rank: -1 }), /rank: expected an integer in \[0, /);
  });
});
