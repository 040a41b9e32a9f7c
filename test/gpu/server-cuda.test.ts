// A served request over HTTP with `--device cuda`: `weft launch` (real nats-server, real shard processes on the
// GPU) over the golden llama model, base + 3 adapters concurrently in the same batches. fp32 prefill log-probs
// within 1e-3 of the golden log-softmax at TP=1 and at TP=2 (both ranks on this GPU over the shm collective);
// one shard with --collective nccl (the unique id exchanged over NATS) matches too; bf16 greedy requests
// succeed and streaming equals plain; chunked prefill gives the same tokens as whole prompts. Skipped with the
// reason without a GPU.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cudaInfo } from '../../kernels/cuda.js';
import { prefillMatchesGolden, startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';

const info = cudaInfo();
const noGpu = info.available ? false : `no usable GPU: ${info.reason}`;
const ADAPTERS = [null, 'all_r8', 'qv_r4', 'rslora_r16'];
const FP32_TOL = 1e-3;

function params(a: string | null, extra: Record<string, unknown>): Record<string, unknown> {
  return a ? { ...extra, adapter_id: a, adapter_source: 'local' } : extra;
}

for (const numShard of [1, 2]) {
  describe(`server --device cuda --dtype float32, TP=${numShard}`, { skip: noGpu }, () => {
    let g: GoldenServer;
    before(async () => { g = await startGoldenServer({ numShard }, { flags: ['--device', 'cuda', '--dtype', 'float32'] }); });
    after(async () => { await g?.close(); });

    test('concurrent prefill logprobs for base + 3 adapters match the golden log-softmax', async () => {
      const jobs = [];
      for (let s = 0; s < g.c.sequences.length; s++) {
        for (const a of ADAPTERS) {
          const body = { inputs: textOf(g.c.sequences[s]), parameters: params(a, { max_new_tokens: 1, details: true, decoder_input_details: true }) };
          jobs.push(g.post('/generate', body).then((r) => ({ r, s, a })));
        }
      }
      let worst = 0;
      for (const { r, s, a } of await Promise.all(jobs)) {
        assert.equal(r.status, 200, r.text);
        worst = Math.max(worst, prefillMatchesGolden(g.c, r.json, a ? `adapter/${a}/seq${s}` : `base/seq${s}`, g.c.sequences[s], FP32_TOL));
      }
      console.log(`# TP=${numShard} cuda fp32: worst |logprob - golden| = ${worst.toExponential(2)}`);
    });

    test('16 concurrent greedy requests over mixed adapters each equal the request served alone', async () => {
      const reqs = Array.from({ length: 16 }, (_, k) => ({
        inputs: textOf(g.c.sequences[k % 3].slice(0, 3 + (k % 5))),
        parameters: params(ADAPTERS[k % 4], { max_new_tokens: 6 + (k % 7), details: true }),
      }));
      const alone: Awaited<ReturnType<GoldenServer["post"]>>[] = [];
      for (const r of reqs) alone.push(await g.post('/generate', r));
      const together = await Promise.all(reqs.map((r) => g.post('/generate', r)));
      together.forEach((t, k) => {
        assert.equal(t.status, 200, t.text);
        assert.deepEqual(t.json.details.tokens.map((x: { id: number }) => x.id), alone[k].json.details.tokens.map((x: { id: number }) => x.id), `request ${k}`);
      });
    });
  });
}

// Chunked prefill on the CUDA executor: prompt parts at positions > 0, steps whose only rows sample nothing,
// one-token parts among decode rows (the CUDA-graph path) — the same greedy tokens as whole prompts.
describe('server --device cuda: chunked prefill == whole prompts (fp32)', { skip: noGpu }, () => {
  let whole: GoldenServer;
  let chunked: GoldenServer;
  const flags = ['--device', 'cuda', '--dtype', 'float32'];
  before(async () => {
    whole = await startGoldenServer({}, { flags });
    chunked = await startGoldenServer({ maxBatchPrefillTokens: 5 }, { flags });
  });
  after(async () => { await whole?.close(); await chunked?.close(); });

  test('16 concurrent mixed-adapter requests with 3..36-token prompts', async () => {
    const reqs = Array.from({ length: 16 }, (_, k) => {
      const len = 3 + ((k * 11) % 34);
      const ids = Array.from({ length: len }, (_, i) => whole.c.sequences[(k + Math.floor(i / 7)) % 3][i % 3]);
      return { inputs: textOf(ids), parameters: params(ADAPTERS[k % 4], { max_new_tokens: 5 + (k % 6), details: true }) };
    });
    const [a, b] = await Promise.all([whole, chunked].map((g) => Promise.all(reqs.map((r) => g.post('/generate', r)))));
    a.forEach((r, k) => {
      assert.equal(r.status, 200, r.text);
      assert.equal(b[k].status, 200, b[k].text);
      assert.deepEqual(b[k].json.details.tokens.map((x: { id: number }) => x.id), r.json.details.tokens.map((x: { id: number }) => x.id), `request ${k}`);
    });
  });
});

describe('server --device cuda --collective nccl (one shard)', { skip: noGpu }, () => {
  let g: GoldenServer;
  before(async () => { g = await startGoldenServer({}, { flags: ['--device', 'cuda', '--dtype', 'float32', '--collective', 'nccl'] }); });
  after(async () => { await g?.close(); });

  test('the NCCL unique id goes over NATS, the shard joins, and mixed-adapter prefill logprobs match golden', async () => {
    const jobs = ADAPTERS.map((a) => g.post('/generate', { inputs: textOf(g.c.sequences[0]),
      parameters: params(a, { max_new_tokens: 2, details: true, decoder_input_details: true }) }).then((r) => ({ r, a })));
    for (const { r, a } of await Promise.all(jobs)) {
      assert.equal(r.status, 200, r.text);
      prefillMatchesGolden(g.c, r.json, a ? `adapter/${a}/seq0` : 'base/seq0', g.c.sequences[0], FP32_TOL);
    }
  });
});

describe('server --device cuda --dtype bfloat16', { skip: noGpu }, () => {
  let g: GoldenServer;
  before(async () => { g = await startGoldenServer({}, { flags: ['--device', 'cuda', '--dtype', 'bfloat16'] }); });
  after(async () => { await g?.close(); });

  test('/info reports the CUDA device, the bf16 weights and a KV cache sized from GPU memory', async () => {
    const info = await (await fetch(`${g.url}/info`)).json() as Record<string, unknown>;
    assert.equal(info.model_device_type, 'cuda');
    assert.equal(info.model_dtype, 'bfloat16');
    // The memory plan caps the cache at --max-batch-size full-length sequences; the golden model is tiny.
    assert.ok((info.kv_blocks as number) > 1000, `kv_blocks ${String(info.kv_blocks)}`);
  });

  test('streamed and plain mixed-adapter requests succeed and agree', async () => {
    const bodies = ADAPTERS.map((a, k) => ({ inputs: textOf(g.c.sequences[k % 3]), parameters: params(a, { max_new_tokens: 8, details: true }) }));
    const plain = await Promise.all(bodies.map((b) => g.post('/generate', b)));
    const streamed = await Promise.all(bodies.map((b) => g.post('/generate_stream', b)));
    plain.forEach((p, k) => {
      assert.equal(p.status, 200, p.text);
      assert.equal(p.json.details.tokens.length, 8);
      const events = streamed[k].text.split('\n').filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5)));
      assert.deepEqual(events.map((e) => e.token.id), p.json.details.tokens.map((t: { id: number }) => t.id), `request ${k}`);
    });
  });
});

test('HTTP-on-GPU tests ran or were skipped for a stated reason', (t) => {
  if (noGpu) t.skip(noGpu);
});
