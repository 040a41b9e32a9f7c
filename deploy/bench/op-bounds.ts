// Bytes one call of a decode step's op must move at the least, by the op-profile label (the executor's op names),
// so `--op-profile` can print each op's time next to its own bandwidth bound: which op is far from the copy rate
// is what the next kernel work needs to know (2026-11-23's H100 profile had to be read against these by hand).
// The model: weights read once; activations read and written once in the engine's element size; the residual
// stream in fp32; attention reads each row's K and V. Ops without a byte model (LoRA, whose shrinks may run
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
