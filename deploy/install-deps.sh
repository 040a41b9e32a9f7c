#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and run weft: cmake, g++, nats-server, openssl
# (apt), then the npm packages (npm ci) and the build (native addon + TypeScript).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
command -v openssl >/dev/null 2>&1 || need+=(openssl)  # the TLS tests make a throwaway CA
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing system packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
npm ci --no-audit --no-fund
npm run build
