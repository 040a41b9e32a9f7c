// Settings read only from environment variables (credentials and endpoints that tools share by convention).
import { ConfigError, type EnvConfig, type PreloadAdapter } from './types.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** The first of `names` that is set to a non-empty value (an empty variable counts as unset). */
export function firstEnv(env: Env, names: readonly string[]): { name: string; value: string } | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value !== '') return { name, value };
  }
  return undefined;
}

/** true/false, 1/0, yes/no, on/off (any case); anything else: undefined. */
export function parseBool(s: string): boolean | undefined {
  const v = s.trim().toLowerCase();
  if (v === 'true' || v === '1' || v === 'yes' || v === 'on') return true;
  if (v === 'false' || v === '0' || v === 'no' || v === 'off') return false;
  return undefined;
}

/** `name=id`; `allowBare`: a plain `id` also, named after itself (TGI's LORA_ADAPTERS). */
export function parseNamedAdapter(item: string, source: string, allowBare: boolean): PreloadAdapter {
  const s = item.trim();
  const eq = s.indexOf('=');
  if (eq < 0 && allowBare && s !== '') return { name: s, id: s };
  const name = s.slice(0, eq).trim();
  const id = s.slice(eq + 1).trim();
  if (eq < 0 || name === '' || id === '') {
    const form = allowBare ? 'SOURCE_ID or name=SOURCE_ID' : 'name=SOURCE_ID';
    throw new ConfigError(`${source}: expected ${form}, got '${item}'`, 'INVALID_VALUE', { source });
  }
  return { name, id };
}

function str(env: Env, ...names: string[]): string | null {
  return firstEnv(env, names)?.value ?? null;
}

export function readEnvConfig(env: Env): EnvConfig {
  const useGlobal = firstEnv(env, ['WEFT_USE_GLOBAL_HF_TOKEN', 'LORAX_USE_GLOBAL_HF_TOKEN']);
  let useGlobalHfToken = false;
  if (useGlobal) {
    const b = parseBool(useGlobal.value);
    if (b === undefined) {
      throw new ConfigError(`${useGlobal.name}: expected true or false, got '${useGlobal.value}'`, 'INVALID_VALUE',
        { source: useGlobal.name });
    }
    useGlobalHfToken = b;
  }
  const lora = str(env, 'LORA_ADAPTERS');
  const loraAdapters = lora === null ? [] : lora.split(',').filter((s) => s.trim() !== '')
    .map((s) => parseNamedAdapter(s, 'LORA_ADAPTERS', true));
  return {
    hfToken: str(env, 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN'),
    hfEndpoint: str(env, 'HF_ENDPOINT'),
    useGlobalHfToken,
    s3EndpointUrl: str(env, 'S3_ENDPOINT_URL'),
    aws: {
      accessKeyId: str(env, 'AWS_ACCESS_KEY_ID'),
      secretAccessKey: str(env, 'AWS_SECRET_ACCESS_KEY'),
      sessionToken: str(env, 'AWS_SESSION_TOKEN'),
      region: str(env, 'AWS_REGION', 'AWS_DEFAULT_REGION'),
      profile: str(env, 'AWS_PROFILE'),
    },
    loraAdapters,
  };
}

/** Environment-only variables, for help output: [names, meaning]. */
export const ENV_ONLY: readonly (readonly [string, string])[] = [
  ['HF_TOKEN, HUGGING_FACE_HUB_TOKEN', 'Hugging Face token (secret)'],
  ['HF_ENDPOINT', 'Hugging Face hub mirror URL'],
  ['WEFT_USE_GLOBAL_HF_TOKEN, LORAX_USE_GLOBAL_HF_TOKEN', 'use HF_TOKEN for requests that bring no token (true/false)'],
  ['S3_ENDPOINT_URL', 'S3-compatible endpoint for adapter_source s3'],
  ['AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN', 'S3 credentials (secret)'],
  ['AWS_REGION, AWS_DEFAULT_REGION, AWS_PROFILE', 'S3 region and profile'],
  ['LORA_ADAPTERS', 'adapters to load at boot, TGI syntax: id or name=id, comma separated'],
];

/** Config paths of the environment-only secrets. */
export const ENV_SECRET_PATHS: readonly (readonly string[])[] = [
  ['env', 'hfToken'],
  ['env', 'aws', 'accessKeyId'],
  ['env', 'aws', 'secretAccessKey'],
  ['env', 'aws', 'sessionToken'],
];
