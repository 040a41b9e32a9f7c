// The 8-bit float formats quantized checkpoints store (safetensors F8_E4M3, F8_E5M2, F8_E8M0), decoded through
// 256-entry tables:
//  - E4M3 is float8_e4m3fn (OCP FP8): 4 exponent bits (bias 7), 3 mantissa bits, subnormals, no infinities;
//    S.1111.111 is NaN, so the largest finite value is 448. FP8 weights (DeepSeek-V3, Qwen3-FP8, llm-compressor).
//  - E5M2: IEEE-like, 5 exponent bits (bias 15), 2 mantissa bits, with infinities and NaNs.
//  - E8M0: an unsigned power of two 2^(e − 127) (0xff is NaN) — block scales stored as exponents ("ue8m0").

function e4m3(code: number): number {
  const sign = code & 0x80 ? -1 : 1, exp = (code >> 3) & 0xf, man = code & 0x7;
  if (exp === 0xf && man === 0x7) return NaN;
  return exp === 0 ? sign * (man / 8) * 2 ** -6 : sign * (1 + man / 8) * 2 ** (exp - 7);
}

function e5m2(code: number): number {
  const sign = code & 0x80 ? -1 : 1, exp = (code >> 2) & 0x1f, man = code & 0x3;
  if (exp === 0x1f) return man === 0 ? sign * Infinity : NaN;
  return exp === 0 ? sign * (man / 4) * 2 ** -14 : sign * (1 + man / 4) * 2 ** (exp - 15);
}

function e8m0(code: number): number {
  return code === 0xff ? NaN : 2 ** (code - 127);
}

const table = (fn: (code: number) => number): Float32Array => Float32Array.from({ length: 256 }, (_, c) => fn(c));

export const FP8_TABLES = { F8_E4M3: table(e4m3), F8_E5M2: table(e5m2), F8_E8M0: table(e8m0) } as const;
export type Fp8DType = keyof typeof FP8_TABLES;

/** Decodes 8-bit float codes into out[outOffset …]. */
export function decodeFp8(dtype: Fp8DType, src: Uint8Array, out: Float32Array, outOffset = 0): void {
  const t = FP8_TABLES[dtype];
  for (let i = 0; i < src.length; i++) out[outOffset + i] = t[src[i]!]!;
}
