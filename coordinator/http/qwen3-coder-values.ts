// The values of qwen3_coder's parameters: raw text between `<parameter=NAME>\n` and `\n</parameter>`, read as the
// type the parameter's schema gives (as vLLM's qwen3_coder parser reads them), and the patterns that constrain a
// required call's values to their schemas.
//   string          the text as it is (only the one line break after the opening tag and before the closing one
//                   belong to the markup)
//   other types     the text as JSON (an object or array also as a Python literal, which the model sometimes
//                   writes); text that does not parse as a value of the type stays a string, as vLLM keeps it
//   no type given   JSON when the text parses as JSON, else the string
import { ConstraintError, escapeRegex } from '../../protocol/index.js';
import { subschemaRegex } from '../constraints/json-schema.js';
import { isJsonObject } from './json.js';
import { parsePythonLiteral } from './python-literal.js';

export const PARAMETER_END = '</parameter>';

/** Any text in which `word` does not occur (`word`'s first character must not occur again in it, so a partial
 * match that fails can only restart at that character). Built as the states of matching `word`: text is plain
 * characters, or a partial match broken by a character that neither continues it nor restarts it, or a partial
 * match abandoned right before a restart (or at the end). */
function textWithout(word: string): string {
  const lit = (c: string) => (/[A-Za-z0-9]/.test(c) ? c : `\\${c}`);
  const first = lit(word[0]!);
  const rest = [...word.slice(1)].map(lit);
  // Broken after k characters: word[0..k) then neither word[k] nor word[0].
  let broken = `[^${rest.at(-1)}${first}]`;
  for (let k = rest.length - 2; k >= 0; k--) broken = `(?:[^${rest[k]}${first}]|${rest[k]}${broken})`;
  // Abandoned: the first character and up to all but the last of the rest (a proper prefix of the word).
  let prefix = '';
  for (let k = rest.length - 2; k >= 0; k--) prefix = `(?:${rest[k]}${prefix})?`;
  const abandoned = `${first}${prefix}`;
  return `(?:[^${first}]|(?:${abandoned})*${first}${broken})*(?:${abandoned})*`;
}

/** A string parameter's value: any text without the closing tag. */
export const FREE_TEXT = textWithout(PARAMETER_END);
/** One character of a string with a counted length: anything but `<` (a tag could not be kept out of a count). */
const COUNTED_CHAR = '[^<]';

type Types = ReadonlySet<string> | null;  // null: any type

const jsonType = (v: unknown): string => v === null ? 'null' : Array.isArray(v) ? 'array' :
  typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v;

