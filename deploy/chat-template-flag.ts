// --chat-template: the chat template the chat routes render instead of the model's — a file, or (as vLLM accepts)
// the template itself. Read and parsed before any shard starts, so a wrong path or a template that does not
// parse stops `weft launch` at once with the reason, not at the first chat request.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { Template } from '@huggingface/jinja';

/** The template text, or undefined when the flag is not set; throws naming the problem. */
export function chatTemplateOf(value: string | null): string | undefined {
  if (value === null || value === '') return undefined;
  const inline = value.includes('{{') || value.includes('{%');
  let text: string;
  if (!inline) {
    if (!existsSync(value) || !statSync(value).isFile()) {
      throw new Error(`--chat-template '${value}': no such file (give a path to a .jinja file, or the template itself)`);
    }
    text = readFileSync(value, 'utf8');
  } else {
    text = value;
  }
  try {
    new Template(text);
  } catch (e) {
    throw new Error(`--chat-template${inline ? '' : ` ${value}`}: the template does not parse: ${(e as Error).message}`);
  }
  return text;
}
