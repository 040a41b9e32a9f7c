#!/usr/bin/env bash
# Packs what a bare GPU machine without Node needs to run test/gpu/suite.sh from a copy of this checkout:
# .gpu/ (git-ignored) gets node (xz), node_modules without build-only packages (tar.xz, ~4 MB), the
# nats-server .deb and setup.sh. Run `npm run build` first: the built addon (kernels/build/Release, with the
# CUDA code compiled in where nvcc exists) and dist/ travel as they are — same x86-64, glibc ≥ this machine's.
# On the GPU machine, from the checkout root:  source .gpu/setup.sh && bash test/gpu/suite.sh tests
# (With this workplace's device tool: carry .gpu, dist and kernels/build/Release; ~45 MB together.)
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu
[ -f .gpu/node.xz ] || xz -T2 -c "$(command -v node)" > .gpu/node.xz
tar -cf - --exclude='node_modules/@typescript' --exclude='node_modules/typescript' --exclude='node_modules/@types' \
  --exclude='*.map' --exclude='*.d.ts' --exclude='*.md' node_modules | xz -T2 -6 > .gpu/nm.tar.xz
ls .gpu/nats-server_*.deb >/dev/null 2>&1 || (cd .gpu && apt-get download nats-server)
cat > .gpu/setup.sh <<'SETUP'
# Sourced from the checkout root on the GPU machine: node, node_modules and nats-server from .gpu/.
mkdir -p /tmp/nodebin && xz -dc .gpu/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node
[ -d node_modules ] || tar -xJf .gpu/nm.tar.xz
dpkg -x .gpu/nats-server_*.deb /tmp/nats
export PATH=/tmp/nodebin:/tmp/nats/usr/sbin:$PATH
SETUP
du -sh .gpu dist kernels/build/Release
