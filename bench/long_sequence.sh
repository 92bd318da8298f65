#!/usr/bin/env bash
# A long sequence through the real server: one causal Attend call without maps (f32, default
# shape 1,8,16384,16384,64) to attnserve on a free 127.0.0.1 port, then the server's peak resident
# memory (VmHWM) and the call's wall time. Without maps the engine holds O(S * 128) scores per
# worker, never S^2 (a 16384^2 map would be 8 GiB), so the peak stays under 1 GiB.
#   bench/long_sequence.sh [B,H,Sq,Sk,D] [max peak MiB]   (BUILD_DIR defaults to build/)
# With a max peak (ctest bench.long_sequence passes 1024) a larger peak fails the run.
set -euo pipefail

shape=${1:-1,8,16384,16384,64}
max_peak_mib=${2:-}
build=${BUILD_DIR:-$(cd "$(dirname "$0")/.." && pwd)/build}

source "$(dirname "$0")/local_server.sh"
# Q, K and V of the default shape are 32 MiB each: the request is 96 MiB.
start_local_server --max_message_bytes=$((256 << 20))

peak_mib() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$server_pid/status"; }
echo "attnserve peak RSS after start-up: $(peak_mib) MiB"
start=$(date +%s.%N)
"$build/attn-client" attend --address="$address" --shape="$shape" \
  --causal=upper_left --maps=none --timeout_s=600 >"$tmp/client.log" || {
  cat "$tmp/client.log" "$tmp/server.log" >&2; exit 1; }
end=$(date +%s.%N)
awk -v shape="$shape" -v start="$start" -v end="$end" 'BEGIN {
  split(shape, d, ",")  # B,H,Sq,Sk,D
  mib = 4 * d[1] * d[2] * (2 * d[3] + 2 * d[4]) * d[5] / 2^20
  printf "shape %s, causal upper_left, no maps, f32: %.2f s per call (client wall time), " \
         "%.0f MiB of Q, K, V and output\n", shape, end - start, mib }'
echo "attnserve peak RSS after the call: $(peak_mib) MiB"
if [[ -n $max_peak_mib ]] && (( $(peak_mib) > max_peak_mib )); then
  echo "FAIL: peak RSS $(peak_mib) MiB is over $max_peak_mib MiB" >&2
  exit 1
fi
