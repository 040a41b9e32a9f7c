// A sentence-transformers model directory read into an embedding pipeline (coordinator/http/sentence-transformers.ts):
// modules.json, the Pooling config, Dense layers (config.json + model.safetensors) and Normalize; --pooling-type over
// the config's; every config weft cannot run refused with a message naming the file and the problem; the Dense and
// Normalize steps computed as torch does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyPoolSteps, embeddingPipeline, type DenseLayer } from '../../coordinator/http/sentence-transformers.js';
import { writeSafetensors } from '../../shard/formats/index.js';

const GEMMA = join(import.meta.dirname, '../../../test/fixtures/embeddings/embeddinggemma');
const ST = 'sentence_transformers.models.';

/** A model directory with these modules (type suffix → path) and files. */
function modelDir(modules: [string, string][], files: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-st-'));
  writeFileSync(join(dir, 'modules.json'), JSON.stringify(modules.map(([type, path], idx) => ({ idx, name: String(idx), path, type: ST + type }))));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), JSON.stringify(content));
  }
  return dir;
}
const pooling = (mode: Record<string, unknown>) => ({ '1_Pooling/config.json': { word_embedding_dimension: 4, ...mode } });
const MEAN = pooling({ pooling_mode_mean_tokens: true });

/** A Dense module's directory: config.json and linear.weight [out, in] (+ linear.bias), values 0.1·(i+1). */
function dense(dir: string, path: string, cfg: Record<string, unknown>, shape = [cfg.out_features as number, cfg.in_features as number], bias = true): void {
  mkdirSync(join(dir, path), { recursive: true });
  writeFileSync(join(dir, path, 'config.json'), JSON.stringify(cfg));
  const n = shape[0]! * shape[1]!;
  const tensors = { 'linear.weight': { dtype: 'F32' as const, shape, data: Float32Array.from({ length: n }, (_, i) => 0.1 * (i + 1)) },
    ...(bias ? { 'linear.bias': { dtype: 'F32' as const, shape: [shape[0]!], data: new Float32Array(shape[0]!).fill(0.5) } } : {}) };
  writeSafetensors(join(dir, path, 'model.safetensors'), tensors);
}

test('no modules.json: the last token\'s state as it is', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-st-'));
  assert.deepEqual(embeddingPipeline(dir, 64), { pooling: 'last', steps: [], dimension: 64, refusal: null });
  assert.equal(embeddingPipeline(dir, 64, 'mean').pooling, 'mean', '--pooling-type applies without a config too');
  rmSync(dir, { recursive: true });
});

test('EmbeddingGemma\'s layout: mean pooling, Dense 32→64 and 64→32 without bias (Identity), Normalize; --pooling-type wins', () => {
  const p = embeddingPipeline(GEMMA, 32);
  assert.equal(p.refusal, null);
  assert.equal(p.pooling, 'mean');
  assert.equal(p.dimension, 32);
  assert.deepEqual(p.steps.map((s) => s.kind === 'dense' ? [s.path, s.inFeatures, s.outFeatures, s.activation, s.bias] : s.kind),
    [['2_Dense', 32, 64, 'identity', null], ['3_Dense', 64, 32, 'identity', null], 'normalize']);
  assert.equal((p.steps[0] as DenseLayer).weight.length, 64 * 32);
  assert.equal(embeddingPipeline(GEMMA, 32, 'cls').pooling, 'cls');
});

test('each pooling mode a config can name, and sentence-transformers\' Dense defaults (a bias, Tanh)', () => {
  for (const [key, mode] of [['pooling_mode_cls_token', 'cls'], ['pooling_mode_mean_tokens', 'mean'], ['pooling_mode_max_tokens', 'max'],
    ['pooling_mode_lasttoken', 'last']] as const) {
    assert.equal(embeddingPipeline(modelDir([['Transformer', ''], ['Pooling', '1_Pooling']], pooling({ [key]: true })), 4).pooling, mode, key);
  }
  const dir = modelDir([['Transformer', ''], ['Pooling', '1_Pooling'], ['Dense', '2_Dense']], MEAN);
  dense(dir, '2_Dense', { in_features: 4, out_features: 3 });
  const p = embeddingPipeline(dir, 4);
  assert.equal(p.refusal, null);
  assert.deepEqual([p.dimension, (p.steps[0] as DenseLayer).activation, (p.steps[0] as DenseLayer).bias?.length], [3, 'tanh', 3]);
});

test('Dense, Tanh and Normalize compute y = tanh(W x + b), then x / ‖x‖', () => {
  const d: DenseLayer = { kind: 'dense', path: 'd', inFeatures: 2, outFeatures: 2, weight: Float32Array.from([1, 2, 3, 4]),
    bias: Float32Array.from([0.5, -1]), activation: 'tanh' };
  const x = Float32Array.from([0.1, -0.2]);
  const y = applyPoolSteps([d], x);
  assert.deepEqual([...y], [Math.fround(Math.tanh(0.5 + x[0]! + 2 * x[1]!)), Math.fround(Math.tanh(-1 + 3 * x[0]! + 4 * x[1]!))]);
  const n = applyPoolSteps([{ ...d, activation: 'identity', bias: null }, { kind: 'normalize' }], Float32Array.from([1, 0]));
  assert.deepEqual([...n], [Math.fround(1 / Math.sqrt(10)), Math.fround(3 / Math.sqrt(10))]);  // W·[1, 0] = [1, 3], over √10
});

