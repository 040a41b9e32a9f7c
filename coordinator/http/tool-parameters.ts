// The arguments of a call written one by one — pythonic `f(city="Paris", days=3)`, qwen3_coder's
// `<parameter=city>…` — rather than as one JSON object: a function's declared parameters in the schema's order, and
// the pattern of their sequence (required ones always written, optional ones perhaps, in that order), which the
// constraints of those formats are built from.
import { validationError } from './errors.js';
import { isJsonObject } from './json.js';
import { takesNoArguments, type ToolFunction } from './openai-tools.js';

export interface DeclaredParameter {
  name: string;
  /** Its schema, a part of the function's parameters schema (its $refs point there). */
  schema: unknown;
  required: boolean;
}

/** Keywords a parameters schema may have when its arguments are written one by one: they describe the properties,
 * or nothing a call can break (additionalProperties: undeclared arguments are simply never generated). */
const PER_ARGUMENT_KEYWORDS = new Set(['type', 'properties', 'required', 'additionalProperties', 'title', 'description',
  '$schema', '$id', '$comment', '$defs', 'definitions', 'strict']);

/** The function's parameters (none for a function without arguments), or a 422 when its schema is not an object
 * listing `properties`: `format` names the call format for the message. */
export function declaredParameters(t: ToolFunction, format: string): DeclaredParameter[] {
  if (takesNoArguments(t.parameters)) return [];
  const p = t.parameters!;
  const refuse = (why: string) => validationError(`\`tools\` function '${t.name}' parameters: ${why}; ${format} calls write each ` +
    'argument by name, so a required call is constrained only for an object schema with `properties` ' +
    '(simplify the schema, or use tool_choice "auto" to leave the answer unconstrained)');
  for (const k of Object.keys(p)) if (!PER_ARGUMENT_KEYWORDS.has(k)) throw refuse(`the top-level keyword '${k.slice(0, 64)}' is not supported`);
  if (p.type !== undefined && p.type !== 'object') throw refuse('the schema must describe an object');
  if (!isJsonObject(p.properties)) throw refuse('the schema lists no `properties`');
  const props = p.properties;
  const required = p.required ?? [];
  if (!Array.isArray(required) || required.some((r) => typeof r !== 'string' || !Object.hasOwn(props, r))) {
    throw refuse('`required` must list names of `properties`');
  }
  return Object.keys(props).map((name) => ({ name, schema: props[name], required: required.includes(name) }));
}

/**
 * The pattern of the members in order, required ones always and optional ones perhaps, `sep` between two of them
 * (the JSON-schema object's rule): optional members before the first required one carry the separator after them,
 * the rest before them; with none required, whichever member is first, then any of the later ones.
 */
export function sequencePattern(members: readonly { pattern: string; required: boolean }[], sep: string): string {
  const opt = (p: string) => `(?:${p})?`;
  if (sep === '') return members.map((m) => (m.required ? m.pattern : opt(m.pattern))).join('');
  const first = members.findIndex((m) => m.required);
  if (first >= 0) {
    return members.map((m, i) => {
      if (i < first) return opt(`${m.pattern}${sep}`);
      if (i === first) return m.pattern;
      return m.required ? `${sep}${m.pattern}` : opt(`${sep}${m.pattern}`);
    }).join('');
  }
  if (members.length === 0) return '';
  const alts = members.map((m, i) => m.pattern + members.slice(i + 1).map((n) => opt(`${sep}${n.pattern}`)).join(''));
  return opt(alts.join('|'));
}
