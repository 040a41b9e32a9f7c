// Chat-template conformance: weft's renderChat (@huggingface/jinja) must render real models' chat
// templates exactly as transformers' apply_chat_template renderer (jinja2) does. The templates are
// verbatim copies from llama.cpp's models/templates (see test/fixtures/chat-templates/README.md); the
// reference renderings in expected.json come from transformers (make_expected.py, same folder).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it, mock } from 'node:test';
import { ChatTemplateError, renderChat, type ChatMessage } from '../../coordinator/tokenizer/index.js';

const DIR = fileURLToPath(new URL('../../../test/fixtures/chat-templates/', import.meta.url));

interface Case {
  template: string;
  conversation: string;
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  bos_token: string | null;
  eos_token: string | null;
  extra?: Record<string, unknown>;
  /** transformers' continue_final_message: the final (assistant) message left open */
  continue_final_message?: boolean;
  /** strftime_now format -> text under the fixed clock make_expected.py rendered with */
  strftime?: Record<string, string>;
  rendered?: string;
  error?: string;
  /** weft renders this case differently and the cause is outside chat-template.ts */
  known_difference?: string;
}

const cases = JSON.parse(readFileSync(DIR + 'expected.json', 'utf8')) as Case[];
const templates = new Map<string, string>();
const templateText = (name: string): string => {
  let t = templates.get(name);
  if (t === undefined) {
    t = readFileSync(DIR + name + '.jinja', 'utf8');
    templates.set(name, t);
  }
  return t;
};

// make_expected.py's fixed clock (local time, as Python's naive datetime.now() is)
const FIXED_NOW = new Date(2025, 0, 15, 9, 30, 0).getTime();

function render(c: Case): string {
  const run = (): string =>
    renderChat(templateText(c.template), c.messages, {
      addGenerationPrompt: c.add_generation_prompt,
      bosToken: c.bos_token,
      eosToken: c.eos_token,
      ...(c.extra === undefined ? {} : { extra: c.extra }),
      ...(c.continue_final_message ? { continueFinalMessage: true } : {}),
    });
  if (c.strftime === undefined) return run();
  // the template calls strftime_now: render under the clock the reference was rendered under
  mock.timers.enable({ apis: ['Date'], now: FIXED_NOW });
  try {
    return run();
  } finally {
    mock.timers.reset();
  }
}

const label = (c: Case): string =>
  `${c.template} / ${c.conversation}${c.add_generation_prompt ? '' : ' (no generation prompt)'}${c.continue_final_message ? ' (final message continued)' : ''}` +
  (c.extra === undefined ? '' : ` ${JSON.stringify(c.extra)}`);

describe('chat templates render as transformers renders them', () => {
  it('has the fixture cases', () => {
    assert.ok(cases.length >= 50, `only ${cases.length} cases in expected.json`);
    assert.ok(new Set(cases.map((c) => c.template)).size >= 6);
  });

  for (const c of cases) {
    if (c.error !== undefined) {
      it(`${label(c)} is rejected like transformers (${c.error})`, () => {
        assert.throws(() => render(c), ChatTemplateError);
      });
    } else if (c.known_difference !== undefined) {
      it(`${label(c)} still differs: ${c.known_difference}`, () => {
        assert.notEqual(render(c), c.rendered, 'known difference is gone: drop known_difference from expected.json');
      });
    } else {
      it(label(c), () => {
        assert.equal(render(c), c.rendered);
      });
    }
  }
});

describe('strftime_now is transformers\' (Python datetime.now().strftime, C locale)', () => {
  const FORMAT = '%a %A %b %B %d %e %H %I %j %m %M %p %S %y %Y %% %Q';
  const at = (date: Date): string => {
    mock.timers.enable({ apis: ['Date'], now: date.getTime() });
    try {
      return renderChat(`{{ strftime_now("${FORMAT}") }}`, [], { addGenerationPrompt: false });
    } finally {
      mock.timers.reset();
    }
  };

  it('formats every common directive as Python does', () => {
    // expected strings from Python: datetime.datetime(...).strftime(FORMAT)
    assert.equal(at(new Date(2025, 0, 15, 9, 30, 0)), 'Wed Wednesday Jan January 15 15 09 09 015 01 30 AM 00 25 2025 % %Q');
    assert.equal(at(new Date(2024, 11, 31, 21, 5, 7)), 'Tue Tuesday Dec December 31 31 21 09 366 12 05 PM 07 24 2024 % %Q');
    assert.equal(at(new Date(2023, 6, 4, 0, 0, 59)), 'Tue Tuesday Jul July 04  4 00 12 185 07 00 AM 59 23 2023 % %Q');
  });

  it('names months in English whatever the host locale', () => {
    const module = new URL('../../coordinator/tokenizer/index.js', import.meta.url).href;
    const script = `const { renderChat } = await import(${JSON.stringify(module)});
      const month = new Date().getMonth();
      console.log(JSON.stringify({ month, text: renderChat('{{ strftime_now("%b|%B") }}', [], { addGenerationPrompt: false }),
        locale: Intl.DateTimeFormat().resolvedOptions().locale }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8', env: { ...process.env, LANG: 'fr_FR.UTF-8', LC_ALL: 'fr_FR.UTF-8' },
    });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { month: number; text: string; locale: string };
    const english = new Date(2000, out.month, 1).toLocaleString('en-US', { month: 'long' });
    assert.equal(out.text, `${english.slice(0, 3)}|${english}`, `host locale ${out.locale}`);
  });

  it('can be shadowed by a template variable, as in jinja2', () => {
    const text = renderChat('{{ strftime_now("%Y") }}', [], { addGenerationPrompt: false, extra: { strftime_now: () => 'fixed' } });
    assert.equal(text, 'fixed');
  });
});