test('configs weft cannot run are refused with the file and the reason; --pooling-type rescues only the pooling', () => {
  const refusal = (dir: string, hidden = 4, override: 'mean' | null = null) => embeddingPipeline(dir, hidden, override).refusal ?? '';
  const tp = [['Transformer', ''], ['Pooling', '1_Pooling']] as [string, string][];
  assert.match(refusal(modelDir([...tp, ['LayerNorm', '2_LayerNorm']], MEAN)), /names the module 'sentence_transformers\.models\.LayerNorm', which weft does not run/);
  assert.match(refusal(modelDir([['Transformer', ''], ['Dense', '1_Dense'], ['Pooling', '2_Pooling']], MEAN)),
    /lists Transformer → Dense → Pooling; weft runs Transformer → Pooling → Dense\/Normalize/);
  assert.match(refusal(modelDir(tp)), /1_Pooling\/config\.json is missing: modules\.json names a Pooling module there/);
  assert.match(refusal(modelDir(tp, pooling({ pooling_mode_cls_token: true, pooling_mode_mean_tokens: true }))), /pools by cls \+ mean at once/);
  const weighted = modelDir(tp, pooling({ pooling_mode_weightedmean_tokens: true }));
  assert.match(refusal(weighted), /pools by 'weightedmean'; weft pools by 'lasttoken', 'mean', 'max' or 'cls' only \(--pooling-type/);
  assert.equal(refusal(weighted, 4, 'mean'), '', '--pooling-type replaces the pooling weft does not run');
  assert.match(refusal(modelDir(tp, MEAN), 8), /word_embedding_dimension 4 is not the model's hidden size, 8/);
  const badJson = modelDir(tp, MEAN);
  writeFileSync(join(badJson, '1_Pooling', 'config.json'), '{');
  assert.match(refusal(badJson), /1_Pooling\/config\.json is not valid JSON/);

  const withDense = (cfg: Record<string, unknown>, shape?: number[], bias = true) => {
    const dir = modelDir([...tp, ['Dense', '2_Dense']], MEAN);
    dense(dir, '2_Dense', cfg, shape, bias);
    return dir;
  };
  const gelu = withDense({ in_features: 4, out_features: 3, activation_function: 'torch.nn.modules.activation.GELU' });
  assert.match(refusal(gelu), /activation_function "torch\.nn\.modules\.activation\.GELU" is not supported \(torch\.nn\.modules\.linear\.Identity, torch\.nn\.modules\.activation\.Tanh\)/);
  assert.match(refusal(gelu, 4, 'mean'), /GELU/, 'a Dense problem stays whatever the pooling');
  assert.match(refusal(withDense({ in_features: 4, out_features: 3 }, [3, 5])), /'linear\.weight' must be \[3, 4\] \(out_features, in_features\), found \[3, 5\]/);
  assert.match(refusal(withDense({ in_features: 4, out_features: 3 }, undefined, false)), /config\.json says bias true, but 'linear\.bias' is missing/);
  assert.match(refusal(withDense({ in_features: 4, out_features: 3, bias: false })), /says bias false, but 'linear\.bias' is \[3\]/);
  assert.match(refusal(withDense({ in_features: 6, out_features: 3 })), /in_features 6, but the vector it gets has 4 values/);
  assert.match(refusal(withDense({ in_features: 0, out_features: 3 })), /in_features must be a positive integer/);
  const noWeights = modelDir([...tp, ['Dense', '2_Dense']], { ...MEAN, '2_Dense/config.json': { in_features: 4, out_features: 3 } });
  assert.match(refusal(noWeights), /2_Dense has no model\.safetensors or pytorch_model\.bin/);
  const corrupt = withDense({ in_features: 4, out_features: 3 });
  writeFileSync(join(corrupt, '2_Dense', 'model.safetensors'), 'not safetensors');
  assert.match(refusal(corrupt), /2_Dense: cannot read the Dense weights: /);
  const noConfig = modelDir([...tp, ['Dense', '2_Dense']], MEAN);
  assert.match(refusal(noConfig), /2_Dense\/config\.json is missing/);
  // The fixture's layout, its first Dense's weights replaced by a wrong shape: named by its directory.
  const broken = mkdtempSync(join(tmpdir(), 'weft-st-'));
  cpSync(GEMMA, broken, { recursive: true });
  dense(broken, '2_Dense', { in_features: 32, out_features: 64, bias: false, activation_function: 'torch.nn.modules.linear.Identity' }, [64, 31], false);
  assert.match(refusal(broken, 32), /2_Dense: 'linear\.weight' must be \[64, 32\]/);
});
