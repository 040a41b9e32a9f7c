// JSON Schema -> the regular expression of the JSON texts it accepts, for structured output (TGI `grammar`
// {type: "json"}, LoRAX / OpenAI `response_format`). The output is compact JSON: properties in the schema's
// order, one optional space after `:` and `,`, no other whitespace (free whitespace lets a model pad forever).
// Numbers are bounded in length (an integer has at most 16 digits: past 2^53 JSON numbers lose precision).
// Keywords that constrain values but cannot be expressed here are refused by name rather than ignored.
// subschemaRegex also spells the values as Python literals (literal-syntax.ts), for pythonic tool calls.
// A recursive schema (a $ref to a schema that contains it, `#` included) is not regular: jsonSchemaConstraint
// then makes each $ref target a rule of a grammar (syntax 'rules': one regular expression per rule, `\R{k}`
// calling rule k), which the shards run as a pushdown automaton.
import { ConstraintError, escapeRegex, type ConstraintSource } from '../../protocol/index.js';
import { numberRange, type NumericBounds } from './json-number-range.js';
import { jsonStringPattern } from './json-string-pattern.js';
import { JSON_SYNTAX, type LiteralSyntax } from './literal-syntax.js';

/** Whitespace allowed after `:` and `,`: one optional space. */
export const JSON_SP = ' ?';
const SP = JSON_SP;
const INTEGER = '-?(?:0|[1-9][0-9]{0,15})';
const NUMBER = `${INTEGER}(?:\\.[0-9]{1,16})?(?:[eE][+-]?[0-9]{1,3})?`;
/** A string of any characters, in `syntax`. */
const stringOf = (syntax: LiteralSyntax) => `"${syntax.char}*"`;
/** Container nesting of a value whose schema says nothing (`{}`, or json_object without a schema). */
export const FREE_JSON_DEPTH = 3;

const IPV4_PART = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const H16 = '[0-9a-fA-F]{1,4}';
/** RFC 1123 host names: dot-separated labels of 1–63 letters, digits and inner hyphens (the 253-character total is not counted). */
const HOSTNAME = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*';
const DUR_TIME = 'T(?:[0-9]{1,9}H(?:[0-9]{1,9}M(?:[0-9]{1,9}S)?)?|[0-9]{1,9}M(?:[0-9]{1,9}S)?|[0-9]{1,9}S)';
const FORMATS: Record<string, string> = {
  'date': '[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])',
  'time': '(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?',
  'uuid': '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}',
};
FORMATS['date-time'] = `${FORMATS.date}T${FORMATS.time}`;
FORMATS.ipv4 = `${IPV4_PART}(?:\\.${IPV4_PART}){3}`;
// Every RFC 4291 text form of an address (:: anywhere), hexadecimal groups only (no embedded IPv4 tail).
FORMATS.ipv6 = `(?:(?:${H16}:){7}${H16}|(?:${H16}:){1,7}:|(?:${H16}:){1,6}:${H16}|(?:${H16}:){1,5}(?::${H16}){1,2}|` +
  `(?:${H16}:){1,4}(?::${H16}){1,3}|(?:${H16}:){1,3}(?::${H16}){1,4}|(?:${H16}:){1,2}(?::${H16}){1,5}|${H16}:(?::${H16}){1,6}|` +
  `:(?:(?::${H16}){1,7}|:))`;
FORMATS.hostname = HOSTNAME;
// A dot-atom local part (RFC 5322's printable specials, no quoted strings) at a host name.
FORMATS.email = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@" + HOSTNAME;
// ISO 8601 durations as RFC 3339 appendix A spells them (P1Y2M3DT4H5M6S, P2W, PT30M), components of ≤ 9 digits.
FORMATS.duration = `P(?:(?:[0-9]{1,9}D|[0-9]{1,9}M(?:[0-9]{1,9}D)?|[0-9]{1,9}Y(?:[0-9]{1,9}M(?:[0-9]{1,9}D)?)?)(?:${DUR_TIME})?|${DUR_TIME}|[0-9]{1,9}W)`;

const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$schema', '$id', '$comment', 'deprecated',
  'readOnly', 'writeOnly', '$defs', 'definitions', 'strict', 'name']);
