#!/usr/bin/env bash
# Builds the CUDA kernel tests (test/gpu/*.cu + kernels/src/cuda/kernels/*.cu + the CPU oracle kernels/src/cpu)
# with nvcc and runs them.
#   GPU machine:        bash test/gpu/run.sh [--no-bench]     (log copied to $OUT/cuda-kernels.log when $OUT is set)
#   anywhere with nvcc: bash test/gpu/run.sh --compile-only   (build only; this machine may have no GPU)
# Exit status: the test binary's (0 all passed, 1 failures, 2 no GPU), or 1 when the build fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
compile_only=0
args=()
for a in "$@"; do
  case "$a" in
    --compile-only) compile_only=1 ;;
    *) args+=("$a") ;;
  esac
done
build=${WEFT_GPU_BUILD:-${TMPDIR:-/tmp}/weft-gpu-test}
mkdir -p "$build"

# Target: the local GPU when there is one (sm_90a on H100/H200), else both shipped targets (A100, H100).
cc=""
if [ $compile_only = 0 ] && command -v nvidia-smi >/dev/null 2>&1; then
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .') || cc=""
fi
if [ -n "$cc" ]; then
  suffix=""
  [ "$cc" = 90 ] && suffix=a
  arch=(-gencode "arch=compute_${cc}${suffix},code=sm_${cc}${suffix}")
else
  arch=(-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90a,code=sm_90a)
fi
flags=(-std=c++17 -O3 -lineinfo -Xcompiler -Wall "${arch[@]}" -I "$root/kernels/src")

cd "$root"
srcs=(kernels/src/cuda/kernels/*.cu test/gpu/*.cu kernels/src/cpu/*.cc)
pids=()
objs=()
for s in "${srcs[@]}"; do  # one nvcc per file, in parallel
  o="$build/$(echo "$s" | tr '/' '_').o"
  objs+=("$o")
  nvcc "${flags[@]}" -c "$s" -o "$o" &
  pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
if [ $failed = 1 ]; then
  echo "run.sh: build failed" >&2
  exit 1
fi
nvcc "${arch[@]}" -o "$build/cuda-kernels" "${objs[@]}"
echo "run.sh: built $build/cuda-kernels"
[ $compile_only = 1 ] && exit 0

if [ -n "${OUT:-}" ]; then
  set +e
  "$build/cuda-kernels" "${args[@]}" 2>&1 | tee "$OUT/cuda-kernels.log"
  exit "${PIPESTATUS[0]}"
fi
exec "$build/cuda-kernels" "${args[@]}"
