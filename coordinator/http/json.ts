// The shape every HTTP validator walks: a parsed JSON object, and the one predicate that says a value is one
// (not null, not an array). Its own module so the validators can share it without importing each other.
export type Json = Record<string, unknown>;

export const isJsonObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
