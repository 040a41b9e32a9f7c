// Dequantization of quantized checkpoints' linear weights (shard/models/quantized/: AWQ, GPTQ, compressed-tensors
// pack-quantized and NVFP4/MXFP4, bitsandbytes 4-bit, and the unpacked FP8/int8 weights) into float32 [rows, cols] for a window of the weight [out, in], on the CPU
// pool's threads (one output row per item: results do not depend on the thread count). The layouts are described
// in shard/models/quantized/dequantize.ts; the shapes were checked by the caller against the checkpoint.
#pragma once
#include <cstdint>

namespace weft::cpu {

struct DequantWindow { int64_t o0, o1, i0, i1; };

// AWQ gemm 4-bit: qweight [in, out/8], qzeros [groups, out/8], scales [groups, out].
void dequant_awq(const int32_t* qweight, const int32_t* qzeros, const float* scales, int64_t out_dim, int64_t group_size,
                 DequantWindow w, float* out);

// GPTQ: qweight [in/pack, out], qzeros [groups, ceil(out/pack)], scales [groups, out]; g_idx [in] or null.
void dequant_gptq(const int32_t* qweight, const int32_t* qzeros, const float* scales, const int32_t* g_idx, int64_t out_dim,
                  int bits, int64_t group_size, int zero_offset, DequantWindow w, float* out);

// compressed-tensors pack-quantized: packed [out, ceil(in/pack)], scales [out, groups], zero_point
// [ceil(out/pack), groups] or null, g_idx [in] or null (else column / cols_per_group).
void dequant_packed(const int32_t* packed, const float* scales, int64_t groups, int64_t cols_per_group, const int32_t* g_idx,
                    const int32_t* zero_point, int64_t in_dim, int bits, DequantWindow w, float* out);

// bitsandbytes 4-bit: two codes per byte over the flattened weight (high nibble first), code[q] × absmax[flat / blocksize].
void dequant_bnb4(const uint8_t* packed, const float* absmax, const float* code, int64_t in_dim, int64_t blocksize,
                  DequantWindow w, float* out);

// compressed-tensors NVFP4/MXFP4: FP4 E2M1 codes two per byte along each row [out, ceil(in/2)] (column 2k in the
// low nibble, 2k + 1 in the high one), times scales [out, groups] (column i in group i / group_size).
void dequant_fp4(const uint8_t* packed, const float* scales, int64_t groups, int64_t group_size, int64_t in_dim,
                 DequantWindow w, float* out);

// A grid of scales or zero points over a weight [out, in]: (o, i) reads data[(o / rows_per) * cols + i / cols_per].
struct DequantGrid { int64_t rows_per, cols, cols_per; };

// Unpacked weights (FP8 E4M3/E5M2 or int8: one byte each, decoded through table[256]; or float32 values when codes
// is null), only the window's rows [o1 - o0, in]: ((value - zero) * scale) * post, with zero null for none.
void dequant_unpacked(const uint8_t* codes, const float* table, const float* values, int64_t in_dim, const float* scale,
                      DequantGrid scale_grid, const int32_t* zero, DequantGrid zero_grid, float post, DequantWindow w,
                      float* out);

}  // namespace weft::cpu
