// What every remote adapter (or model) source provides. The registry calls checkAccess for EVERY request
// (with that request's token) before it is batched — even when the files are already cached — and
// fetch only when the files for that exact revision are not on disk yet.
export type SourceKind = 'hub' | 's3' | 'local';

export interface AdapterSourceClient {
  readonly kind: SourceKind;
  /**
   * Checks that `token` may read `id` at `revision` (null = default branch / latest) and returns the
   * immutable revision it resolves to (a commit sha, an S3 version or ETag digest, …).
   * Throws EngineError: adapter_unauthorized (private, no token), adapter_forbidden (token refused),
   * adapter_not_found (no such repo / revision / prefix), adapter_load (source unreachable).
   */
  checkAccess(id: string, revision: string | null, token: string | undefined): Promise<string>;
  /**
   * Makes the adapter's files (adapter_config.json + adapter_model.safetensors or .bin) available in a
   * local directory and returns it. Downloads at most once per (id, revision) even when called
   * concurrently; a partial download is never visible (DiskCache).
   */
  fetch(id: string, revision: string, token: string | undefined): Promise<string>;
}

/** Files an adapter needs; a source downloads the first weights file that exists. */
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHT_FILES = ['adapter_model.safetensors', 'adapter_model.bin'] as const;
/** Fetched when present: a sequence classifier's config.json names its labels (id2label) for /classify. */
export const ADAPTER_OPTIONAL_FILES = ['config.json'] as const;
