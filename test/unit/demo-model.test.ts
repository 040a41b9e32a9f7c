import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Tokenizer } from '@huggingface/tokenizers';
import {
  DEMO_CHAT_TEMPLATE,
  DEMO_SPECIAL_TOKENS,
  DEMO_TOKEN_IDS,
  encodeSafetensors,
  ensureDemoAdapter,
  ensureDemoModel,
  trainBpe,
} from '../../deploy/demo-model/index.js';
import { renderChat } from '../../coordinator/tokenizer/index.js';

const GOLDEN_ADAPTER_CONFIG = new URL('../../../test/fixtures/golden/llama/adapters/all_r8/adapter_config.json', import.meta.url);

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Minimal safetensors parse, independent of the writer, for checking what was written. */
function readSafetensors(buf: Buffer): { header: Record<string, HeaderEntry>; tensor(name: string): Float32Array } {
  const len = Number(buf.readBigUInt64LE(0));
  const raw = JSON.parse(buf.subarray(8, 8 + len).toString('utf8')) as Record<string, unknown>;
  delete raw.__metadata__;
  const header = raw as Record<string, HeaderEntry>;
  const base = 8 + len;
  return {
    header,
    tensor(name) {
      const [s, e] = header[name]!.data_offsets;
      const copy = Buffer.from(buf.subarray(base + s, base + e));
      return new Float32Array(copy.buffer, copy.byteOffset, (e - s) / 4);
    },
  };
}

const FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];

