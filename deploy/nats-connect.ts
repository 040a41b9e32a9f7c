// One way to connect to NATS for the coordinator and the shards: reconnect forever (a NATS restart or a network
// blip must not leave a live process that can never talk again — nats.js gives up after 10 tries by default),
// and say in the log when the connection drops and comes back.
import { connect, type NatsConnection } from 'nats';
import type { Logger } from 'pino';

export interface NatsConnectOptions {
  /** Keep trying when the server is not up yet (a shard restarted during a NATS outage); else fail at once. */
  waitForServer?: boolean;
  /** The connection came back after a drop. NATS core delivers at most once: what peers sent meanwhile is lost. */
  onReconnect?: () => void;
}

export async function connectNats(url: string, name: string, log: Logger, o: NatsConnectOptions = {}): Promise<NatsConnection> {
  const nc = await connect({ servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 1000,
    waitOnFirstConnect: o.waitForServer ?? false });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') log.warn({ server: String(s.data) }, 'lost the NATS connection; reconnecting');
      else if (s.type === 'reconnect') {
        log.info({ server: String(s.data) }, 'NATS connection is back');
        o.onReconnect?.();
      }
      else if (s.type === 'error') log.error({ err: String(s.data) }, 'NATS connection error');
    }
  })().catch(() => { /* the status iterator ends when the connection closes */ });
  return nc;
}
