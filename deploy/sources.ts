// The remote sources this deployment can fetch adapters and models from, configured from env (via config).
import type { AdapterSourceClient, DiskCache } from '../coordinator/adapters/index.js';
import { HubSource } from '../coordinator/adapters/sources/hub.js';
import { S3Source } from '../coordinator/adapters/sources/s3.js';
import type { LaunchConfig } from './config/index.js';

// The AWS SDK prints a one-time "upgrade to Node 22" notice on Node 20; it is noise in JSON logs.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export interface Sources {
  hub: HubSource;
  s3: S3Source;
}

export function createSources(c: LaunchConfig, cache: DiskCache): Sources {
  const aws = c.env.aws;
  return {
    hub: new HubSource({ endpoint: c.env.hfEndpoint ?? '', cache }),
    s3: new S3Source({
      cache,
      endpointUrl: c.env.s3EndpointUrl ?? undefined,
      region: aws.region ?? undefined,
      profile: aws.profile ?? undefined,
      credentials: aws.accessKeyId && aws.secretAccessKey
        ? { accessKeyId: aws.accessKeyId, secretAccessKey: aws.secretAccessKey, sessionToken: aws.sessionToken ?? undefined }
        : undefined,
    }),
  };
}

export type { AdapterSourceClient };