describe('demo model', () => {
  let root: string;
  let modelDir: string;
  let buildMs: number;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'weft-demo-test-'));
    const t0 = performance.now();
    modelDir = await ensureDemoModel(join(root, 'nested', 'demo'));
    buildMs = performance.now() - t0;
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('builds quickly with every file, and leaves no temporary directories behind', async () => {
    assert.ok(buildMs < 2000, `demo model build took ${buildMs.toFixed(0)} ms`);
    const names = await readdir(modelDir);
    for (const f of FILES) assert.ok(names.includes(f), `missing ${f}`);
    assert.deepEqual(await readdir(join(root, 'nested')), ['demo']);
  });

  it('is a no-op the second time, and deterministic across directories', async () => {
    const before = await Promise.all(FILES.map((f) => stat(join(modelDir, f))));
    assert.equal(await ensureDemoModel(modelDir), modelDir);
    const again = await Promise.all(FILES.map((f) => stat(join(modelDir, f))));
    assert.deepEqual(again.map((s) => s.mtimeMs), before.map((s) => s.mtimeMs));
    const other = await ensureDemoModel(join(root, 'other'));
    for (const f of FILES) {
      assert.ok((await readFile(join(modelDir, f))).equals(await readFile(join(other, f))), `${f} differs`);
    }
  });

  it('refuses to overwrite a directory it did not make, and rebuilds an outdated one', async () => {
    const foreign = join(root, 'foreign');
    await mkdir(foreign);
    await writeFile(join(foreign, 'precious.txt'), 'keep me');
    await assert.rejects(ensureDemoModel(foreign), /not a demo model made by weft/);
    assert.equal(await readFile(join(foreign, 'precious.txt'), 'utf8'), 'keep me');

    const old = join(root, 'old');
    await mkdir(old);
    await writeFile(join(old, 'weft-demo-model.json'), '{"name":"weft-demo","version":0}');
    await ensureDemoModel(old);
    assert.deepEqual((await readdir(old)).sort(), [...FILES, 'weft-demo-model.json'].sort());
  });

  it('has a Llama config consistent with the tokenizer and the tensors', async () => {
    const config = JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8'));
    assert.deepEqual(config.architectures, ['LlamaForCausalLM']);
    assert.equal(config.hidden_size, 128);
    assert.equal(config.intermediate_size, 344);
    assert.equal(config.num_hidden_layers, 4);
    assert.equal(config.num_attention_heads, 4);
    assert.equal(config.num_key_value_heads, 2);
    assert.equal(config.head_dim, 32);
    assert.equal(config.rope_theta, 10000);
    assert.equal(config.rms_norm_eps, 1e-5);
    assert.equal(config.max_position_embeddings, 2048);
    assert.equal(config.tie_word_embeddings, false);
    assert.equal(config.torch_dtype, 'float32');
    assert.equal(config.bos_token_id, DEMO_TOKEN_IDS.endoftext);
    assert.equal(config.eos_token_id, DEMO_TOKEN_IDS.endoftext);

    const tj = JSON.parse(await readFile(join(modelDir, 'tokenizer.json'), 'utf8'));
    const ids = [...Object.values(tj.model.vocab as Record<string, number>), ...tj.added_tokens.map((t: { id: number }) => t.id)];
    assert.equal(new Set(ids).size, config.vocab_size);
    assert.equal(Math.max(...ids) + 1, config.vocab_size);

    const gen = JSON.parse(await readFile(join(modelDir, 'generation_config.json'), 'utf8'));
    assert.deepEqual(gen.eos_token_id, [DEMO_TOKEN_IDS.endoftext, DEMO_TOKEN_IDS.end]);

    const st = readSafetensors(await readFile(join(modelDir, 'model.safetensors')));
    const { hidden_size: h, intermediate_size: i, vocab_size: v } = config;
    const expected: Record<string, number[]> = {
      'model.embed_tokens.weight': [v, h],
      'model.norm.weight': [h],
      'lm_head.weight': [v, h],
    };
    for (let l = 0; l < config.num_hidden_layers; l++) {
      const p = `model.layers.${l}`;
      Object.assign(expected, {
        [`${p}.self_attn.q_proj.weight`]: [128, h],
        [`${p}.self_attn.k_proj.weight`]: [64, h],
        [`${p}.self_attn.v_proj.weight`]: [64, h],
        [`${p}.self_attn.o_proj.weight`]: [h, 128],
        [`${p}.mlp.gate_proj.weight`]: [i, h],
        [`${p}.mlp.up_proj.weight`]: [i, h],
        [`${p}.mlp.down_proj.weight`]: [h, i],
        [`${p}.input_layernorm.weight`]: [h],
        [`${p}.post_attention_layernorm.weight`]: [h],
      });
    }
    assert.deepEqual(Object.keys(st.header).sort(), Object.keys(expected).sort());
    let end = 0;
    for (const name of Object.keys(st.header).sort((a, b) => st.header[a]!.data_offsets[0] - st.header[b]!.data_offsets[0])) {
      const e = st.header[name]!;
      assert.equal(e.dtype, 'F32');
      assert.deepEqual(e.shape, expected[name], name);
      assert.equal(e.data_offsets[0], end, `${name} is not contiguous`);
      end = e.data_offsets[1];
    }
    assert.ok(st.tensor('model.norm.weight').every((x) => x === 1));
    const emb = st.tensor('model.embed_tokens.weight');
    const mean = emb.reduce((a, b) => a + b, 0) / emb.length;
    const std = Math.sqrt(emb.reduce((a, b) => a + (b - mean) ** 2, 0) / emb.length);
    assert.ok(Math.abs(mean) < 1e-3 && Math.abs(std - 0.02) < 1e-3, `embed mean ${mean} std ${std}`);
    assert.ok(!st.tensor('lm_head.weight').every((x, k) => x === emb[k]), 'lm_head must not be tied');
  });

  it('ships a byte-level tokenizer that round-trips any UTF-8', async () => {
    const tk = new Tokenizer(
      JSON.parse(await readFile(join(modelDir, 'tokenizer.json'), 'utf8')),
      JSON.parse(await readFile(join(modelDir, 'tokenizer_config.json'), 'utf8')),
    );
    const samples = [
      'The server batches requests from many users.',
      '你好，世界！こんにちは 안녕하세요',
      'emoji 🤖👍🏽👨‍👩‍👧 flags 🇫🇷 and math ∑∫√',
      '  leading spaces, tabs\tand\nnewlines\r\n',
      'ünïcödé ÅÆØ ß',
    ];
    for (const text of samples) {
      const { ids } = tk.encode(text);
      assert.ok(ids.every((id: number) => id < 1020), 'plain text must not produce special tokens');
      assert.equal(tk.decode(ids, { clean_up_tokenization_spaces: false }), text);
    }
    const common = tk.encode(' the server').ids;
    assert.equal(common.length, 2, 'frequent corpus words are single tokens');
    assert.deepEqual(tk.encode('<|user|>hi<|end|>').ids.filter((id: number) => id >= 1020), [
      DEMO_TOKEN_IDS.user,
      DEMO_TOKEN_IDS.end,
    ]);
  });

  it('renders its chat template', () => {
    const text = renderChat(
      DEMO_CHAT_TEMPLATE,
      [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi!' },
        { role: 'assistant', content: 'Hello.' },
        { role: 'user', content: 'Bye?' },
      ],
      { addGenerationPrompt: true, bosToken: DEMO_SPECIAL_TOKENS.endoftext, eosToken: DEMO_SPECIAL_TOKENS.endoftext },
    );
    assert.equal(
      text,
      '<|endoftext|>Be brief.\n<|user|>\nHi!<|end|>\n<|assistant|>\nHello.<|end|>\n<|user|>\nBye?<|end|>\n<|assistant|>\n',
    );
    assert.throws(
      () => renderChat(DEMO_CHAT_TEMPLATE, [{ role: 'tool', content: 'x' }], { addGenerationPrompt: false }),
      /unknown role: tool/,
    );
  });
});

