// A few composable runtime validators. A validator returns its input, typed, or throws a FieldError
// whose path is filled in by the enclosing arrays and objects on the way out.

export type Validator<T> = (value: unknown) => T;
export type Infer<V> = V extends Validator<infer T> ? T : never;
type Shape = Record<string, Validator<unknown>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};

export class FieldError extends Error {
  override readonly name = 'FieldError';
  /** Path segments from the message root, e.g. ['newSeqs', '[0]', 'sampling', 'topP']. */
  readonly segments: string[] = [];

  constructor(readonly reason: string) {
    super(reason);
  }

  get path(): string {
    return this.segments.map((s, i) => (i === 0 || s.startsWith('[') ? s : `.${s}`)).join('');
  }
}

function fail(reason: string): never {
  throw new FieldError(reason);
}

/** Prepends `segment` to the path of a FieldError on its way out of a container. */
function within(err: unknown, segment: string): unknown {
  if (err instanceof FieldError) err.segments.unshift(segment);
  return err;
}

/** A short, safe rendering of a value for error messages (never echoes large payloads). */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value instanceof Uint8Array) return `binary (${value.byteLength} bytes)`;
  if (typeof value === 'object') return isPlainObject(value) ? 'a map' : `a ${value.constructor?.name ?? 'object'}`;
  return typeof value;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A safe integer in [min, max]. */
export function int(min: number, max = Number.MAX_SAFE_INTEGER): Validator<number> {
  return (v) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail(`expected an integer, got ${describe(v)}`);
    if (v < min || v > max) fail(`expected an integer in [${min}, ${max}], got ${v}`);
    return v;
  };
}

/** An array of safe integers in [min, max]; a dedicated loop because token arrays are long and hot. */
export function ints(min: number, opts: { minLength?: number } = {}): Validator<number[]> {
  const minLength = opts.minLength ?? 0;
  return (v) => {
    if (!Array.isArray(v)) fail(`expected an array, got ${describe(v)}`);
    if (v.length < minLength) fail(`expected at least ${minLength} element(s), got ${v.length}`);
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min) throw within(errorOf(int(min), x), `[${i}]`);
    }
    return v as number[];
  };
}

/** The FieldError `check` throws for `value` (which is known to be invalid). */
function errorOf(check: Validator<unknown>, value: unknown): unknown {
  try {
    check(value);
  } catch (err) {
    return err;
  }
  return new FieldError('invalid value');
}

export interface NumberRange {
  min?: number; // inclusive
  above?: number; // exclusive lower bound
  max?: number; // inclusive
}

/** A finite number within the given bounds. */
export function num(range: NumberRange = {}): Validator<number> {
  const { min, above, max } = range;
  const bounds = [
    min !== undefined ? `>= ${min}` : above !== undefined ? `> ${above}` : '',
    max !== undefined ? `<= ${max}` : '',
  ].filter(Boolean).join(' and ');
  return (v) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`expected a finite number, got ${describe(v)}`);
    if ((min !== undefined && v < min) || (above !== undefined && v <= above) || (max !== undefined && v > max)) {
      fail(`expected a number ${bounds}, got ${v}`);
    }
    return v;
  };
}

/** A log-probability: any number but NaN and +Infinity (-Infinity is a zero probability). */
export const logprob: Validator<number> = (v) => {
  if (typeof v !== 'number' || Number.isNaN(v) || v === Infinity) fail(`expected a log-probability, got ${describe(v)}`);
  return v;
};

export function str(opts: { nonEmpty?: boolean } = {}): Validator<string> {
  return (v) => {
    if (typeof v !== 'string') fail(`expected a string, got ${describe(v)}`);
    if (opts.nonEmpty && v.length === 0) fail('expected a non-empty string');
    return v;
  };
}

export const bool: Validator<boolean> = (v) => {
  if (typeof v !== 'boolean') fail(`expected a boolean, got ${describe(v)}`);
  return v;
};

/** msgpack bin. `multipleOf` checks the byte length (e.g. 4 for float32 data). */
export function bytes(opts: { multipleOf?: number } = {}): Validator<Uint8Array> {
  return (v) => {
    if (!(v instanceof Uint8Array)) fail(`expected binary data, got ${describe(v)}`);
    if (opts.multipleOf && v.byteLength % opts.multipleOf !== 0) {
      fail(`expected a byte length that is a multiple of ${opts.multipleOf}, got ${v.byteLength}`);
    }
    return v;
  };
}

export function literal<const T extends string | number>(...values: T[]): Validator<T> {
  const allowed = values.map((x) => JSON.stringify(x)).join(' | ');
  return (v) => {
    if (!values.includes(v as T)) fail(`expected ${allowed}, got ${describe(v)}`);
    return v as T;
  };
}

export function arrayOf<T>(item: Validator<T>, opts: { minLength?: number } = {}): Validator<T[]> {
  const minLength = opts.minLength ?? 0;
  return (v) => {
    if (!Array.isArray(v)) fail(`expected an array, got ${describe(v)}`);
    if (v.length < minLength) fail(`expected at least ${minLength} element(s), got ${v.length}`);
    // One try around the loop, not one per element: token arrays run to many thousands.
    let i = 0;
    try {
      for (; i < v.length; i++) item(v[i]);
    } catch (err) {
      throw within(err, `[${i}]`);
    }
    return v as T[];
  };
}

/**
 * A map with exactly these fields: every `required` one present, `optional` ones present or absent,
 * and no others (a typo'd or unexpected field is an error, never silently dropped).
 */
export function object<R extends Shape, O extends Shape = {}>(
  required: R,
  optional?: O,
): Validator<Simplify<{ [K in keyof R]: Infer<R[K]> } & { [K in keyof O]?: Infer<O[K]> }>> {
  const opt: Shape = optional ?? {};
  const requiredKeys = Object.keys(required);
  const optionalKeys = Object.keys(opt);
  return (v) => {
    if (!isPlainObject(v)) fail(`expected a map, got ${describe(v)}`);
    for (const k in v) {
      if (!Object.hasOwn(required, k) && !Object.hasOwn(opt, k)) fail(`unknown field ${describe(k)}`);
    }
    for (const k of requiredKeys) {
      if (v[k] === undefined) fail(`missing required field ${describe(k)}`);
    }
    let key = '';
    try {
      for (key of requiredKeys) required[key]!(v[key]);
      for (key of optionalKeys) {
        const field = v[key];
        if (field !== undefined) opt[key]!(field);
      }
    } catch (err) {
      throw within(err, key);
    }
    return v as never;
  };
}

/** Adds a whole-value check after `base` passed; `check` returns a reason on failure. */
export function refine<T>(base: Validator<T>, check: (value: T) => string | undefined): Validator<T> {
  return (v) => {
    const value = base(v);
    const reason = check(value);
    if (reason !== undefined) fail(reason);
    return value;
  };
}
