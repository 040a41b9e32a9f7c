// Order statistics for benchmark samples. Percentiles interpolate linearly between the two nearest ranks
// (numpy's default), so p50 of an even-sized sample is the mean of the middle two.

/** The p-th percentile (0..100) of `values`; NaN for an empty sample. Does not modify `values`. */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile: p must be in [0, 100], got ${p}`);
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((s, v) => s + v, 0) / values.length;
}

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** p50/p99/mean/min/max of a sample; NaN fields when the sample is empty. */
export function summarize(values: readonly number[]): Summary {
  return {
    n: values.length,
    p50: percentile(values, 50),
    p99: percentile(values, 99),
    mean: mean(values),
    min: values.reduce((m, v) => Math.min(m, v), values.length ? Infinity : Number.NaN),
    max: values.reduce((m, v) => Math.max(m, v), values.length ? -Infinity : Number.NaN),
  };
}
