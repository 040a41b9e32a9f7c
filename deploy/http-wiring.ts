// Puts the engine behind the HTTP API and starts listening.
import type { Logger } from 'pino';
import { buildHttpServer, type Metrics } from '../coordinator/http/index.js';
import type { HttpServerOptions } from '../coordinator/http/server.js';
import type { Engine } from '../coordinator/index.js';
import type { EmbeddingPipeline } from '../coordinator/http/sentence-transformers.js';
import type { SamplingDefaults } from '../coordinator/http/generation-defaults.js';

export interface HttpHandle {
  url: string;
  close(): Promise<void>;
}

export async function startHttp(engine: Engine, o: { port: number; hostname: string; logger: Logger; metrics: Metrics; adminToken?: string; apiKeys?: readonly string[]; corsAllowOrigins?: readonly string[]; responseStoreEntries?: number; embedding?: EmbeddingPipeline; samplingDefaults?: SamplingDefaults | null;
  https?: HttpServerOptions['https'] }): Promise<HttpHandle> {
  const app = await buildHttpServer(engine, { logger: o.logger, metrics: o.metrics, adminToken: o.adminToken, apiKeys: o.apiKeys,
    corsAllowOrigins: o.corsAllowOrigins, responseStoreEntries: o.responseStoreEntries, samplingDefaults: o.samplingDefaults ?? null,
    https: o.https ?? null,
    ...(o.embedding !== undefined ? { embedding: o.embedding } : {}) });
  const address = await app.listen({ port: o.port, host: o.hostname });
  return { url: address.replace('0.0.0.0', '127.0.0.1'), close: () => app.close() };
}
