#!/usr/bin/env bash
# The server-overhead ratio: the same closed loop of Attend calls through the real server
# (build/attnserve on a free 127.0.0.1 port, `attn-client bench`), through the transport's
# ceiling (build/transport-ceiling: the same answer's bytes, prepared once, for requests it
# neither parses nor computes) and in process (build/engine-load: the server's RunAttend on an
# Executor built the same way, no gRPC). Prints the three throughputs, server/in-process,
# server/ceiling and ceiling/in-process (the most any server could reach over this transport),
# the mean latency gRPC adds per call, and the CPU time per call of server, ceiling and engine
# (the servers' counted from /proc while the load runs, without the load generator's): engine
# over server is the throughput ratio the server would reach on cores of its own. Fails when a
# call fails.
#   bench/server_overhead.sh [B,H,Sq,Sk,D] [concurrency] [duration]
#   (defaults 1,12,128,128,64, 4, 10s; maps=probabilities, f32; BUILD_DIR defaults to build/)
# Extra attnserve flags (e.g. --workers=2) may be given in ATTNSERVE_FLAGS; the environment
# (e.g. OMP_WAIT_POLICY) reaches all three processes alike.
set -euo pipefail

shape=${1:-1,12,128,128,64}
concurrency=${2:-4}
duration=${3:-10s}
[[ $duration =~ ^[0-9.]+$ ]] && duration="${duration}s"
build=${BUILD_DIR:-$(cd "$(dirname "$0")/.." && pwd)/build}
python=/usr/bin/python3
load_flags=(--shape="$shape" --maps=probabilities --concurrency="$concurrency"
            --duration="$duration" --warmup=1s --json)

source "$(dirname "$0")/local_server.sh"
# shellcheck disable=SC2086  # ATTNSERVE_FLAGS is a list of flags
start_local_server ${ATTNSERVE_FLAGS:-}

echo "shape $shape, maps=probabilities, f32, concurrency $concurrency, $duration (+1s warm-up)," \
  "OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)}"
# CPU seconds (user + system) the server (then the ceiling) spends during the client's run, and
# engine-load's own.
server_cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$server_pid/stat"
}
before=$(server_cpu_s)
"$build/attn-client" bench --address="$address" "${load_flags[@]}" >"$tmp/server.json"
after=$(server_cpu_s)
start_transport_ceiling --shape="$shape" --maps=probabilities
ceiling_before=$(server_cpu_s)
"$build/attn-client" bench --address="$address" "${load_flags[@]}" >"$tmp/ceiling.json"
ceiling_after=$(server_cpu_s)
"$python" -c '
import resource, subprocess, sys
with open(sys.argv[1], "w") as out:
    subprocess.run(sys.argv[2:], stdout=out, check=True)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(usage.ru_utime + usage.ru_stime)' "$tmp/in_process.json" "$build/engine-load" \
  "${load_flags[@]}" >"$tmp/in_process_cpu"

"$python" - "$tmp/server.json" "$tmp/ceiling.json" "$tmp/in_process.json" "$before" "$after" \
  "$ceiling_before" "$ceiling_after" "$(cat "$tmp/in_process_cpu")" <<'PY'
import json, sys
server, ceiling, local = (json.load(open(path)) for path in sys.argv[1:4])
server_cpu = float(sys.argv[5]) - float(sys.argv[4])
ceiling_cpu = float(sys.argv[7]) - float(sys.argv[6])
local_cpu = float(sys.argv[8])
runs = (("server (gRPC)", server), ("ceiling", ceiling), ("in-process", local))
for name, r in runs:
    print(f"{name:14s} {r['requests_per_s']:9.1f} requests/s  mean {r['mean_ms']:.3f} ms  "
          f"p50 {r['p50_ms']:.3f}  p99 {r['p99_ms']:.3f}  errors {r['errors'] or 'none'}")
def ratio(a, b):
    return a["requests_per_s"] / b["requests_per_s"] if b["requests_per_s"] else 0
print(f"ratio server/in-process {ratio(server, local):.3f}")
print(f"ratio server/ceiling    {ratio(server, ceiling):.3f}")
print(f"ratio ceiling/in-process {ratio(ceiling, local):.3f} (the most any server reaches here)")
print(f"added latency per call  {server['mean_ms'] - local['mean_ms']:.3f} ms (mean)")
# CPU per call: the CPU time spans the warm-up too, so it is shared over the calls of both,
# taken at the measured rate. The load generator's own CPU (same cores) is not counted.
def cpu_ms_per_call(cpu_s, r):
    calls = r["requests_per_s"] * (r["warmup_s"] + r["duration_s"])
    return 1000 * cpu_s / calls if calls else 0
server_ms, local_ms = cpu_ms_per_call(server_cpu, server), cpu_ms_per_call(local_cpu, local)
ceiling_ms = cpu_ms_per_call(ceiling_cpu, ceiling)
print(f"CPU per call            server {server_ms:.3f} ms, ceiling {ceiling_ms:.3f} ms, "
      f"in-process {local_ms:.3f} ms; in-process/server "
      f"{local_ms / server_ms if server_ms else 0:.3f}")
failed = [name for name, r in runs if r["errors"] or not r["requests"]]
if failed:
    sys.exit(f"calls failed or none were made: {', '.join(failed)}")
PY
