// JSON logs for the coordinator and the shard processes: one line per record, ISO time, level names, and
// secrets removed twice over — by field path (api tokens, auth headers, credentials in config) and, when the
// caller knows its secret values, by value in the finished line (an error message that echoes a token).
import pino, { type DestinationStream, type Logger } from 'pino';

export const REDACTED = '***';

/** Field names that hold secrets wherever they appear (top level, one or two levels down). */
const SECRET_FIELDS = [
  'api_token', 'apiToken', 'token', 'authorization', 'password', 'secret',
  'hfToken', 'hf_token', 'adminToken', 'admin_token', 'accessKeyId', 'secretAccessKey', 'sessionToken',
];

/** pino redaction paths (exported for tests and for loggers built elsewhere). */
export const REDACT_PATHS: readonly string[] = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  ...SECRET_FIELDS.map((f) => `*.*.${f}`),
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  '*.headers.authorization',
];

export interface CreateLoggerOptions {
  /** pino level: fatal, error, warn, info, debug, trace or silent. */
  level: string;
  /** 'coordinator', `shard-${rank}`, or another component name; bound to every record as `name`. */
  name: 'coordinator' | `shard-${number}` | (string & {});
  /** Where lines go; default: stdout (synchronous, so nothing is lost at exit). */
  destination?: DestinationStream;
  /** Secret values (tokens from the config) removed from every line wherever they appear. */
  secrets?: readonly string[];
}

export function createLogger(opts: CreateLoggerOptions): Logger {
  const destination = opts.destination ?? pino.destination({ dest: 1, sync: true });
  const secrets = (opts.secrets ?? []).filter((s) => s !== '');
  return pino({
    level: opts.level,
    name: opts.name,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
  }, secrets.length > 0 ? redactingStream(destination, secrets) : destination);
}

/** A stream that passes each finished line through redactSecrets before `dest` sees it. */
function redactingStream(dest: DestinationStream, secrets: readonly string[]): DestinationStream {
  const target = dest as DestinationStream & { flushSync?: () => void };
  const stream: DestinationStream & { flushSync?: () => void } = {
    write: (line: string) => target.write(redactSecrets(line, secrets)),
  };
  if (typeof target.flushSync === 'function') stream.flushSync = () => target.flushSync?.();
  return stream;
}

const BEARER = /\bBearer\s+[A-Za-z0-9._~+/=-]+/g;

/**
 * `s` with every occurrence of each secret (also in its JSON-escaped form) replaced by '***', and any
 * `Bearer <credential>` masked. For free text: error messages, upstream responses.
 */
export function redactSecrets(s: string, secrets: readonly string[]): string {
  let out = s;
  const longestFirst = [...new Set(secrets.filter((x) => x !== ''))].sort((a, b) => b.length - a.length);
  for (const secret of longestFirst) {
    out = out.replaceAll(secret, REDACTED);
    const escaped = JSON.stringify(secret).slice(1, -1);
    if (escaped !== secret) out = out.replaceAll(escaped, REDACTED);
  }
  return out.replace(BEARER, `Bearer ${REDACTED}`);
}
