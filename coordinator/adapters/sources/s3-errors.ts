// Turns what the AWS SDK throws into the engine's error kinds. S3 answers with a `Code` (the SDK's error
// `name`) and an HTTP status; network failures have neither and become adapter_load (424).
import { EngineError } from '../../engine/types.js';

// Codes that mean "these credentials may not read this": the server's keys are wrong, expired or refused.
const FORBIDDEN = new Set([
  'AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken',
  'TokenRefreshRequired', 'AllAccessDisabled', 'AccountProblem', 'InvalidSecurity',
]);

interface SdkErrorShape {
  name?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** `where` names what was being read (`s3://bucket/prefix`), for the message. */
export function s3Error(err: unknown, where: string): EngineError {
  if (err instanceof EngineError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorShape;
  const code = e.Code ?? e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const detail = `${code}${status ? ` (HTTP ${status})` : ''}: ${e.message ?? String(err)}`;
  if (code === 'CredentialsProviderError') {
    return new EngineError('adapter_unauthorized',
      `no S3 credentials are configured on the server to read ${where}: ${e.message ?? ''}`, { cause: err });
  }
  if (FORBIDDEN.has(code) || status === 403) {
    return new EngineError('adapter_forbidden',
      `S3 refused the server's credentials for ${where}: ${detail}`, { cause: err });
  }
  if (code === 'NoSuchBucket') {
    return new EngineError('adapter_not_found', `${where}: the bucket does not exist`, { cause: err });
  }
  if (code === 'NoSuchKey' || status === 404) {
    return new EngineError('adapter_not_found', `${where}: not found (${detail})`, { cause: err });
  }
  if (status === 401) {
    return new EngineError('adapter_unauthorized', `${where}: S3 requires credentials (${detail})`, { cause: err });
  }
  if (code === 'PermanentRedirect' || status === 301) {
    return new EngineError('adapter_load',
      `${where}: the bucket is in another region or behind another endpoint (${detail})`, { cause: err });
  }
  return new EngineError('adapter_load', `could not read ${where} from S3: ${detail}`, { cause: err });
}
