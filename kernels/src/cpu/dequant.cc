// Dequantization of quantized checkpoints' linear weights: see dequant.h.
#include "cpu/dequant.h"

#include <algorithm>

#include "cpu/parallel.h"

namespace weft::cpu {
namespace {

constexpr int kAwqField[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // AutoAWQ packs columns 0,2,4,6,1,3,5,7

// f(o, row) for every output row o of the window, row = out + (o - o0) * cols.
template <typename F>
void for_rows(DequantWindow w, float* out, F&& f) {
  const int64_t cols = w.i1 - w.i0;
  parallel_for(w.o1 - w.o0, 16, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) f(w.o0 + r, out + r * cols);
  });
}

}  // namespace

// The packed layouts put consecutive output columns side by side (AWQ: 8 per word; GPTQ: one per word, input rows
// packed), so a tile is read along the packed rows — a few cache lines per input row — into a small buffer laid
// out as the output [rows][columns], then copied out a row at a time: writing straight to output rows a whole
// row apart would put every store of the tile in the same cache set.
constexpr int64_t kTileOut = 64, kTileIn = 32;

template <typename Fill>
void tiled(DequantWindow w, float* out, Fill&& fill) {
  const int64_t cols = w.i1 - w.i0, o_tiles = (w.o1 - w.o0 + kTileOut - 1) / kTileOut;
  parallel_for(o_tiles, 1, [&](int64_t b, int64_t e) {
    float buf[kTileOut][kTileIn];
    for (int64_t t = b; t < e; ++t) {
      const int64_t oa = w.o0 + t * kTileOut, ob = std::min(w.o1, oa + kTileOut);
      for (int64_t ia = w.i0; ia < w.i1; ia += kTileIn) {
        const int64_t ib = std::min(w.i1, ia + kTileIn);
        fill(oa, ob, ia, ib, buf);  // buf[o - oa][i - ia]
        for (int64_t o = oa; o < ob; ++o) std::copy(buf[o - oa], buf[o - oa] + (ib - ia), out + (o - w.o0) * cols + (ia - w.i0));
      }
    }
  });
}

void dequant_awq(const int32_t* qweight, const int32_t* qzeros, const float* scales, int64_t out_dim, int64_t group_size,
                 DequantWindow w, float* out) {
  const int64_t words = out_dim / 8;
  tiled(w, out, [&](int64_t oa, int64_t ob, int64_t ia, int64_t ib, float (*buf)[kTileIn]) {
    for (int64_t i = ia; i < ib; ++i) {
      const int64_t g = i / group_size;
      const int32_t* qrow = qweight + i * words;
      const int32_t* zrow = qzeros + g * words;
      const float* srow = scales + g * out_dim;
      for (int64_t o = oa; o < ob; ++o) {
        const int shift = 4 * kAwqField[o & 7];
        const int q = static_cast<int>((static_cast<uint32_t>(qrow[o >> 3]) >> shift) & 15u);
        const int z = static_cast<int>((static_cast<uint32_t>(zrow[o >> 3]) >> shift) & 15u);
        buf[o - oa][i - ia] = static_cast<float>(q - z) * srow[o];
      }
    }
  });
}

void dequant_gptq(const int32_t* qweight, const int32_t* qzeros, const float* scales, const int32_t* g_idx, int64_t out_dim,
                  int bits, int64_t group_size, int zero_offset, DequantWindow w, float* out) {
  const int64_t pack = 32 / bits, z_words = (out_dim + pack - 1) / pack;
  const uint32_t mask = (1u << bits) - 1u;
  tiled(w, out, [&](int64_t oa, int64_t ob, int64_t ia, int64_t ib, float (*buf)[kTileIn]) {
    for (int64_t i = ia; i < ib; ++i) {
      const int64_t g = g_idx ? g_idx[i] : i / group_size;
      const int32_t* qrow = qweight + (i / pack) * out_dim;
      const int32_t* zrow = qzeros + g * z_words;
      const float* srow = scales + g * out_dim;
      const int shift = static_cast<int>(bits * (i % pack));
      for (int64_t o = oa; o < ob; ++o) {
        const int q = static_cast<int>((static_cast<uint32_t>(qrow[o]) >> shift) & mask);
        const int z = static_cast<int>((static_cast<uint32_t>(zrow[o / pack]) >> (bits * (o % pack))) & mask) + zero_offset;
        buf[o - oa][i - ia] = static_cast<float>(q - z) * srow[o];
      }
    }
  });
}

