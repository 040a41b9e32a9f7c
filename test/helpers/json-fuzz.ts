// A small seeded JSON-body fuzzer for the HTTP API tests: a deterministic PRNG, an encoder that can write what
// JSON.stringify cannot (1e999, -0, huge integers, a literal "__proto__" key, deep nesting), bodies mutated from a
// valid seed (wrong types, missing and unknown fields, extreme numbers, odd strings), whole-body mutations (not
// JSON, wrong content type, too large), and the checks every answer must pass (no 5xx, a JSON error body on a 4xx,
// no internal error inside a 200 event stream).

/** mulberry32: a tiny seeded PRNG; the same seed gives the same sequence on every machine. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

/** JSON text spliced in as is (a number JSON.stringify would not write, a duplicate or `__proto__` key, …). */
export class Raw {
  constructor(readonly text: string) {}
}
export const raw = (text: string): Raw => new Raw(text);

/** An object key written literally (so `__proto__` becomes an own key of the parsed body). */
export type Body = unknown;

/** JSON text of `v`, with Raw values spliced in. Object keys of the form `\u0001raw:<text>` are written as <text>. */
export function encode(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (v === undefined) return 'null';
  if (typeof v === 'number') return Number.isFinite(v) ? JSON.stringify(v) : 'null';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(encode).join(',')}]`;
  return `{${Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).map(([k, x]) => `${k.startsWith(RAW_KEY) ? k.slice(RAW_KEY.length) : JSON.stringify(k)}:${encode(x)}`).join(',')}}`;
}
/** Prefix of an object key written raw by encode (e.g. `"__proto__"`, or a key repeated). */
export const RAW_KEY = '\u0001raw:';

export const deepArray = (depth: number, leaf: unknown = 1): Raw => raw('['.repeat(depth) + encode(leaf) + ']'.repeat(depth));
export const deepObject = (depth: number, key = 'a', leaf: unknown = 1): Raw =>
  raw(`{${JSON.stringify(key)}:`.repeat(depth) + encode(leaf) + '}'.repeat(depth));

export const LONG = 'The shard batches adapters. '.repeat(800); // ~22 KB, ~4k tokens: past every length limit
export const HUGE_STRING = 'x'.repeat(1_500_000); // under the 2 MiB body limit

/** Values of every wrong type and edge: what a careless or hostile client sends in place of a field. */
export const WEIRD: readonly (() => unknown)[] = [
  () => null, () => true, () => false,
  () => 0, () => -1, () => 1, () => 2, () => 0.5, () => -0.5, () => 1.5, () => 1e308, () => -1e308, () => 5e-324,
  () => 2 ** 31, () => -(2 ** 31), () => 2 ** 32 + 1, () => 2 ** 53, () => 2 ** 53 + 2, () => 1e21,
  () => raw('1e999'), () => raw('-1e999'), () => raw('-0'), () => raw('123456789012345678901234567890'), () => raw('1.0000000000000000000001'),
  () => '', () => ' ', () => 'a', () => '0', () => '-1', () => 'NaN', () => 'Infinity', () => 'null', () => 'true', () => '[]', () => '{}',
  () => '\u0000', () => '\u0000\u0007\u001b[31m\r\n\t\b\f', () => 'é🙂漢字\u200b\ufeff\u202e', () => '\ud800', () => '\udc00x\ud83d',
  () => '<|endoftext|><|user|><|assistant|><|end|>', () => '{{ 7 * 7 }}{% for x in range(10) %}', () => '__proto__', () => 'constructor',
  () => '../../../../etc/passwd', () => '/', () => '.', () => 'style/../style', () => '%00%ff', () => '\\', () => '"', () => LONG,
  () => [], () => [null], () => [1, 2, 3], () => ['a', ''], () => [[]], () => [{}], () => [-1], () => [1e9], () => [0.5], () => [true],
  () => new Array(3000).fill(7), () => new Array(70).fill('a'), () => deepArray(200),
  () => ({}), () => ({ a: 1 }), () => ({ type: 'text' }), () => ({ type: null }), () => ({ '': '' }), () => deepObject(200),
  () => raw('{"__proto__":{"polluted":true}}'), () => raw('{"constructor":{"prototype":{"polluted":true}}}'),
];

/** Values for fields that take a count or an index (max_tokens, n, top_k, logprobs, …). */
export const COUNTS: readonly unknown[] = [0, -1, 1, 2, 4, 5, 6, 15, 16, 17, 63, 64, 65, 127, 128, 255, 256, 257, 1024, 2048, 4096,
  1e6, 2 ** 31 - 1, 2 ** 31, 2 ** 53 - 1, 2 ** 53, 1e300, 0.5, 1.5, raw('-0'), raw('1e999'), raw('2.0')];
/** Values for fields that take a real (temperature, top_p, penalties, biases). */
export const REALS: readonly unknown[] = [0, -0.0001, 1e-300, 5e-324, 0.01, 0.5, 0.999999, 1, 1.000001, 2, 2.0000001, 10, 100, 100.5, -2,
  -2.0000001, -100, -101, 1e308, raw('-0'), raw('1e999'), raw('-1e999')];

const COUNT_KEY = /^(max_tokens|max_new_tokens|max_completion_tokens|max_output_tokens|n|best_of|top_k|logprobs|top_logprobs|top_n_tokens|return_k_alternatives|truncate|truncate_prompt_tokens|seed|min_tokens|min_new_tokens|dimensions|top_n|limit|lora_int_id)$/;
const REAL_KEY = /^(temperature|top_p|typical_p|min_p|repetition_penalty|frequency_penalty|presence_penalty|length_penalty|density|\d+)$/;
const ODD_KEYS = ['bogus', '', 'constructor', 'toString', 'hasOwnProperty', 'k'.repeat(300), '\u0000', 'é🙂', `${RAW_KEY}"__proto__"`];

type Container = Record<string, unknown> | unknown[];
interface Slot { parent: Container; key: string | number; depth: number }

/** Every (container, key) of `v` down to `maxDepth`, objects and arrays alike. */
function slots(v: unknown, maxDepth: number, depth = 0, out: Slot[] = []): Slot[] {
  if (depth >= maxDepth || v === null || typeof v !== 'object' || v instanceof Raw) return out;
  if (Array.isArray(v)) {
    v.slice(0, 8).forEach((x, i) => {
      out.push({ parent: v, key: i, depth });
      slots(x, maxDepth, depth + 1, out);
    });
  } else {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      out.push({ parent: v as Record<string, unknown>, key: k, depth });
      slots(x, maxDepth, depth + 1, out);
    }
  }
  return out;
}

/** A deep copy (Raw values are shared: they are immutable). */
export function clone<T>(v: T): T {
  if (v === null || typeof v !== 'object' || v instanceof Raw) return v;
  if (Array.isArray(v)) return v.map(clone) as T;
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, clone(x)])) as T;
}

/** One random change somewhere in `body` (an object or array, changed in place). */
export function mutateOnce(r: Rng, body: Container): void {
  const all = slots(body, 5);
  const roll = r.next();
  if (all.length === 0 || roll < 0.08) {
    // an unknown field, at the top or inside some object
    const objects = [body, ...all.map((s) => s.parent[s.key as never] as unknown)].filter(
      (x): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Raw));
    const target = objects.length > 0 ? r.pick(objects) : null;
    if (target) target[r.pick(ODD_KEYS)] = r.pick(WEIRD)();
    return;
  }
  const s = r.pick(all);
  const old = (s.parent as Record<string | number, unknown>)[s.key];
  if (roll < 0.22) {
    // missing field (or element)
    if (Array.isArray(s.parent)) s.parent.splice(s.key as number, 1);
    else delete s.parent[s.key as string];
    return;
  }
  let value: unknown;
  const name = String(s.key);
  if (roll < 0.45 && COUNT_KEY.test(name)) value = r.pick(COUNTS);
  else if (roll < 0.45 && REAL_KEY.test(name)) value = r.pick(REALS);
  else if (roll < 0.55 && typeof old === 'number') value = r.pick([-old, old + 0.5, old * 1e6, old - 1, old + 1, 0, raw(`${old}e400`)]);
  else if (roll < 0.62) value = r.pick([[old], String(typeof old === 'object' ? JSON.stringify(old ?? null) : old), { value: old }, [old, old]]);
  else if (roll < 0.66 && typeof old === 'string') value = r.pick([old.repeat(500), `${old}\u0000`, old.toUpperCase(), ` ${old} `, old.slice(0, 1)]);
  else value = r.pick(WEIRD)();
  (s.parent as Record<string | number, unknown>)[s.key] = value;
}

export interface Sent {
  method: string;
  path: string;
  /** Raw bytes to send (already encoded), or undefined for none. */
  payload?: string | Buffer;
  headers: Record<string, string>;
  /** What was mutated, for the report. */
  label: string;
}

export const JSON_HEADERS = { 'content-type': 'application/json' };

/** A request to `path` with `body` as JSON. */
export const jsonRequest = (path: string, body: Body, label: string, method = 'POST'): Sent =>
  ({ method, path, payload: encode(body), headers: { ...JSON_HEADERS }, label });

/** Whole-body mutations: not JSON, wrong content types, truncated, too large, duplicate keys, deep nesting. */
export function wholeBodyMutation(r: Rng, path: string, seed: Body): Sent {
  const text = encode(seed);
  const cases: (() => Sent)[] = [
    () => ({ method: 'POST', path, payload: text, headers: { 'content-type': 'text/plain' }, label: 'text/plain content type' }),
    () => ({ method: 'POST', path, payload: text, headers: {}, label: 'no content type' }),
    () => ({ method: 'POST', path, payload: 'a=1&b=2', headers: { 'content-type': 'application/x-www-form-urlencoded' }, label: 'form body' }),
    () => ({ method: 'POST', path, payload: text, headers: { 'content-type': 'application/json; charset=utf-16' }, label: 'charset utf-16' }),
    () => ({ method: 'POST', path, payload: text, headers: { 'content-type': 'application/vnd.api+json' }, label: 'vendor json type' }),
    () => ({ method: 'POST', path, payload: text, headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, label: 'claims gzip' }),
    () => ({ method: 'POST', path, payload: '', headers: { ...JSON_HEADERS }, label: 'empty body' }),
    () => ({ method: 'POST', path, payload: r.pick(['null', '[]', '"text"', '123', 'true', '{}', '[{}]', '1e999']), headers: { ...JSON_HEADERS }, label: 'non-object JSON' }),
    () => ({ method: 'POST', path, payload: text.slice(0, Math.max(1, r.int(text.length))), headers: { ...JSON_HEADERS }, label: 'truncated JSON' }),
    () => ({ method: 'POST', path, payload: `${text} trailing`, headers: { ...JSON_HEADERS }, label: 'trailing garbage' }),
    () => ({ method: 'POST', path, payload: `\ufeff${text}`, headers: { ...JSON_HEADERS }, label: 'byte order mark' }),
    () => ({ method: 'POST', path, payload: text.replace(/}$/, ',}'), headers: { ...JSON_HEADERS }, label: 'trailing comma' }),
    () => ({ method: 'POST', path, payload: text.replace(/^{/, '{"a":1,"a":2,'), headers: { ...JSON_HEADERS }, label: 'duplicate keys' }),
    () => ({ method: 'POST', path, payload: "{'single': 'quotes'}", headers: { ...JSON_HEADERS }, label: 'single quotes' }),
    () => ({ method: 'POST', path, payload: text.replace(/^{/, '{"__proto__":{"x":1},'), headers: { ...JSON_HEADERS }, label: '__proto__ key' }),
    () => ({ method: 'POST', path, payload: Buffer.concat([Buffer.from('{"x":"'), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]), Buffer.from('"}')]),
      headers: { ...JSON_HEADERS }, label: 'invalid UTF-8' }),
    () => ({ method: 'POST', path, payload: '['.repeat(200_000) + ']'.repeat(200_000), headers: { ...JSON_HEADERS }, label: 'arrays nested 200000 deep' }),
    () => ({ method: 'POST', path, payload: '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000), headers: { ...JSON_HEADERS }, label: 'objects nested 100000 deep' }),
    () => ({ method: 'POST', path, payload: `{"a":"${'x'.repeat(2_200_000)}"}`, headers: { ...JSON_HEADERS }, label: 'over the body limit' }),
    () => ({ method: 'PUT', path, payload: text, headers: { ...JSON_HEADERS }, label: 'PUT' }),
    () => ({ method: 'GET', path, headers: {}, label: 'GET' }),
    () => ({ method: 'POST', path: `${path}?x=%E0%A4%A&y[]=1`, payload: text, headers: { ...JSON_HEADERS }, label: 'odd query string' }),
  ];
  return r.pick(cases)();
}

/** The kinds the server maps to a 5xx (errors.ts STATUS_BY_KIND): never acceptable as the answer to a request. */
const SERVER_KINDS = new Set(['internal', 'shard_lost']);

/** What is wrong with an answer (status, content type, body text); null when it is acceptable. */
export function problemWith(status: number, contentType: string, text: string): string | null {
  if (status >= 500) return `status ${status}`;
  if (status >= 400) {
    let j: any;
    try {
      j = JSON.parse(text);
    } catch {
      return `status ${status} without a JSON body`;
    }
    const message = typeof j?.error === 'string' ? j.error : j?.error?.message;
    if (typeof message !== 'string' || message === '') return `status ${status} without an error message`;
    return null;
  }
  if (contentType.includes('text/event-stream')) {
    for (const line of text.split('\n')) {
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') continue;
      let j: any;
      try {
        j = JSON.parse(data);
      } catch {
        return `stream event that is not JSON: ${data.slice(0, 200)}`;
      }
      const kind = j?.error_type ?? j?.error?.code ?? (j?.type === 'error' ? j?.code : undefined);
      if (typeof kind === 'string' && SERVER_KINDS.has(kind)) return `stream ended with a server error (${kind}): ${data.slice(0, 300)}`;
    }
    return null;
  }
  if (contentType.includes('application/json')) {
    try {
      JSON.parse(text);
    } catch {
      return 'a 2xx whose JSON body does not parse';
    }
  }
  return null;
}

/** Runs `jobs` with at most `limit` in flight. */
export async function pool<T>(items: readonly T[], limit: number, each: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await each(items[i]!, i);
    }
  }));
}
