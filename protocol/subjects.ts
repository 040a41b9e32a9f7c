// NATS subject names (contract): weft.<cluster>.<family>.<verb>, e.g. weft.c1.step, weft.c1.shard.3.heartbeat.
import { ProtocolError } from './errors.js';
import type { Message } from './messages.js';

export const SUBJECT_ROOT = 'weft';

export const ADAPTER_VERBS = ['load', 'loaded', 'failed', 'evict', 'prefetch', 'norms'] as const;
export const SHARD_VERBS = ['ready', 'heartbeat'] as const;
export const CONTROL_VERBS = ['shutdown'] as const;
export type AdapterVerb = (typeof ADAPTER_VERBS)[number];
export type ShardVerb = (typeof SHARD_VERBS)[number];
export type ControlVerb = (typeof CONTROL_VERBS)[number];

const CLUSTER_TOKEN = /^[A-Za-z0-9_-]+$/;

/** Throws unless `cluster` is one subject token of [A-Za-z0-9_-]. */
export function checkCluster(cluster: string): string {
  if (typeof cluster !== 'string' || !CLUSTER_TOKEN.test(cluster)) {
    throw new ProtocolError(
      `invalid cluster name ${JSON.stringify(cluster)}: use one or more of A-Z a-z 0-9 _ -`,
      'BAD_SUBJECT',
    );
  }
  return cluster;
}

function checkVerb<V extends string>(family: string, verb: V, allowed: readonly string[]): V {
  if (!allowed.includes(verb)) {
    throw new ProtocolError(`invalid ${family} verb ${JSON.stringify(verb)}: expected one of ${allowed.join(', ')}`, 'BAD_SUBJECT');
  }
  return verb;
}

function checkRank(rank: number): number {
  if (!Number.isSafeInteger(rank) || rank < 0) {
    throw new ProtocolError(`invalid shard rank ${String(rank)}: expected a non-negative integer`, 'BAD_SUBJECT');
  }
  return rank;
}

const base = (cluster: string) => `${SUBJECT_ROOT}.${checkCluster(cluster)}`;

export function stepSubject(cluster: string): string {
  return `${base(cluster)}.step`;
}

export function stepResultSubject(cluster: string): string {
  return `${base(cluster)}.step.result`;
}

export function adapterSubject(cluster: string, verb: AdapterVerb): string {
  return `${base(cluster)}.adapter.${checkVerb('adapter', verb, ADAPTER_VERBS)}`;
}

export function shardSubject(cluster: string, rank: number, verb: ShardVerb): string {
  return `${base(cluster)}.shard.${checkRank(rank)}.${checkVerb('shard', verb, SHARD_VERBS)}`;
}

/** Where rank 0 of an NCCL group answers requests for the group's unique id: weft.<cluster>.shard.collective. */
export function collectiveSubject(cluster: string): string {
  return `${base(cluster)}.shard.collective`;
}

/** Where the coordinator publishes images' pixels for every rank: weft.<cluster>.image.data. */
export function imageDataSubject(cluster: string): string {
  return `${base(cluster)}.image.data`;
}

/** Matches `verb` from every shard: weft.<cluster>.shard.*.<verb>. */
export function shardWildcard(cluster: string, verb: ShardVerb): string {
  return `${base(cluster)}.shard.*.${checkVerb('shard', verb, SHARD_VERBS)}`;
}

export function controlSubject(cluster: string, verb: ControlVerb): string {
  return `${base(cluster)}.control.${checkVerb('control', verb, CONTROL_VERBS)}`;
}

/** The subject a message is published on (shard messages use their own `rank`). */
export function subjectFor(cluster: string, msg: Message): string {
  switch (msg.type) {
    case 'step':
      return stepSubject(cluster);
    case 'step.result':
      return stepResultSubject(cluster);
    case 'adapter.load':
      return adapterSubject(cluster, 'load');
    case 'adapter.loaded':
      return adapterSubject(cluster, 'loaded');
    case 'adapter.failed':
      return adapterSubject(cluster, 'failed');
    case 'adapter.evict':
      return adapterSubject(cluster, 'evict');
    case 'adapter.prefetch':
      return adapterSubject(cluster, 'prefetch');
    case 'adapter.norms':
      return adapterSubject(cluster, 'norms');
    case 'image.data':
      return imageDataSubject(cluster);
    case 'shard.ready':
      return shardSubject(cluster, msg.rank, 'ready');
    case 'shard.heartbeat':
      return shardSubject(cluster, msg.rank, 'heartbeat');
    case 'shard.collective.request':
    case 'shard.collective': // sent as the reply, to the requester's inbox
      return collectiveSubject(cluster);
    case 'shutdown':
      return controlSubject(cluster, 'shutdown');
    default: {
      const unhandled: never = msg;
      throw new ProtocolError(`no subject for message ${JSON.stringify(unhandled)}`, 'BAD_SUBJECT');
    }
  }
}