/** The schema $ref points to inside root (undefined: nowhere). */
function resolve(root: unknown, ref: string): unknown {
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = root;
  for (const part of ref.slice(2).split('/')) {
    node = isJsonObject(node) ? node[part.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
  }
  return node;
}

/** The JSON types a schema's values may have (null: any, or not said). */
export function typesOf(schema: unknown, root: unknown, depth = 0): Types {
  if (depth > 16 || !isJsonObject(schema)) return null;
  const s = schema;
  if (typeof s.$ref === 'string') return typesOf(resolve(root, s.$ref), root, depth + 1);
  if (s.const !== undefined) return new Set([jsonType(s.const)]);
  if (Array.isArray(s.enum)) return new Set(s.enum.map(jsonType));
  for (const key of ['anyOf', 'oneOf', 'allOf']) {
    const list = s[key];
    if (!Array.isArray(list)) continue;
    const all = new Set<string>();
    for (const branch of list) {
      const t = typesOf(branch, root, depth + 1);
      if (t === null) return null;
      for (const x of t) all.add(x);
    }
    return all;
  }
  const types = (Array.isArray(s.type) ? s.type : [s.type]).filter((t): t is string => typeof t === 'string');
  if (types.length > 0) return new Set(s.nullable === true ? [...types, 'null'] : types);
  if (s.properties !== undefined) return new Set(['object']);
  if (s.items !== undefined || s.prefixItems !== undefined) return new Set(['array']);
  return null;
}

const fits = (v: unknown, types: ReadonlySet<string>): boolean => {
  const t = jsonType(v);
  return types.has(t) || (t === 'integer' && types.has('number'));
};
const onlyStrings = (types: Types): boolean => types !== null && [...types].every((t) => t === 'string');

/** A value of a type other than string from its text: JSON, or a Python literal for containers. */
function structured(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return /^[[({]/.test(text) ? parsePythonLiteral(text) : undefined;
  }
}

/** The argument a parameter's raw text stands for (`schema` undefined: a parameter the function does not declare,
 * kept as text as vLLM keeps it). */
export function argumentValue(raw: string, schema: unknown, root: unknown): unknown {
  const types = schema === undefined ? new Set(['string']) : typesOf(schema, root);
  if (onlyStrings(types)) return raw;
  const text = raw.trim();
  const v = structured(text);
  if (v !== undefined && (types === null || fits(v, types))) return v;
  if (types?.has('boolean') && /^(?:true|false)$/i.test(text)) return text.toLowerCase() === 'true';
  return raw;
}

/** The pattern of a parameter's raw text for its schema (`at`: its place, for messages); ConstraintError when the
 * text cannot be constrained faithfully. */
export function valuePattern(schema: unknown, root: unknown, at: string): string {
  const types = typesOf(schema, root);
  if (types === null) return FREE_TEXT;
  if (onlyStrings(types)) return stringPattern(schema, root, at, 0);
  if (!types.has('string')) return subschemaRegex(root, schema, at);  // JSON text
  if ([...types].every((t) => t === 'string' || t === 'null')) return `(?:${stringPattern(schema, root, at, 0)}|null)`;
  throw new ConstraintError(`the schema at ${at} allows string or ${[...types].filter((t) => t !== 'string').join(' or ')} values: ` +
    'qwen3_coder writes values as raw text, where such a string cannot be told from the other values; give the parameter one type');
}

/** The raw text of a string schema's values (its string branches, where it allows null too). */
function stringPattern(schema: unknown, root: unknown, at: string, depth: number): string {
  if (depth > 16 || !isJsonObject(schema)) return FREE_TEXT;
  const s = schema;
  if (typeof s.$ref === 'string') return stringPattern(resolve(root, s.$ref), root, s.$ref, depth + 1);
  const constants = s.const !== undefined ? [s.const] : Array.isArray(s.enum) ? s.enum : null;
  if (constants) return `(?:${constants.filter((v): v is string => typeof v === 'string').map(escapeRegex).join('|')})`;
  for (const key of ['anyOf', 'oneOf', 'allOf']) {
    const list = s[key];
    if (!Array.isArray(list)) continue;
    const strings = list.filter((b) => typesOf(b, root)?.has('string') ?? true);  // the null branch of string | null: `null`
    return `(?:${strings.map((b) => stringPattern(b, root, `${at}/${key}`, depth + 1)).join('|')})`;
  }
  if (s.pattern !== undefined) {
    throw new ConstraintError(`'pattern' at ${at} is not supported for qwen3_coder's raw-text values; drop it, or use tool_choice "auto"`);
  }
  // The formats' patterns never match `"` or `\`, so the body of their JSON string is the raw text.
  if (s.format !== undefined) return subschemaRegex(root, { type: 'string', format: s.format }, at).slice(1, -1);
  const min = count(s.minLength, 'minLength', at) ?? 0, max = count(s.maxLength, 'maxLength', at);
  if (min === 0 && max === undefined) return FREE_TEXT;
  if (max !== undefined && max < min) throw new ConstraintError(`maxLength < minLength at ${at}`);
  return `${COUNTED_CHAR}{${min},${max ?? ''}}`;
}

function count(v: unknown, name: string, at: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ConstraintError(`'${name}' at ${at} must be an integer >= 0`);
  return v;
}
