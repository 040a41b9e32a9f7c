// MoE checkpoints saved by transformers 5 with save_original_format=False: the routed experts stacked in
// mlp.experts.gate_up_proj [E, 2·I, hidden] ([gate | up] of each expert) and mlp.experts.down_proj [E, hidden, I],
// Mixtral's block_sparse_moe renamed mlp (PhiMoE's gate mlp.router). Each golden MoE model, rewritten so, must give
// the golden logits.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalEngine } from '../../shard/index.js';
import { WeightStore, writeSafetensors } from '../../shard/formats/index.js';
import { loadGoldenCase, maxAbsDiff } from '../helpers/golden.js';

const tmp = mkdtempSync(join(tmpdir(), 'weft-moe-v5-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The golden model's checkpoint in transformers 5's stacked layout (names as its modules call them). */
function stackedCopy(src: string, dst: string, experts: number,
  names: { block: string; gate: string; up: string; down: string; router?: readonly [string, string] }): void {
  const store = WeightStore.openDir(src);
  const out: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  try {
    const per = new RegExp(`^(model\\.layers\\.\\d+)\\.${names.block.replace('.', '\\.')}\\.experts\\.(\\d+)\\.(\\w+)\\.weight$`);
    const layers = new Set<string>();
    for (const name of store.names()) {
      const m = per.exec(name);
      if (m) {
        layers.add(m[1]!);
        continue;
      }
      // PhiMoE's router: block_sparse_moe.gate → mlp.router (transformers' phimoe conversion)
      const renamed = (names.router ? name.replace(names.router[0], names.router[1]) : name).replace('.block_sparse_moe.', '.mlp.');
      out[renamed] = { dtype: 'F32', shape: store.info(name).shape, data: store.readF32(name) };
    }
    for (const layer of layers) {
      const w = (e: number, mod: string) => store.readF32(`${layer}.${names.block}.experts.${e}.${mod}.weight`);
      const [I, H] = store.info(`${layer}.${names.block}.experts.0.${names.gate}.weight`).shape as [number, number];
      const gateUp = new Float32Array(experts * 2 * I * H), down = new Float32Array(experts * H * I);
      for (let e = 0; e < experts; e++) {
        gateUp.set(w(e, names.gate), e * 2 * I * H);
        gateUp.set(w(e, names.up), (e * 2 + 1) * I * H);
        down.set(w(e, names.down), e * H * I);
      }
      out[`${layer}.mlp.experts.gate_up_proj`] = { dtype: 'F32', shape: [experts, 2 * I, H], data: gateUp };
      out[`${layer}.mlp.experts.down_proj`] = { dtype: 'F32', shape: [experts, H, I], data: down };
    }
  } finally {
    store.close();
  }
  mkdirSync(dst, { recursive: true });
  copyFileSync(join(src, 'config.json'), join(dst, 'config.json'));
  writeSafetensors(join(dst, 'model.safetensors'), out);
}

for (const [caseName, experts, names] of [
  ['mixtral', 4, { block: 'block_sparse_moe', gate: 'w1', up: 'w3', down: 'w2' }],
  ['glm4_moe', 8, { block: 'mlp', gate: 'gate_proj', up: 'up_proj', down: 'down_proj' }],  // its shared expert stays per module
  ['phimoe', 8, { block: 'block_sparse_moe', gate: 'w1', up: 'w3', down: 'w2', router: ['.block_sparse_moe.gate.', '.mlp.router.'] }],
  ['hunyuan_v1_moe', 8, { block: 'mlp', gate: 'gate_proj', up: 'up_proj', down: 'down_proj' }],  // router mlp.gate.wg, shared_mlp kept
] as const) {
  test(`${caseName} saved stacked (transformers 5, save_original_format=False) gives the golden logits, with an expert adapter`, async () => {
    const c = loadGoldenCase(caseName);
    const dir = join(tmp, caseName);
    stackedCopy(c.modelDir, dir, experts, names);
    const adapter = c.adapters.find((a) => a.name === 'qv_experts_r4')!;
    const engine = LocalEngine.open(dir, { numBlocks: 64, blockSize: 4, adapterSlots: 1 });
    try {
      engine.loadAdapter(0, adapter.dir);
      for (let s = 0; s < c.sequences.length; s++) {
        const [base, adapted] = await engine.scoreBatch([
          { tokens: c.sequences[s]!, adapterSlot: -1 }, { tokens: c.sequences[s]!, adapterSlot: 0 }]);
        assert.ok(maxAbsDiff(base!, c.logits(`base/seq${s}`)) <= 1e-4, `${caseName} base seq${s}`);
        assert.ok(maxAbsDiff(adapted!, c.logits(`adapter/qv_experts_r4/seq${s}`)) <= 1e-4, `${caseName} adapter seq${s}`);
      }
    } finally {
      engine.dispose();
    }
  });
}
