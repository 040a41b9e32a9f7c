// Seeded random numbers for the demo weights: the same seed and name always give the same tensor.

/** 32-bit FNV-1a hash of a string, used to give every tensor its own stream. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A small 32-bit generator (mulberry32); returns uniform floats in [0, 1). */
export function uniformStream(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` draws from normal(0, std) by the Box–Muller transform, seeded by (seed, name). */
export function normalTensor(n: number, std: number, seed: number, name: string): Float32Array {
  const next = uniformStream(hashString(name) ^ Math.imul(seed >>> 0, 0x9e3779b1));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = 1 - next(); // in (0, 1], so the log is finite
    const u2 = next();
    const radius = std * Math.sqrt(-2 * Math.log(u1));
    out[i] = radius * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = radius * Math.sin(2 * Math.PI * u2);
  }
  return out;
}
