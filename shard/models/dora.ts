// DoRA (PEFT use_dora) at load time: a DoRA module's output is y = m ⊙ (xWᵀ + s·(xAᵀ)Bᵀ) / ||W + s·BA|| + bias,
// the norm taken over each output channel's weight row (PEFT DoraLinearLayer). The norm needs the base weights,
// which only the executor holds, and for a row-parallel module (o, down) each rank holds a slice of every row:
// its share of the squared norm is summed over the ranks (DoraNormExchange) before the channel scale
// m / ||·|| is fixed. The scale is then part of the staged adapter (LoraPartInput.mag) and a step applies it to
// the module's whole output for the adapter's rows — so base rows and plain-LoRA rows in the same batch are
// untouched, and the scale, applied to each rank's partial sum, distributes over the all-reduce.
import { LoraModuleId, type NativeModel } from '../../kernels/index.js';
import { AdapterLoadError, type AdapterPlan, type LoraPartPlan } from './load-adapter.js';

/** Sums per-row partial squared norms over every rank of the group (each rank passes its own, in part order). */
export type SumOverRanks = (partials: Float32Array[]) => Promise<Float32Array[]>;

const isRowParallel = (p: LoraPartPlan): boolean => p.module === LoraModuleId.o || p.module === LoraModuleId.down;

function withScales(plan: AdapterPlan, dora: LoraPartPlan[], normsSq: Float32Array[]): AdapterPlan {
  const scaleOf = new Map<LoraPartPlan, Float32Array>();
  dora.forEach((p, i) => {
    const m = p.magnitude!, sq = normsSq[i]!;
    const mag = new Float32Array(m.length);
    for (let o = 0; o < m.length; o++) {
      const norm = Math.fround(Math.sqrt(sq[o]!));
      // A zero row (W and ΔW both zero) has no direction to scale; PEFT would divide by zero. Refuse by name.
      if (!(norm > 0)) throw new AdapterLoadError(`DoRA: output ${o} of layer ${p.layer} module ${p.module} has a zero weight norm`);
      mag[o] = m[o]! / norm;
    }
    scaleOf.set(p, mag);
  });
  return { ...plan, parts: plan.parts.map((p) => (scaleOf.has(p) ? { ...p, mag: scaleOf.get(p)! } : p)) };
}

/**
 * The plan with every DoRA part's channel scale set (a plan without DoRA parts comes back as it is). The norms
 * are computed by the executor on the libuv pool; `sumOverRanks` adds up the row-parallel parts' shares when
 * the model is split over more than one rank.
 */
export async function finishDora(native: NativeModel, plan: AdapterPlan, world: number,
  sumOverRanks?: SumOverRanks): Promise<AdapterPlan> {
  const dora = plan.parts.filter((p) => p.magnitude);
  if (dora.length === 0) return plan;
  const sums = await native.loraWeightNormsSq(dora);
  const split = dora.map((p, i) => (world > 1 && isRowParallel(p) ? i : -1)).filter((i) => i >= 0);
  if (split.length > 0) {
    if (!sumOverRanks) throw new AdapterLoadError('DoRA at tensor-parallel degree > 1 needs the shards to exchange weight norms');
    const totals = await sumOverRanks(split.map((i) => sums[i]!));
    split.forEach((i, k) => { sums[i] = totals[k]!; });
  }
  return withScales(plan, dora, sums);
}

/** finishDora on this thread, for one-rank engines (score, bench, tests); a split model needs finishDora. */
export function finishDoraSync(native: NativeModel, plan: AdapterPlan, world: number): AdapterPlan {
  const dora = plan.parts.filter((p) => p.magnitude);
  if (dora.length === 0) return plan;
  if (world > 1 && dora.some(isRowParallel)) {
    throw new AdapterLoadError('DoRA at tensor-parallel degree > 1 loads through the shard actors (their weight norms are exchanged)');
  }
  return withScales(plan, dora, native.loraWeightNormsSqSync(dora));
}
