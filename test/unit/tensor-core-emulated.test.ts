// The GPU kernels' portable bodies (kernels/src/cuda/kernels/*_body.h) run on the CPU under the host warp
// emulator (test/emulated/warp_emu.h: threads for lanes, mma.sync from the PTX fragment layouts):
// - prefill attention (prefill_mma_emu.cc), the first and the pipelined tensor-core kernel (cp.async copies
//   land only at their wait, ldmatrix emulated from its PTX layouts), against cpu::paged_attention: GQA/MQA,
//   head sizes 16..128, chunked prefill on a cached prefix, sliding windows, odd block sizes, bf16 and fp16,
//   gpt-oss's attention sinks, Llama 4's chunked attention (PagedAttention::chunk), Gemma 3's image spans
//   (PagedAttention::image_spans);
// - SGMV shrink (lora_shrink_mma_emu.cc: one block per tile, and clusters of 4 and 8 blocks splitting `in`)
//   against a double-precision x·Aᵀ per segment, and a segment's h rows bit for bit when run alone;
// - SGMV expand with 16-byte accesses (lora_expand_vec_emu.cc) against a double-precision y + scale·h·Bᵀ;
// - the decode-sized GEMM (skinny_gemm_emu.cc: weights as the MMA's A operand, 16-byte loads with the k order
//   permuted on both operands) against a double-precision x·Wᵀ + bias, and its rows bit for bit across M;
// - the split BGMV shrink (lora_shrink_split_emu.cc: 128 threads split `in`, fixed-order reduction) against a
//   double-precision x·Aᵀ, each token alone bit for bit;
// - decode attention (decode_attention_emu.cc: flash-decoding over 512/256-key partitions and their merge) against
//   cpu::paged_attention, attention sinks and Llama 4's chunks included (the partitions before a row's chunk skipped),
//   its deeper rings of loads in flight (depths 4 and 8) bit for bit equal to depth 1;
// - the fused decode LoRA (lora_bgmv_fused_emu.cc: a thread-block cluster per token and slice, its barrier
//   and distributed shared memory emulated) against a double-precision y + scale·(x·Aᵀ)·Bᵀ.
// Needs g++ (C++20) and the CUDA headers (for kernels.h's types); skipped with the reason where they are
// missing. The real kernels are checked on a GPU by test/gpu/run.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

function cudaInclude(): string | undefined {
  const which = spawnSync('bash', ['-c', 'command -v nvcc'], { encoding: 'utf8' });
  const candidates = [
    ...(which.status === 0 ? [join(dirname(dirname(which.stdout.trim())), 'include')] : []),
    process.env.CUDA_HOME ? join(process.env.CUDA_HOME, 'include') : '',
    '/usr/local/cuda/include',
  ];
  return candidates.find((d) => d && existsSync(join(d, 'cuda_runtime.h')));
}
const include = cudaInclude();
const gxx = spawnSync('g++', ['--version'], { encoding: 'utf8' });
const skip =
  gxx.status !== 0 ? 'g++ is not installed here' : include === undefined ? 'no CUDA headers (cuda_runtime.h) found' : false;

