// Multi-head latent attention's layout of one token's attention inputs, shared by the CPU executor (model/mla.cc)
// and the CUDA kernel (cuda/kernels/mla.cu), host- and device-compilable — so the golden cases that check the CPU
// executor check the GPU's layout too. Element i (0 <= i < heads·(nope + rope)) of the token's q, k and v rows:
//   q head h = [q_rope | q_nope] from q's head h ([nope | rope], as q_b_proj / q_proj lay it out),
//   k head h = [k_rope | k_nope] with the one rotary key shared by every head and kv's head h ([k_nope | v]),
//   v head h = [v | 0…], zero-padded to nope + rope.
// The rotated dims come first so the usual RoPE (the first rotary_dim dims of a head) applies; q·k does not mind the
// order as long as q and k share it.
#pragma once

#ifdef __CUDACC__
#define WEFT_MLA_HD __host__ __device__
#else
#define WEFT_MLA_HD
#endif

namespace weft::mla {

template <class T>
WEFT_MLA_HD inline void assemble_element(int i, int nope, int rope, int v_dim, const T* q, const T* kv, const T* k_rope,
                                         T* q_out, T* k_out, T* v_out) {
  const int hd = nope + rope, h = i / hd, d = i % hd;
  const T* qh = q + h * hd;
  const T* kvh = kv + h * (nope + v_dim);
  q_out[i] = d < rope ? qh[nope + d] : qh[d - rope];
  k_out[i] = d < rope ? k_rope[d] : kvh[d - rope];
  v_out[i] = d < v_dim ? kvh[nope + d] : T(0);
}

}  // namespace weft::mla
