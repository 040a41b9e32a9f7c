// lm_head adapters as PEFT saves them by default (save_embedding_layers="auto"): beside the LoRA pair, a copy of
// the lm_head's own weight (`base_model.model.lm_head.base_layer.weight`). The copy is checked against the base
// model (to bf16 rounding) and dropped, so the adapter serves exactly as without it — on the thread that loads
// and through the parse worker; a copy that differs or has another shape is refused by name.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuOps } from '../../kernels/index.js';
import { LocalEngine } from '../../shard/index.js';
import { SafetensorsFile, writeSafetensors } from '../../shard/formats/index.js';
import { loadAdapterDir } from '../../shard/adapters/index.js';
import { loadGoldenCase, maxAbsDiff, type GoldenCase } from '../helpers/golden.js';

const COPY = 'base_model.model.lm_head.base_layer.weight';

/** The golden adapter `name` of case `c` with `copy` (or the model's lm_head, from `weight`) saved beside it. */
function withCopy(root: string, c: GoldenCase, name: string, label: string, edit: (w: Float32Array, shape: number[]) => { data: Float32Array; shape: number[] },
  weight: string): string {
  const src = c.adapters.find((a) => a.name === name)!.dir;
  const dir = join(root, `${c.name}-${name}-${label}`);
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(src, 'adapter_config.json'), join(dir, 'adapter_config.json'));
  const adapter = SafetensorsFile.open(join(src, 'adapter_model.safetensors'));
  const model = SafetensorsFile.open(join(c.modelDir, 'model.safetensors'));
  try {
    const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const n of adapter.names()) tensors[n] = { dtype: 'F32', shape: adapter.info(n).shape, data: adapter.readF32(n) };
    const { data, shape } = edit(model.readF32(weight), model.info(weight).shape);
    tensors[COPY] = { dtype: 'F32', shape, data };
    writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  } finally {
    adapter.close();
    model.close();
  }
  return dir;
}

const same = (w: Float32Array, shape: number[]) => ({ data: w, shape });
const bf16 = (w: Float32Array, shape: number[]) => {
  const half = new Uint16Array(w.length), back = new Float32Array(w.length);
  cpuOps.encodeHalf(w, true, half);
  cpuOps.decodeHalf(half, true, back, 0);
  return { data: back, shape };
};

for (const [caseName, adapterName, weight] of [['llama_lmhead', 'lmhead_qv', 'lm_head.weight'], ['gpt2_tied', 'head_r4', 'transformer.wte.weight']] as const) {
  describe(`lm_head base-layer copy, ${caseName}`, () => {
    let c: GoldenCase, root: string, engine: LocalEngine;
    before(() => {
      c = loadGoldenCase(caseName);
      root = mkdtempSync(join(tmpdir(), 'weft-base-copy-'));
      engine = LocalEngine.open(c.modelDir, { numBlocks: 64, blockSize: 4, adapterSlots: 1 });
    });
    after(() => {
      engine?.dispose();
      rmSync(root, { recursive: true, force: true });
    });

    for (const [label, edit] of [['exact', same], ['bf16', bf16]] as const) {
      test(`a ${label} copy of the base lm_head is checked and dropped: the golden logits`, async () => {
        const dir = withCopy(root, c, adapterName, label, edit, weight);
        assert.equal(loadAdapterDir(dir).tensors.has(COPY), true);
        for (const load of ['thread', 'worker'] as const) {
          if (load === 'thread') engine.loadAdapter(0, dir);
          else engine.installPrepared(0, await engine.prepareAdapter(dir));
          for (let s = 0; s < c.sequences.length; s++) {
            const [out] = await engine.scoreBatch([{ tokens: c.sequences[s]!, adapterSlot: 0 }]);
            const e = maxAbsDiff(out!, c.logits(`adapter/${adapterName}/seq${s}`));
            assert.ok(e <= 1e-4, `${load} seq${s}: max abs error ${e}`);
          }
        }
      });
    }

    test('a copy that differs from the base lm_head, or has another shape, is refused by name', async () => {
      const changed = withCopy(root, c, adapterName, 'changed', (w, shape) => {
        const d = w.slice();
        d[3 * shape[1]! + 1] = d[3 * shape[1]! + 1]! + 0.05;
        return { data: d, shape };
      }, weight);
      assert.throws(() => engine.loadAdapter(0, changed), /lm_head\.base_layer\.weight' differs from the base model's lm_head \(row 3:.*save_embedding_layers=False/);
      await assert.rejects(engine.prepareAdapter(changed), /differs from the base model's lm_head/);
      const resized = withCopy(root, c, adapterName, 'resized', (w, shape) => ({ data: w.slice(0, (shape[0]! - 1) * shape[1]!), shape: [shape[0]! - 1, shape[1]!] }), weight);
      assert.throws(() => engine.loadAdapter(0, resized), /is \[\d+, \d+\] but the base model's lm_head is \[\d+, \d+\]: the adapter was trained with a resized vocabulary/);
    });
  });
}

test('a base-layer copy without an lm_head LoRA pair is refused when the adapter is read', () => {
  const c = loadGoldenCase('llama');
  const root = mkdtempSync(join(tmpdir(), 'weft-base-copy-'));
  try {
    // qv_r4 targets q/v only: an lm_head copy beside it belongs to no LoRA pair.
    const dir = withCopy(root, { ...c, name: 'llama' }, 'qv_r4', 'orphan', same, 'lm_head.weight');
    assert.throws(() => loadAdapterDir(dir), /'lm_head\.base_layer\.weight' is saved but 'lm_head' has no LoRA pair/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