function buildAndRun(source: string, extra: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-mma-emu-'));
  try {
    const bin = join(dir, 'emu');
    const build = spawnSync('g++', ['-std=c++20', '-O2', '-pthread', '-I', 'kernels/src', '-I', include as string, source,
      ...extra, '-o', bin], { encoding: 'utf8' });
    assert.equal(build.status, 0, `build of ${source} failed:\n${build.stderr}`);
    const run = spawnSync(bin, [], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, `${source}: the emulated kernel differs from the reference:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /(\d+) cases, 0 failed/);
    return run.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('tensor-core prefill attention bodies (first and pipelined) == cpu::paged_attention under the warp emulator', { skip }, () => {
  const out = buildAndRun('test/emulated/prefill_mma_emu.cc', ['kernels/src/cpu/attention.cc', 'kernels/src/cpu/parallel.cc']);
  assert.ok(Number(/(\d+) cases/.exec(out)?.[1]) >= 58, 'every case ran, for both kernels');
  assert.match(out, /\[pipelined\]/);
  assert.match(out, /^ok {3}\[pipelined\] Gemma 2: softcap/m, 'the attention-logit softcap');
  assert.match(out, /^ok {3}\[mma\] gpt-oss sinks dominate/m, 'attention sinks (gpt-oss), first kernel');
  assert.match(out, /^ok {3}\[pipelined\] gpt-oss sinks: GQA/m, 'attention sinks (gpt-oss), pipelined kernel');
  assert.match(out, /^ok {3}\[mma\] chunk 16: /m, 'chunked attention (Llama 4), first kernel');
  assert.match(out, /^ok {3}\[pipelined\] chunk 128: .*on 300 across the chunk/m, 'a chunked prefill across chunks, pipelined kernel');
  assert.match(out, /^ok {3}\[mma\] bidirectional: MHA/m, 'bidirectional attention (EmbeddingGemma), first kernel');
  assert.match(out, /^ok {3}\[pipelined\] bidirectional: MQA .*two-sided window/m, 'a two-sided window, pipelined kernel');
  assert.match(out, /^ok {3}\[mma\] images: GQA 4\/2 hd64 bf16, an image across row and key tiles/m, 'Gemma 3 images, first kernel');
  assert.match(out, /^ok {3}\[pipelined\] images: GQA 8\/2 .*cached prefixes ending inside an image/m,
    'a chunk whose cached prefix ends inside an image, pipelined kernel');
  assert.match(out, /^ok {3}\[pipelined\] images: MQA 4\/1 .*window 24/m, 'an image with a sliding window, pipelined kernel');
});

test('tensor-core SGMV shrink body (one block or a cluster per tile) == x·Aᵀ per segment under the emulator', { skip }, () => {
  const out = buildAndRun('test/emulated/lora_shrink_mma_emu.cc', []);
  assert.ok(Number(/(\d+) cases/.exec(out)?.[1]) >= 23, 'every case ran');
  assert.match(out, /^ok {3}compact segments: .*\[cluster 8\]/m, 'segments naming their entries (seg_entries)');
});

test('16-byte SGMV expand body == y + scale·h·Bᵀ per segment under the warp emulator', { skip }, () => {
  const out = buildAndRun('test/emulated/lora_expand_vec_emu.cc', []);
  assert.ok(Number(/(\d+) cases/.exec(out)?.[1]) >= 10, 'every case ran, y loaded late and early');
  assert.match(out, /^ok {3}compact segments: /m, 'segments naming their entries (seg_entries)');
  assert.match(out, /^ok {3}compact segments: .*\[early y\]/m, 'WEFT_SGMV_EXPAND_EARLY_Y=1');
});

test('split BGMV shrink body (a block splits `in`) == x·Aᵀ per token, each token alone the same bits, under the emulator', { skip }, () => {
  const out = buildAndRun('test/emulated/lora_shrink_split_emu.cc', []);
  assert.ok(Number(/(\d+) cases/.exec(out)?.[1]) >= 6, 'every case ran');
  assert.match(out, /^ok {3}down-like: in 11008/m, 'the down projection\'s `in`');
});

test('fused BGMV shrink + expand body (one cluster per token and slice) == y + scale·(x·Aᵀ)·Bᵀ under the emulator', { skip }, () => {
  const out = buildAndRun('test/emulated/lora_bgmv_fused_emu.cc', []);
  assert.ok(Number(/(\d+) cases/.exec(out)?.[1]) >= 4, 'every case ran');
});

test('decode-sized tensor-core GEMM body == x·Wᵀ + bias, rows independent of M, under the warp emulator', { skip }, () => {
  const out = buildAndRun('test/emulated/skinny_gemm_emu.cc', []);
  assert.ok(Number(/(\d+) cases/.exec(out)?.[1]) >= 5, 'every case ran');
});

test('decode attention body and merge == cpu::paged_attention; every loads-in-flight depth gives the same bits', { skip }, () => {
  const out = buildAndRun('test/emulated/decode_attention_emu.cc', ['kernels/src/cpu/attention.cc', 'kernels/src/cpu/parallel.cc']);
  assert.ok(Number(/(\d+) cases/.exec(out)?.[1]) >= 19, 'every case ran');
  assert.match(out, /^ok .*Gemma 2: softcap/m, 'the attention-logit softcap');
  assert.match(out, /^ok {3}chunk 100: .*512-key partitions/m, 'chunks smaller than a partition (Llama 4)');
  assert.match(out, /^ok {3}chunk 700: /m, 'chunks over several partitions (Llama 4)');
  assert.match(out, /^ok .*gpt-oss sinks: .*across 256-key partitions/m, 'attention sinks (gpt-oss), merged over partitions');
  assert.doesNotMatch(out, /DIFFER/);
});
