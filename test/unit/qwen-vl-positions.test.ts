// Multimodal RoPE positions (shard/engine/mrope.ts) against transformers' get_rope_index, worked by hand, and the
// Qwen2-VL / Qwen2.5-VL config reading (qwen-vl-spec.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MropePositions } from '../../shard/engine/mrope.js';
import { parseModelSpec } from '../../shard/index.js';

function positions(m: MropePositions, n: number): number[][] {
  const out = new Int32Array(3 * n);
  for (let i = 0; i < n; i++) m.write(i, out, i, n);
  return [0, 1, 2].map((a) => [...out.subarray(a * n, (a + 1) * n)]);
}

test('text, a 2×3 image, text, a 3×1 image, text: get_rope_index positions and the delta after', () => {
  // tokens: t t [img 2x3: 6 tokens] t [img 3x1: 3 tokens] t t
  const m = new MropePositions([{ start: 2, rows: 2, cols: 3 }, { start: 9, rows: 3, cols: 1 }]);
  const [t, h, w] = positions(m, 14);
  // image 1 at t0 = 2: (2, 2 + r, 2 + c); text after continues from 2 + max(2, 3) = 5; image 2 at t0 = 6;
  // text after it from 6 + 3 = 9 (index 12 -> 9: delta -3).
  assert.deepEqual(t, [0, 1, 2, 2, 2, 2, 2, 2, 5, 6, 6, 6, 9, 10]);
  assert.deepEqual(h, [0, 1, 2, 2, 2, 3, 3, 3, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(w, [0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 6, 6, 9, 10]);
  assert.equal(m.delta, -3);
  assert.equal(new MropePositions([]).delta, 0);
});

test('Qwen2-VL / Qwen2.5-VL configs: the vision tower, the mrope sections; no vision_config: text only', () => {
  const text = { hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    vocab_size: 264, rope_parameters: { rope_type: 'default', rope_theta: 10000, mrope_section: [2, 3, 3] } };
  const q25 = parseModelSpec({ architectures: ['Qwen2_5_VLForConditionalGeneration'], image_token_id: 261, text_config: text,
    vision_config: { depth: 3, hidden_size: 32, intermediate_size: 48, num_heads: 4, out_hidden_size: 64, patch_size: 4,
      spatial_merge_size: 2, temporal_patch_size: 2, window_size: 16, fullatt_block_indexes: [1], hidden_act: 'silu' } });
  assert.deepEqual(q25.mropeSection, [2, 3, 3]);
  assert.deepEqual([q25.qwenVision!.windowed, q25.qwenVision!.hidden, q25.qwenVision!.outHidden, q25.qwenVision!.imageTokenId,
    q25.qwenVision!.fullBlocks], [true, 32, 64, 261, [1]]);
  const q2 = parseModelSpec({ architectures: ['Qwen2VLForConditionalGeneration'], ...text, rope_parameters: undefined,
    rope_scaling: { type: 'mrope', mrope_section: [2, 3, 3] }, vision_config: { depth: 2, embed_dim: 32, hidden_size: 64, num_heads: 4 } });
  assert.deepEqual([q2.qwenVision!.windowed, q2.qwenVision!.intermediate, q2.qwenVision!.act, q2.qwenVision!.patchSize], [false, 128, 'quick_gelu', 14]);
  assert.throws(() => parseModelSpec({ architectures: ['Qwen2VLForConditionalGeneration'], ...text,
    rope_parameters: { rope_theta: 10000, mrope_section: [2, 2, 2] }, vision_config: { embed_dim: 32, num_heads: 4 } }), /sums to 6, not head_dim \/ 2 = 8/);
  const textOnly = parseModelSpec({ architectures: ['Qwen2VLForConditionalGeneration'], ...text });
  assert.ok(textOnly.visionLanguage && !textOnly.qwenVision && !textOnly.mropeSection);
});
