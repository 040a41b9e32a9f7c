// gpt-oss beyond the golden conformance tests: the MXFP4 checkpoint (as OpenAI publishes it) served over HTTP at
// --num-shard 2 with attention and expert adapters batched beside base requests; the same weights stored as
// GptOssExperts' (in, out) parameters give the same logits; adapters on parts weft cannot adapt and experts of the
// wrong shape are refused by name.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalEngine } from '../../shard/index.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../shard/formats/index.js';
import { dequantizeMxfp4 } from '../../shard/models/in-out-experts.js';
import { loadGoldenCase, maxAbsDiff } from '../helpers/golden.js';
import { generateEverySequence, goldenKey, prefillMatchesGolden, startGoldenServer } from '../helpers/golden-server.js';

const tmp = mkdtempSync(join(tmpdir(), 'weft-gpt-oss-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('over HTTP at --num-shard 2: gpt-oss from its MXFP4 checkpoint with attention and expert adapters beside base requests', async () => {
  const g = await startGoldenServer({ numShard: 2 }, { caseName: 'gpt_oss_mxfp4' });
  const { c } = g;
  try {
    for (const { r, s, a } of await generateEverySequence(g, [null, ...c.adapters.map((x) => x.name)])) {
      assert.equal(r.status, 200, r.text);
      prefillMatchesGolden(c, r.json, goldenKey(a, s), c.sequences[s]!);
    }
  } finally {
    await g.close();
  }
});

/**
 * gpt_oss_mxfp4's model rewritten with each layer's experts dequantized and stored as GptOssExperts' parameters
 * (gate_up_proj [E, hidden, 2I], down_proj [E, I, hidden]: (in, out) per expert), as a bf16 conversion stores them.
 * `mangle` may change the tensors before they are written.
 */
function unpackedCopy(name: string, mangle: (t: Record<string, TensorToWrite>) => void = () => {}): string {
  const c = loadGoldenCase('gpt_oss_mxfp4');
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(c.modelDir, 'config.json'), 'utf8'));
  delete cfg.quantization_config;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  const src = SafetensorsFile.open(join(c.modelDir, 'model.safetensors'));
  const out: Record<string, TensorToWrite> = {};
  try {
    for (const n of src.names()) {
      const m = /^(.*)\.(gate_up_proj|down_proj)_(blocks|scales)$/.exec(n);
      if (!m) {
        out[n] = { dtype: 'F32', shape: src.info(n).shape, data: src.readF32(n) };
        continue;
      }
      if (m[3] === 'scales') continue;
      const [E, rows, groups] = src.info(n).shape as [number, number, number];
      const cols = groups * 32, blocks = src.readBytes(n), scales = src.readBytes(`${m[1]}.${m[2]}_scales`);
      const data = new Float32Array(E * rows * cols);  // per expert the transpose of the (out, in) matrix
      for (let e = 0; e < E; e++) {
        const w = dequantizeMxfp4(blocks.subarray(e * rows * groups * 16, (e + 1) * rows * groups * 16),
          scales.subarray(e * rows * groups, (e + 1) * rows * groups), rows, cols);
        for (let o = 0; o < rows; o++) for (let i = 0; i < cols; i++) data[e * rows * cols + i * rows + o] = w[o * cols + i]!;
      }
      out[`${m[1]}.${m[2]}`] = { dtype: 'F32', shape: [E, cols, rows], data };
    }
  } finally {
    src.close();
  }
  mangle(out);
  writeSafetensors(join(dir, 'model.safetensors'), out);
  for (const f of ['generation_config.json']) {
    try { copyFileSync(join(c.modelDir, f), join(dir, f)); } catch { /* optional */ }
  }
  return dir;
}

test('the experts stored as GptOssExperts parameters give the MXFP4 checkpoint\'s logits, adapters included', async () => {
  const c = loadGoldenCase('gpt_oss_mxfp4');
  const engine = LocalEngine.open(unpackedCopy('unpacked'), { numBlocks: 64, blockSize: 4, adapterSlots: 4 });
  try {
    c.adapters.forEach((a, i) => engine.loadAdapter(i, a.dir));
    for (let s = 0; s < c.sequences.length; s++) {
      for (let slot = -1; slot < c.adapters.length; slot++) {
        const [out] = await engine.scoreBatch([{ tokens: c.sequences[s]!, adapterSlot: slot }]);
        const key = slot < 0 ? `base/seq${s}` : `adapter/${c.adapters[slot]!.name}/seq${s}`;
        const err = maxAbsDiff(out!, c.logits(key));
        assert.ok(err <= 1e-4, `${key}: max abs error ${err}`);
      }
    }
  } finally {
    engine.dispose();
  }
});

test('experts of the wrong shape and adapters on the router are refused by name', () => {
  const swapped = unpackedCopy('swapped', (t) => {
    const k = Object.keys(t).find((n) => n.endsWith('layers.0.mlp.experts.down_proj'))!;
    const [E, a, b] = t[k]!.shape as number[];
    t[k] = { ...t[k]!, shape: [E!, b!, a!] };  // (out, in) instead of (in, out)
  });
  assert.throws(() => LocalEngine.open(swapped, { numBlocks: 8, blockSize: 4, adapterSlots: 1 }),
    /mlp\.experts\.down_proj' has shape \[8, 64, 32\], expected \[E, 32, 64\] \(gpt_oss stores each expert as \(in, out\)\)/);

  const c = loadGoldenCase('gpt_oss');
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 8, blockSize: 4, adapterSlots: 1 });
  try {
    const dir = join(tmp, 'router-adapter');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['router'] }));
    const key = 'base_model.model.model.layers.0.mlp.router';
    writeSafetensors(join(dir, 'adapter_model.safetensors'), {
      [`${key}.lora_A.weight`]: { dtype: 'F32', shape: [4, 64], data: new Float32Array(256) },
      [`${key}.lora_B.weight`]: { dtype: 'F32', shape: [8, 4], data: new Float32Array(32) },
    });
    assert.throws(() => engine.loadAdapter(0, dir), /targets the MoE router '.*mlp\.router', which is not supported; retrain without 'router'/);
  } finally {
    engine.dispose();
  }
});
