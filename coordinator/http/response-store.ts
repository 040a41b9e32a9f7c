// Stored Responses API responses (`store`, OpenAI's default): what GET /v1/responses/{id} returns and what a later
// request's `previous_response_id` continues. In this process's memory, least recently used dropped first past
// --response-store-entries: a restart forgets them, and with several coordinators behind a load balancer a
// follow-up must reach the one that answered (or send the conversation in `input`). Each response belongs to the
// credentials that created it (a hash of the Authorization / X-Api-Key headers): other callers get a 404, as for an id that
// never existed.
import { createHash } from 'node:crypto';

type Json = Record<string, unknown>;

export interface StoredResponse {
  /** The response object as it was returned (completed or incomplete). */
  response: Json;
  /** The conversation up to and including this response: earlier items, this request's input items, its output. */
  items: Json[];
}

interface Entry extends StoredResponse {
  owner: string;
}

/** Whose a stored response is: a digest of the request's credentials (Authorization, X-Api-Key; '' when none). */
export function ownerOf(headers: Record<string, string | string[] | undefined>): string {
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(',') : v ?? '');
  const value = `${one(headers.authorization)}\n${one(headers['x-api-key'])}`;
  return value === '\n' ? '' : createHash('sha256').update(value).digest('hex');
}

export class ResponseStore {
  private readonly entries = new Map<string, Entry>();

  /** maxEntries 0: nothing is stored (every request behaves as store: false). */
  constructor(readonly maxEntries: number) {}

  get enabled(): boolean {
    return this.maxEntries > 0;
  }

  put(id: string, owner: string, stored: StoredResponse): void {
    if (!this.enabled) return;
    this.entries.delete(id);
    this.entries.set(id, { ...stored, owner });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  /** The stored response, if it exists and belongs to owner (a use refreshes it). */
  get(id: string, owner: string): StoredResponse | undefined {
    const e = this.entries.get(id);
    if (!e || e.owner !== owner) return undefined;
    this.entries.delete(id);
    this.entries.set(id, e);
    return { response: e.response, items: e.items };
  }

  delete(id: string, owner: string): boolean {
    const e = this.entries.get(id);
    if (!e || e.owner !== owner) return false;
    return this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }
}
