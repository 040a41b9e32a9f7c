// The structured-output fields of a request -> the regular expression or grammar sent to the shards
// (NewSequence.constraint). A bad schema is a 422 here; the pattern itself is compiled and checked by the engine
// in a tokenizer worker (a large one takes a few hundred ms, which the event loop should not), also a 422.
//   TGI       parameters.grammar: {type: "json", value: <JSON schema>} | {type: "regex", value: "<pattern>"}
//             | {type: "grammar", value: "<GBNF or Lark grammar>"} (weft's addition)
//   LoRAX     parameters.response_format: {type: "json_object", schema?: <JSON schema>}
//   OpenAI    response_format: {type: "text"} | {type: "json_object"} | {type: "json_schema", json_schema: {name, schema, strict?}}
//   vLLM      guided_json | guided_regex | guided_choice | guided_grammar, or structured_outputs: {json | regex |
//             choice | grammar} (OpenAI routes)
// json_object without a schema asks for any JSON object (containers nested at most FREE_JSON_DEPTH deep). A
// grammar is GBNF when it defines a rule with `::=` (as vLLM tells them apart), else Lark.
import { ConstraintError, escapeRegex, type ConstraintSource } from '../../protocol/index.js';
import { validationError } from './errors.js';
import { isJsonObject, type Json } from './json.js';
import { freeJsonObject, jsonSchemaConstraint } from '../constraints/json-schema.js';


const invalid = validationError;

/** A schema's regular expression, or a recursive schema's grammar. */
function schemaPattern(schema: unknown, what: string): ConstraintSource {
  try {
    return jsonSchemaConstraint(schema);
  } catch (e) {
    if (e instanceof ConstraintError) throw invalid(`${what}: ${e.message}`);
    throw e;
  }
}

/** A grammar's text as a constraint: GBNF when some rule is defined with `::=`, else Lark. */
export function grammarSource(value: unknown, what: string): ConstraintSource {
  if (typeof value !== 'string' || value.trim() === '') throw invalid(`${what} must be a non-empty grammar (GBNF or Lark)`);
  return { pattern: value, syntax: /::=/.test(value) ? 'gbnf' : 'lark' };
}
const regex = (pattern: string): ConstraintSource => ({ pattern });

/** TGI `grammar` / LoRAX `response_format` in /generate parameters; undefined when neither constrains. */
export function tgiConstraint(p: Json): ConstraintSource | undefined {
  const pattern = tgiPattern(p);
  return typeof pattern === 'string' ? regex(pattern) : pattern;
}

function tgiPattern(p: Json): string | ConstraintSource | undefined {
  const grammar = p.grammar ?? undefined, format = p.response_format ?? undefined;
  if (grammar !== undefined && format !== undefined) throw invalid('use either `grammar` or `response_format`, not both');
  if (grammar !== undefined) {
    if (!isJsonObject(grammar)) throw invalid('`grammar` must be an object {type: "json" | "regex" | "grammar", value}');
    const extra = Object.keys(grammar).find((k) => k !== 'type' && k !== 'value');
    if (extra) throw invalid(`unknown field \`grammar.${extra.slice(0, 64)}\``);
    if (grammar.type === 'json') return schemaPattern(typeof grammar.value === 'string' ? parseSchema(grammar.value, 'grammar.value') : grammar.value, '`grammar.value`');
    if (grammar.type === 'regex') {
      if (typeof grammar.value !== 'string' || grammar.value === '') throw invalid('`grammar.value` must be a non-empty regular expression');
      return grammar.value;
    }
    if (grammar.type === 'grammar') return grammarSource(grammar.value, '`grammar.value`');
    throw invalid('`grammar.type` must be "json", "regex" or "grammar"');
  }
  if (format === undefined) return undefined;
  if (!isJsonObject(format)) throw invalid('`response_format` must be an object {type: "json_object", schema?}');
  const extra = Object.keys(format).find((k) => k !== 'type' && k !== 'schema' && k !== 'value');
  if (extra) throw invalid(`unknown field \`response_format.${extra.slice(0, 64)}\``);
  if (format.type === 'text') return undefined;
  if (format.type !== 'json_object' && format.type !== 'json') throw invalid('`response_format.type` must be "json_object" (or "text")');
  const schema = format.schema ?? format.value;
  return schema === undefined || schema === null ? freeObject() : schemaPattern(schema, '`response_format.schema`');
}