void dequant_packed(const int32_t* packed, const float* scales, int64_t groups, int64_t cols_per_group, const int32_t* g_idx,
                    const int32_t* zero_point, int64_t in_dim, int bits, DequantWindow w, float* out) {
  const int64_t pack = 32 / bits, words = (in_dim + pack - 1) / pack;
  const uint32_t mask = (1u << bits) - 1u;
  const int offset = 1 << (bits - 1);
  for_rows(w, out, [&](int64_t o, float* row) {
    const int64_t z_row = (o / pack) * groups;
    const int z_shift = static_cast<int>(bits * (o % pack));
    for (int64_t i = w.i0; i < w.i1; ++i) {
      const int64_t g = g_idx ? g_idx[i] : i / cols_per_group;
      const int q = static_cast<int>((static_cast<uint32_t>(packed[o * words + i / pack]) >> (bits * (i % pack))) & mask) - offset;
      const int z = zero_point ? static_cast<int>((static_cast<uint32_t>(zero_point[z_row + g]) >> z_shift) & mask) - offset : 0;
      row[i - w.i0] = static_cast<float>(q - z) * scales[o * groups + g];
    }
  });
}

void dequant_bnb4(const uint8_t* packed, const float* absmax, const float* code, int64_t in_dim, int64_t blocksize,
                  DequantWindow w, float* out) {
  for_rows(w, out, [&](int64_t o, float* row) {
    // The flat index advances by one per column: its block and its place in the block are kept, not divided for.
    int64_t f = o * in_dim + w.i0, block = f / blocksize, left = blocksize - f % blocksize;
    for (int64_t i = w.i0; i < w.i1; ++i, ++f) {
      const uint8_t byte = packed[f >> 1];
      row[i - w.i0] = code[(f & 1) ? (byte & 15) : (byte >> 4)] * absmax[block];
      if (--left == 0) {
        ++block;
        left = blocksize;
      }
    }
  });
}

// FP4 E2M1 (1 sign, 2 exponent, 1 mantissa bit): the 16 codes' values, the sign in bit 3.
constexpr float kE2M1[16] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

void dequant_fp4(const uint8_t* packed, const float* scales, int64_t groups, int64_t group_size, int64_t in_dim,
                 DequantWindow w, float* out) {
  const int64_t stride = (in_dim + 1) / 2;
  for_rows(w, out, [&](int64_t o, float* row) {
    const uint8_t* prow = packed + o * stride;
    const float* srow = scales + o * groups;
    for (int64_t i = w.i0; i < w.i1;) {  // a group at a time: one scale, no division per column
      const int64_t g = i / group_size, end = std::min(w.i1, (g + 1) * group_size);
      const float s = srow[g];
      for (; i < end; ++i) {
        const uint8_t b = prow[i >> 1];
        row[i - w.i0] = kE2M1[(i & 1) ? (b >> 4) : (b & 15)] * s;
      }
    }
  });
}

void dequant_unpacked(const uint8_t* codes, const float* table, const float* values, int64_t in_dim, const float* scale,
                      DequantGrid sg, const int32_t* zero, DequantGrid zg, float post, DequantWindow w, float* out) {
  for_rows(w, out, [&](int64_t o, float* row) {
    const int64_t src = (o - w.o0) * in_dim;
    const float* srow = scale + (o / sg.rows_per) * sg.cols;
    const int32_t* zrow = zero ? zero + (o / zg.rows_per) * zg.cols : nullptr;
    for (int64_t i = w.i0; i < w.i1;) {  // a run of columns sharing one scale (and zero point) at a time
      const int64_t gs = i / sg.cols_per;
      int64_t end = std::min(w.i1, (gs + 1) * sg.cols_per);
      const float s = srow[gs];
      float z = 0.0f;
      if (zrow) {
        const int64_t gz = i / zg.cols_per;
        end = std::min(end, (gz + 1) * zg.cols_per);
        z = static_cast<float>(zrow[gz]);
      }
      float* dst = row - w.i0;
      if (codes) {
        const uint8_t* c = codes + src;
        for (; i < end; ++i) dst[i] = ((table[c[i]] - z) * s) * post;
      } else {
        const float* v = values + src;
        for (; i < end; ++i) dst[i] = ((v[i] - z) * s) * post;
      }
    }
  });
}

}  // namespace weft::cpu