const KNOWN = new Set(['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'prefixItems', 'additionalItems',
  'type', 'properties', 'required', 'additionalProperties', 'patternProperties', 'propertyNames', 'minProperties',
  'maxProperties', 'items', 'minItems', 'maxItems', 'uniqueItems', 'enum',
  'const', 'anyOf', 'oneOf', 'allOf', '$ref', 'minLength', 'maxLength', 'pattern', 'format', 'nullable']);
/** $ref expansions nested inside each other (a recursive schema is cut off here). */
const MAX_REF_DEPTH = 8;
/** Schemas nested inside each other (the compiler recurses per level). */
const MAX_SCHEMA_DEPTH = 64;
/** Characters of the regular expression one (sub)schema may compile to: an array's item appears twice in its
 * pattern, so arrays of arrays double it per level — refused here rather than built until memory runs out. */
const MAX_PATTERN_CHARS = 1_000_000;

type Schema = Record<string, unknown> | boolean;

/** A value of any JSON type, containers nested at most `depth` deep (spelled in `syntax`). */
export function freeJsonValue(depth: number, syntax: LiteralSyntax = JSON_SYNTAX): string {
  const leaves = [stringOf(syntax), NUMBER, syntax.true, syntax.false, syntax.null];
  if (depth <= 0) return `(?:${leaves.join('|')})`;
  const inner = freeJsonValue(depth - 1, syntax);
  return `(?:${[...leaves, objectOf(inner, syntax), arrayOf(inner, 0, Infinity)].join('|')})`;
}
function objectOf(value: string, syntax: LiteralSyntax): string {
  const member = `${stringOf(syntax)}:${SP}${value}`;
  return `\\{(?:${member}(?:,${SP}${member})*)?\\}`;
}
/** A JSON object of any members: what `response_format: {type: "json_object"}` asks for. */
export function freeJsonObject(): string {
  return objectOf(freeJsonValue(FREE_JSON_DEPTH - 1), JSON_SYNTAX);
}

function arrayOf(item: string, min: number, max: number): string {
  return listOf('\\[', '\\]', item, min, max);
}
/** `open` item (, item)* `close` with min..max items: an array's elements or a map's members. */
function listOf(open: string, close: string, item: string, min: number, max: number): string {
  const more = (lo: number, hi: number) => `(?:,${SP}${item}){${lo},${hi === Infinity ? '' : hi}}`;
  if (max === 0) return `${open}${close}`;
  const body = `${item}${more(Math.max(0, min - 1), max === Infinity ? Infinity : max - 1)}`;
  return min === 0 ? `${open}(?:${body})?${close}` : `${open}${body}${close}`;
}

/** A $ref met inside its own expansion. */
class Recursive extends Error {}

function rootOf(schema: unknown): Record<string, unknown> {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new ConstraintError('the JSON schema must be an object');
  }
  return schema as Record<string, unknown>;
}

/** The regular expression of a schema's texts; a recursive schema is refused (tool parameters are inlined into
 * one expression with the other tools'). */
/** An array whose first elements follow `prefix` in order and the rest `rest` (null: none), minItems..maxItems long. */
function tupleOf(prefix: string[], rest: string | null, min: number, max: number, at: string): string {
  const limit = Math.min(max, rest === null ? prefix.length : Infinity);
  if (min > limit) throw new ConstraintError(`minItems ${min} at ${at} is more than the ${limit} items the schema allows`);
  const sep = (i: number) => (i === 0 ? '' : `,${SP}`);
  // The elements from index i on, i written so far: each prefix element present only if the ones before are.
  const from = (i: number): string => {
    if (i >= limit) return '';
    if (i >= prefix.length) {
      const lo = Math.max(0, min - i), hi = limit - i;
      const one = `${sep(i)}${rest}`, more = `(?:,${SP}${rest}){${Math.max(0, lo - 1)},${hi === Infinity ? '' : hi - 1}}`;
      return lo > 0 ? `${one}${more}` : `(?:${one}${more})?`;
    }
    const piece = `${sep(i)}${prefix[i]}${from(i + 1)}`;
    return i < min ? piece : `(?:${piece})?`;
  };
  return `\\[${from(0)}\\]`;
}