/** OpenAI `response_format`, or vLLM's guided decoding fields; undefined for text. */
export function openaiConstraint(top: Json): ConstraintSource | undefined {
  const format = responseFormatConstraint(top);
  const guided = vllmConstraint(top);
  if (format !== undefined && guided !== undefined) throw invalid('use either `response_format` or vLLM\'s guided decoding fields, not both');
  const pattern = format ?? guided;
  return typeof pattern === 'string' ? regex(pattern) : pattern;
}

// vLLM's names: the guided_* fields (before 0.10) and structured_outputs (since).
const GUIDED = ['guided_json', 'guided_regex', 'guided_choice', 'guided_grammar'] as const;
const STRUCTURED_OUTPUTS = ['json', 'regex', 'choice', 'grammar'] as const;

function vllmConstraint(top: Json): string | ConstraintSource | undefined {
  const given: [string, unknown][] = GUIDED.map((k) => [k, top[k]]);
  const so = top.structured_outputs;
  if (so !== undefined && so !== null) {
    if (!isJsonObject(so)) throw invalid('`structured_outputs` must be an object {json | regex | choice | grammar}');
    const other = Object.keys(so).find((k) => !(STRUCTURED_OUTPUTS as readonly string[]).includes(k) && so[k] !== null);
    if (other) throw invalid(`\`structured_outputs.${other.slice(0, 64)}\` is not supported (json, regex, choice, grammar)`);
    for (const k of STRUCTURED_OUTPUTS) given.push([`structured_outputs.${k}`, so[k]]);
  }
  const set = given.filter(([, v]) => v !== undefined && v !== null);
  if (set.length > 1) throw invalid(`give one guided decoding field, not ${set.map(([k]) => `\`${k}\``).join(' and ')}`);
  if (set.length === 0) return undefined;
  const [name, v] = set[0]!;
  if (name.endsWith('grammar')) return grammarSource(v, `\`${name}\``);
  if (name.endsWith('json')) return schemaPattern(typeof v === 'string' ? parseSchema(v, name) : v, `\`${name}\``);
  if (name.endsWith('regex')) {
    if (typeof v !== 'string' || v === '') throw invalid(`\`${name}\` must be a non-empty regular expression`);
    return v;
  }
  if (!Array.isArray(v) || v.length === 0 || !v.every((c) => typeof c === 'string' && c !== '')) {
    throw invalid(`\`${name}\` must be a non-empty list of non-empty strings`);
  }
  return `(?:${(v as string[]).map(escapeRegex).join('|')})`;
}

function responseFormatConstraint(top: Json): string | ConstraintSource | undefined {
  const f = top.response_format ?? undefined;
  if (f === undefined) return undefined;
  if (!isJsonObject(f)) throw invalid('`response_format` must be an object with a `type`');
  switch (f.type) {
    case 'text': return undefined;
    case 'json_object': return freeObject();
    case 'json_schema': {
      const js = f.json_schema;
      if (!isJsonObject(js) || !isJsonObject(js.schema)) throw invalid('`response_format.json_schema.schema` must be a JSON schema object');
      return schemaPattern(js.schema, '`response_format.json_schema.schema`');
    }
    default: throw invalid('`response_format.type` must be one of text, json_object, json_schema');
  }
}

function freeObject(): string {
  return freeJsonObject();
}

function parseSchema(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw invalid(`\`${what}\` is a string that is not JSON`);
  }
}
