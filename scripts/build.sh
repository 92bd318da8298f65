#!/usr/bin/env bash
# Configures and builds attnserve (Release by default; BUILD_TYPE=Debug to change) into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}"
cmake --build build -j"$(nproc)"