describe('demo adapter', () => {
  let root: string;
  let modelDir: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'weft-demo-adapter-test-'));
    modelDir = await ensureDemoModel(join(root, 'model'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('writes a PEFT LoRA adapter with the PEFT 0.21 config fields and the right shapes', async () => {
    const dir = await ensureDemoAdapter(modelDir, join(root, 'adapters'), 'alpha', 7);
    assert.equal(dir, join(root, 'adapters', 'alpha'));
    const config = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
    const golden = JSON.parse(await readFile(GOLDEN_ADAPTER_CONFIG, 'utf8'));
    assert.deepEqual(Object.keys(config).sort(), Object.keys(golden).sort());
    assert.equal(config.r, 8);
    assert.equal(config.lora_alpha, 16);
    assert.equal(config.peft_type, 'LORA');
    assert.deepEqual([...config.target_modules].sort(), [...golden.target_modules].sort());

    const st = readSafetensors(await readFile(join(dir, 'adapter_model.safetensors')));
    assert.equal(Object.keys(st.header).length, 4 * 7 * 2);
    const shapes: Record<string, [number, number]> = {
      'self_attn.q_proj': [128, 128],
      'self_attn.k_proj': [128, 64],
      'self_attn.v_proj': [128, 64],
      'self_attn.o_proj': [128, 128],
      'mlp.gate_proj': [128, 344],
      'mlp.up_proj': [128, 344],
      'mlp.down_proj': [344, 128],
    };
    for (let l = 0; l < 4; l++) {
      for (const [m, [inF, outF]] of Object.entries(shapes)) {
        const p = `base_model.model.model.layers.${l}.${m}`;
        assert.deepEqual(st.header[`${p}.lora_A.weight`]?.shape, [8, inF]);
        assert.deepEqual(st.header[`${p}.lora_B.weight`]?.shape, [outF, 8]);
        assert.ok(st.tensor(`${p}.lora_B.weight`).some((x) => x !== 0), 'B must be non-zero');
      }
    }
  });

  it('is a no-op for the same seed and differs for another seed', async () => {
    const out = join(root, 'adapters');
    const a = await ensureDemoAdapter(modelDir, out, 'same', 1);
    const first = await stat(join(a, 'adapter_model.safetensors'));
    await ensureDemoAdapter(modelDir, out, 'same', 1);
    assert.equal((await stat(join(a, 'adapter_model.safetensors'))).mtimeMs, first.mtimeMs);
    const b = await ensureDemoAdapter(modelDir, out, 'other', 2);
    const wa = await readFile(join(a, 'adapter_model.safetensors'));
    const wb = await readFile(join(b, 'adapter_model.safetensors'));
    assert.equal(wa.length, wb.length);
    assert.ok(!wa.equals(wb));
    await assert.rejects(ensureDemoAdapter(modelDir, out, '../escape', 1), /plain directory name/);
  });
});

describe('safetensors writer and BPE trainer', () => {
  it('writes an aligned header and the exact data', () => {
    const data = Float32Array.from([1, -2, 3.5, 0]);
    const buf = encodeSafetensors({ w: { dtype: 'F32', shape: [2, 2], data } });
    const len = Number(buf.readBigUInt64LE(0));
    assert.equal((8 + len) % 8, 0);
    const st = readSafetensors(buf);
    assert.deepEqual(st.header.w, { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] });
    assert.deepEqual([...st.tensor('w')], [1, -2, 3.5, 0]);
    assert.throws(() => encodeSafetensors({ w: { dtype: 'F32', shape: [3], data } }), /needs 12 bytes/);
  });

  it('merges the most frequent pair first, breaking ties by order', () => {
    const { merges } = trainBpe(new Map([['abab', 3], ['abc', 1], ['xy', 1]]), 10);
    assert.deepEqual(merges[0], ['a', 'b']);
    assert.deepEqual(merges[1], ['ab', 'ab']);
    assert.deepEqual(merges[2], ['ab', 'c']);
    assert.deepEqual(merges[3], ['x', 'y']);
    assert.equal(merges.length, 4);
  });
});