export function jsonSchemaRegex(schema: unknown): string {
  return subschemaRegex(schema, rootOf(schema), '#');
}

/** The regular expression of the values of `schema`, a part of `root` (its $refs point into root), spelled in
 * `syntax`: what a tool-call format that writes each argument on its own compiles; a recursive schema is refused. */
export function subschemaRegex(root: unknown, schema: unknown, at: string, syntax: LiteralSyntax = JSON_SYNTAX): string {
  try {
    return new SchemaCompiler(rootOf(root), false, syntax).value(schema as Schema, at, 0);
  } catch (e) {
    if (e instanceof Recursive) {
      throw new ConstraintError(`${e.message} (a recursive schema): recursive schemas are supported in response_format and guided_json, not here`);
    }
    throw e;
  }
}

/** A schema as a constraint: its regular expression, or for a recursive schema, its grammar. */
export function jsonSchemaConstraint(schema: unknown): ConstraintSource {
  const root = rootOf(schema);
  try {
    return { pattern: new SchemaCompiler(root, false).value(root, '#', 0) };
  } catch (e) {
    if (!(e instanceof Recursive)) throw e;
  }
  const c = new SchemaCompiler(root, true);
  const top = c.value(root, '#', 0);
  return { pattern: JSON.stringify([top, ...c.rules]), syntax: 'rules' };
}

class SchemaCompiler {
  /** Rules mode: each $ref target's expression (rule k is rules[k - 1]; rule 0 is the whole schema). */
  readonly rules: string[] = [];
  private readonly ruleIds = new Map<string, number>();
  /** Inline mode: the $refs being expanded. */
  private readonly expanding: string[] = [];

  constructor(private readonly root: Record<string, unknown>, private readonly asRules: boolean,
    private readonly syntax: LiteralSyntax = JSON_SYNTAX) {}

  private depth = 0;

  value(s: Schema, at: string, refDepth: number): string {
    if (++this.depth > MAX_SCHEMA_DEPTH) throw new ConstraintError(`the schema nests more than ${MAX_SCHEMA_DEPTH} levels deep (at ${at.slice(0, 200)})`);
    try {
      const pattern = this.valueOf(s, at, refDepth);
      if (pattern.length > MAX_PATTERN_CHARS) {
        throw new ConstraintError(`the schema at ${at.slice(0, 200)} compiles to more than ${MAX_PATTERN_CHARS} pattern characters ` +
          '(arrays of arrays nested deep, or very long enums?); simplify it');
      }
      return pattern;
    } finally {
      this.depth--;
    }
  }

