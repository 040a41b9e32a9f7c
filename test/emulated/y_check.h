// How the LoRA emulator tests (lora_expand_vec_emu.cc, lora_bgmv_fused_emu.cc) judge a kernel's y: the entries
// an adapter updates against a double-precision reference, in the GPU tests' metric and tolerance; every other
// entry must keep its value bit for bit. Prints one line per case.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "../gpu/tolerance.h"
#include "warp_emu.h"

namespace weft::emu {

inline bool check_y(const std::string& name, DType d, const std::vector<uint16_t>& y, const std::vector<uint16_t>& y0,
                    const std::vector<double>& ref, const std::vector<char>& touched) {
  std::vector<float> got, want;
  int changed = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (touched[i]) {
      got.push_back(from_bits(d, y[i]));
      want.push_back(static_cast<float>(ref[i]));
    } else {
      changed += y[i] != y0[i];
    }
  }
  const double worst = weft::testing::scaled_err(got, want), tol = weft::testing::tol_for(d);
  const bool ok = worst <= tol && changed == 0 && !got.empty();
  std::printf("%s %s (err %.3g, tol %.3g, %zu entries updated, %d outside the adapters' rows/slices changed)\n",
              ok ? "ok  " : "FAIL", name.c_str(), worst, tol, got.size(), changed);
  std::fflush(stdout);
  return ok;
}

}  // namespace weft::emu
