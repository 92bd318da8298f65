#!/usr/bin/env bash
# Installs what is missing, builds, starts build/attnserve on 127.0.0.1:50051 and shows it
# working with `attn-client demo`, then keeps serving until Ctrl-C.
# With --foreground: builds and serves in the foreground, no demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh

address=127.0.0.1:50051
http=127.0.0.1:9090  # /metrics, /healthz, /readyz and the JSON gateway
# Idle OpenMP threads sleep rather than spin between requests (docs/server.md: workers and threads).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
if [[ "${1:-}" == "--foreground" ]]; then
  exec build/attnserve --address="$address" --metrics_address="$http"
fi

build/attnserve --address="$address" --metrics_address="$http" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server' EXIT
for _ in $(seq 1 100); do
  build/attn-client health --address="$address" --timeout_s=1 > /dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "attnserve exited"; exit 1; }
  sleep 0.1
done
build/attn-client demo --address="$address"
echo
echo "attnserve is serving gRPC on $address and HTTP on $http (pid $server); Ctrl-C stops it."
wait $server