  private valueOf(s: Schema, at: string, refDepth: number): string {
    if (s === true) return freeJsonValue(FREE_JSON_DEPTH, this.syntax);
    if (s === false || typeof s !== 'object' || s === null || Array.isArray(s)) {
      throw new ConstraintError(`schema at ${at} must be an object (or true)`);
    }
    for (const k of Object.keys(s)) {
      if (!KNOWN.has(k) && !ANNOTATIONS.has(k)) {
        throw new ConstraintError(`schema keyword '${k}' (at ${at}) is not supported in structured output; supported: ${[...KNOWN].join(', ')}`);
      }
    }
    if (s.$ref !== undefined) return this.ref(s.$ref, at, refDepth);
    if (s.const !== undefined) return escapeRegex(this.syntax.literal(s.const));
    if (s.enum !== undefined) {
      if (!Array.isArray(s.enum) || s.enum.length === 0) throw new ConstraintError(`'enum' at ${at} must be a non-empty array`);
      return `(?:${s.enum.map((v) => escapeRegex(this.syntax.literal(v))).join('|')})`;
    }
    for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
      const list = s[key];
      if (list === undefined) continue;
      if (!Array.isArray(list) || list.length === 0) throw new ConstraintError(`'${key}' at ${at} must be a non-empty array`);
      if (key === 'allOf' && list.length !== 1) throw new ConstraintError(`'allOf' with more than one schema (at ${at}) is not supported`);
      return `(?:${list.map((x, i) => this.value(x as Schema, `${at}/${key}/${i}`, refDepth)).join('|')})`;
    }
    let types: unknown[] = s.type === undefined ? [] : Array.isArray(s.type) ? s.type : [s.type];
    if (s.nullable === true && types.length > 0) types = [...types, 'null'];
    if (types.length === 0) {
      if (s.properties !== undefined) types = ['object'];
      else if (s.items !== undefined || s.prefixItems !== undefined) types = ['array'];
      else return freeJsonValue(FREE_JSON_DEPTH, this.syntax);
    }
    const alts = types.map((t) => this.typed(s, String(t), at, refDepth));
    return alts.length === 1 ? alts[0] : `(?:${alts.join('|')})`;
  }

  private typed(s: Record<string, unknown>, type: string, at: string, refDepth: number): string {
    switch (type) {
      case 'string': return this.string(s, at);
      case 'integer': return this.bounded(s, true, at) ?? INTEGER;
      case 'number': return this.bounded(s, false, at) ?? NUMBER;
      case 'boolean': return `(?:${this.syntax.true}|${this.syntax.false})`;
      case 'null': return this.syntax.null;
      case 'array': {
        const min = count(s.minItems, 'minItems', at) ?? 0, max = count(s.maxItems, 'maxItems', at) ?? Infinity;
        if (max < min) throw new ConstraintError(`maxItems < minItems at ${at}`);
        // Telling an element from every earlier one is not regular: refused unless no two elements can be written.
        if (s.uniqueItems !== undefined && typeof s.uniqueItems !== 'boolean') throw new ConstraintError(`'uniqueItems' at ${at} must be a boolean`);
        if (s.uniqueItems === true && max > 1) throw new ConstraintError(`'uniqueItems: true' (at ${at}) is not supported in structured output unless maxItems <= 1`);
        // Tuples: prefixItems (2020-12; pydantic's tuples) with `items` for the rest, or draft 7's items array with additionalItems.
        const prefix = s.prefixItems ?? (Array.isArray(s.items) ? s.items : undefined);
        const restSchema = s.prefixItems !== undefined ? s.items : Array.isArray(s.items) ? s.additionalItems : s.items;
        const item = restSchema === false ? null
          : restSchema === undefined ? freeJsonValue(FREE_JSON_DEPTH - 1, this.syntax) : this.value(restSchema as Schema, `${at}/items`, refDepth);
        if (prefix === undefined) return item === null ? '\\[\\]' : arrayOf(item, min, max);
        if (!Array.isArray(prefix)) throw new ConstraintError(`'prefixItems' at ${at} must be an array of schemas`);
        return tupleOf(prefix.map((p, i) => this.value(p as Schema, `${at}/prefixItems/${i}`, refDepth)), item, min, max, at);
      }
      case 'object': return this.object(s, at, refDepth);
      default: throw new ConstraintError(`unknown type '${type}' at ${at}`);
    }
  }

  /** minimum / maximum / exclusiveMinimum / exclusiveMaximum (a number, or draft 4's boolean beside the bound)
   * as an exact range; undefined when none is given. */
  private bounded(s: Record<string, unknown>, integer: boolean, at: string): string | undefined {
    const b: NumericBounds = {};
    const num = (k: string): number | undefined => {
      const v = s[k];
      if (v === undefined || typeof v === 'boolean') return undefined;
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConstraintError(`'${k}' at ${at} must be a number`);
      return v;
    };
    const tighter = (a: number | undefined, aEx: boolean, c: number | undefined, lower: boolean): [number | undefined, boolean] => {
      if (c === undefined) return [a, aEx];
      if (a === undefined || (lower ? c >= a : c <= a)) return [c, true];
      return [a, aEx];
    };
    [b.min, b.minExclusive] = tighter(num('minimum'), s.exclusiveMinimum === true, num('exclusiveMinimum'), true);
    [b.max, b.maxExclusive] = tighter(num('maximum'), s.exclusiveMaximum === true, num('exclusiveMaximum'), false);
    if (b.min === undefined && b.max === undefined) return undefined;
    return numberRange(b, integer, at);
  }

  private string(s: Record<string, unknown>, at: string): string {
    if (s.pattern !== undefined) {
      if (typeof s.pattern !== 'string') throw new ConstraintError(`'pattern' at ${at} must be a string`);
      return `"${jsonStringPattern(s.pattern, at)}"`;
    }
    if (s.format !== undefined) {
      const f = FORMATS[String(s.format)];
      if (!f) throw new ConstraintError(`string format '${String(s.format)}' (at ${at}) is not supported; supported: ${Object.keys(FORMATS).join(', ')}`);
      return `"${f}"`;
    }
    const min = count(s.minLength, 'minLength', at) ?? 0, max = count(s.maxLength, 'maxLength', at);
    if (max !== undefined && max < min) throw new ConstraintError(`maxLength < minLength at ${at}`);
    if (min === 0 && max === undefined) return stringOf(this.syntax);
    return `"${this.syntax.char}{${min},${max ?? ''}}"`;
  }

  private object(s: Record<string, unknown>, at: string, refDepth: number): string {
    const props = s.properties ?? {};
    if (typeof props !== 'object' || props === null || Array.isArray(props)) throw new ConstraintError(`'properties' at ${at} must be an object`);
    const required = new Set(Array.isArray(s.required) ? s.required.map(String) : []);
    const names = Object.keys(props);
    for (const r of required) if (!names.includes(r)) throw new ConstraintError(`required property '${r}' (at ${at}) is not in 'properties'`);
    if (names.length === 0) return this.map(s, at, refDepth);
    for (const k of ['patternProperties', 'propertyNames'] as const) {
      if (s[k] !== undefined) throw new ConstraintError(`'${k}' beside 'properties' (at ${at}) is not supported: use one or the other`);
    }
    // Which optional members are present is not counted: bounds the declared members always meet are accepted.
    const minP = count(s.minProperties, 'minProperties', at), maxP = count(s.maxProperties, 'maxProperties', at);
    if (minP !== undefined && minP > required.size) throw new ConstraintError(`'minProperties' ${minP} at ${at} is more than the ${required.size} required properties: list the properties it needs in 'required'`);
    if (maxP !== undefined && maxP < names.length) throw new ConstraintError(`'maxProperties' ${maxP} at ${at} is less than the ${names.length} declared properties: not supported`);
    const member = (n: string) => `${escapeRegex(JSON.stringify(n))}:${SP}${this.value((props as Record<string, Schema>)[n], `${at}/properties/${n}`, refDepth)}`;
    const comma = `,${SP}`;
    const firstRequired = names.findIndex((n) => required.has(n));
    let body: string;
    if (firstRequired >= 0) {
      // Optional members before the first required one carry a comma after them, the rest before them.
      body = names.map((n, i) => {
        if (i < firstRequired) return `(?:${member(n)}${comma})?`;
        if (i === firstRequired) return member(n);
        return required.has(n) ? `${comma}${member(n)}` : `(?:${comma}${member(n)})?`;
      }).join('');
    } else {
      // All optional: choose the first present member, then any of the later ones.
      const alts = names.map((n, i) => member(n) + names.slice(i + 1).map((m) => `(?:${comma}${member(m)})?`).join(''));
      body = `(?:${alts.join('|')})?`;
    }
    return `\\{${body}\\}`;
  }

  /** An object without declared properties — a map (pydantic's dict[K, V]): members whose keys follow
   * `propertyNames` or one of `patternProperties`' patterns and whose values follow `additionalProperties` or that
   * pattern's schema, minProperties..maxProperties of them. Repeated keys are not prevented. */
  private map(s: Record<string, unknown>, at: string, refDepth: number): string {
    const min = count(s.minProperties, 'minProperties', at) ?? 0, max = count(s.maxProperties, 'maxProperties', at) ?? Infinity;
    if (max < min) throw new ConstraintError(`maxProperties < minProperties at ${at}`);
    const extra = s.additionalProperties;
    const members: string[] = [];
    if (s.patternProperties !== undefined) {
      const pp = s.patternProperties;
      if (typeof pp !== 'object' || pp === null || Array.isArray(pp)) throw new ConstraintError(`'patternProperties' at ${at} must be an object`);
      if (s.propertyNames !== undefined) throw new ConstraintError(`'propertyNames' beside 'patternProperties' (at ${at}) is not supported`);
      // A key matching none of the patterns cannot be written as a regular expression's complement here.
      if (extra !== undefined && extra !== false) throw new ConstraintError(`'additionalProperties' other than false beside 'patternProperties' (at ${at}) is not supported: only keys matching a pattern are generated when it is left out`);
      for (const [pattern, schema] of Object.entries(pp as Record<string, Schema>)) {
        members.push(`${this.string({ pattern }, `${at}/patternProperties`)}:${SP}${this.value(schema, `${at}/patternProperties/${pattern}`, refDepth)}`);
      }
    } else if (extra !== false) {
      const key = s.propertyNames === undefined ? stringOf(this.syntax) : this.key(s.propertyNames, `${at}/propertyNames`);
      const value = extra === undefined || extra === true ? freeJsonValue(FREE_JSON_DEPTH - 1, this.syntax) : this.value(extra as Schema, `${at}/additionalProperties`, refDepth);
      members.push(`${key}:${SP}${value}`);
    }
    if (members.length === 0) {
      if (min > 0) throw new ConstraintError(`'minProperties' ${min} at ${at}: the schema allows no property`);
      return '\\{\\}';
    }
    return listOf('\\{', '\\}', members.length === 1 ? members[0] : `(?:${members.join('|')})`, min, max);
  }

  /** A map's keys as `propertyNames` describes them: a string schema (pattern, lengths, format, enum, const). */
  private key(names: unknown, at: string): string {
    if (typeof names !== 'object' || names === null || Array.isArray(names)) throw new ConstraintError(`'propertyNames' at ${at} must be an object`);
    const n = names as Record<string, unknown>;
    if (n.type !== undefined && n.type !== 'string') throw new ConstraintError(`'propertyNames' at ${at} must describe strings (object keys are strings)`);
    for (const k of ['enum', 'const'] as const) {
      const values = k === 'const' ? (n.const === undefined ? [] : [n.const]) : Array.isArray(n.enum) ? n.enum : [];
      if (values.some((v) => typeof v !== 'string')) throw new ConstraintError(`'propertyNames' ${k} at ${at} must list strings (object keys are strings)`);
    }
    for (const k of Object.keys(n)) {
      if (!['type', 'pattern', 'minLength', 'maxLength', 'format', 'enum', 'const'].includes(k) && !ANNOTATIONS.has(k)) {
        throw new ConstraintError(`'propertyNames' keyword '${k}' (at ${at}) is not supported: pattern, minLength, maxLength, format, enum and const are`);
      }
    }
    return n.enum !== undefined || n.const !== undefined ? this.value(n, at, 0) : this.string(n, at);
  }

  private ref(ref: unknown, at: string, refDepth: number): string {
    if (typeof ref !== 'string' || (ref !== '#' && !ref.startsWith('#/'))) throw new ConstraintError(`'$ref' at ${at} must point into this schema (# or #/...)`);
    let node: unknown = this.root;
    for (const part of ref === '#' ? [] : ref.slice(2).split('/')) {
      const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
      node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined;
      if (node === undefined) throw new ConstraintError(`'$ref' ${ref} (at ${at}) points to nothing`);
    }
    if (this.asRules) {
      let id = this.ruleIds.get(ref);
      if (id === undefined) {
        id = this.rules.length + 1;
        this.ruleIds.set(ref, id);
        this.rules.push('');
        this.rules[id - 1] = this.value(node as Schema, ref, 0);
      }
      return `\\R{${id}}`;
    }
    if (ref === '#' || this.expanding.includes(ref)) throw new Recursive(`'$ref' ${ref} at ${at} is inside the schema it points to`);
    if (refDepth >= MAX_REF_DEPTH) throw new ConstraintError(`'$ref' nesting deeper than ${MAX_REF_DEPTH} at ${at}`);
    this.expanding.push(ref);
    try {
      return this.value(node as Schema, ref, refDepth + 1);
    } finally {
      this.expanding.pop();
    }
  }
}

function count(v: unknown, name: string, at: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ConstraintError(`'${name}' at ${at} must be an integer >= 0`);
  return v;
}
