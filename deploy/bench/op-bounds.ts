// Each op's own bound, by the op-profile label (the executor's op names), so `--op-profile` can print its time next
// to it: which op is far from the machine's limit is what the next kernel work needs to know (2026-11-23's H100
// profile had to be read against these by hand). Decode: the bytes one call must move at the least — weights read
// once; activations read and written once in the engine's element size; the residual stream in fp32; attention
// reads each row's K and V — at the copy bandwidth. Prefill: the GEMMs' and attention's FLOPs at the GEMM rate (or
// their bytes, whichever bound is longer), the other ops' bytes. Ops without a model (LoRA, whose shrinks may run
// beside the GEMMs and not show; sampling; plan upload) get none.
import type { ModelShape } from './shapes.js';

export interface OpBoundCase {
  batch: number;
  /** Tokens in each row's KV cache (mean over the timed steps). */
  kvContext: number;
}

/** Bytes per call, or undefined for ops without a model. `eb`: weight/activation element bytes; `kvb`: KV's. */
export function decodeOpBytes(op: string, s: ModelShape, c: OpBoundCase, eb: number, kvb: number): number | undefined {
  const B = c.batch, H = s.hidden, I = s.intermediate;
  const q = s.heads * s.headDim, kv = s.kvHeads * s.headDim;
  const gemm = (inDim: number, outDim: number) => (inDim * outDim + B * (inDim + outDim)) * eb;
  switch (op) {
    case 'gemm qkv': return gemm(H, q + 2 * kv);
    case 'gemm o': return gemm(q, H);
    case 'gemm up': return gemm(H, 2 * I);  // gate and up in one GEMM (gated MLPs)
    case 'gemm down': return gemm(I, H);
    case 'gemm lm_head': return gemm(H, s.vocab);
    // K and V of every row's context, plus q in and the output out.
    case 'attention decode': return B * c.kvContext * 2 * kv * kvb + B * 2 * q * eb;
    // fp32 residual read + written, the module output read, the normed row written.
    case 'residual + norm': return B * H * (4 + 4 + 2 * eb);
    case 'norm': case 'final norm': return B * H * (4 + eb);
    // q, k, v read; q written back, k and v written to the cache.
    case 'rope + kv write': return B * (q + 2 * kv) * eb * 2;
    case 'activation': return B * 3 * I * eb;  // gate and up read, their product written
    default: return undefined;
  }
}

/** decodeOpBytes at `bandwidth` bytes/s, in ms per call. */
export function decodeOpMs(op: string, s: ModelShape, c: OpBoundCase, eb: number, kvb: number, bandwidth: number):
  number | undefined {
  const bytes = decodeOpBytes(op, s, c, eb, kvb);
  return bytes === undefined || !(bandwidth > 0) ? undefined : (bytes / bandwidth) * 1e3;
}

/**
 * One sequence's prefill of `tokens`: an op's bound in ms per call — GEMMs and attention by FLOPs at `gemmRate`
 * (FLOP/s) or bytes at `bandwidth`, whichever is longer; the small ops by bytes. The lm_head runs on the last row.
 */
export function prefillOpMs(op: string, s: ModelShape, tokens: number, eb: number, gemmRate: number, bandwidth: number):
  number | undefined {
  if (!(gemmRate > 0) || !(bandwidth > 0)) return undefined;
  const q = s.heads * s.headDim, kv = s.kvHeads * s.headDim;
  const gemm = (rows: number, inDim: number, outDim: number) =>
    Math.max((2 * rows * inDim * outDim) / gemmRate, ((inDim * outDim + rows * (inDim + outDim)) * eb) / bandwidth) * 1e3;
  switch (op) {
    case 'gemm qkv': return gemm(tokens, s.hidden, q + 2 * kv);
    case 'gemm o': return gemm(tokens, q, s.hidden);
    case 'gemm up': return gemm(tokens, s.hidden, 2 * s.intermediate);
    case 'gemm down': return gemm(tokens, s.intermediate, s.hidden);
    case 'gemm lm_head': return gemm(1, s.hidden, s.vocab);
    case 'attention prefill': {  // causal: QKᵀ and P·V over T(T+1)/2 (query, key) pairs, every head
      const flops = 2 * 2 * s.heads * s.headDim * (tokens * (tokens + 1)) / 2;
      return Math.max(flops / gemmRate, (tokens * 2 * (q + kv) * eb) / bandwidth) * 1e3;
    }
    default: {
      const bytes = decodeOpBytes(op, s, { batch: tokens, kvContext: 0 }, eb, eb);
      return bytes === undefined || op.startsWith('gemm') || op.startsWith('attention') ? undefined : (bytes / bandwidth) * 1e3;
    }
  }
}
