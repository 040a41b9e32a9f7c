// Puts the engine behind the HTTP API and starts listening.
import type { Logger } from 'pino';
import { buildHttpServer, Metrics } from '../coordinator/http/index.js';
import type { Engine } from '../coordinator/index.js';

export interface HttpHandle {
  url: string;
  metrics: Metrics;
  close(): Promise<void>;
}

export async function startHttp(engine: Engine, o: { port: number; hostname: string; logger: Logger }): Promise<HttpHandle> {
  const metrics = new Metrics({ engine });
  const app = await buildHttpServer(engine, { logger: o.logger, metrics });
  const address = await app.listen({ port: o.port, host: o.hostname });
  return { url: address.replace('0.0.0.0', '127.0.0.1'), metrics, close: () => app.close() };
}
