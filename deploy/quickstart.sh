#!/usr/bin/env bash
# Fresh machine → running server: installs dependencies, builds, and starts `weft launch` with any flags
# you pass (no --model-id = the built-in demo model). Example: bash deploy/quickstart.sh --port 8080
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
exec npm run --silent weft -- launch "$@"
