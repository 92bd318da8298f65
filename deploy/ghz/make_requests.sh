#!/usr/bin/env bash
# Writes the request files the ghz configs of this directory read, with attn-client attend
# --save_request (nothing is sent; binary length-delimited, as ghz reads it): small.bin and
# small.json (1,12,128,128,64, probabilities returned; the JSON has the tensors in "values")
# and large.bin (4,16,1024,1024,64, no maps).
# Usage: deploy/ghz/make_requests.sh [OUT_DIR]   (default build/ghz, where the configs look)
# ATTN_BUILD_DIR names the build directory holding attn-client (default build/).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/build/ghz}"
client="${ATTN_BUILD_DIR:-$root/build}/attn-client"
mkdir -p "$out"
"$client" attend --shape=1,12,128,128,64 --maps=probabilities --seed=1 \
  --save_request="$out/small.bin" --save_request_json="$out/small.json"
"$client" attend --shape=4,16,1024,1024,64 --maps=none --seed=2 --save_request="$out/large.bin"
