#!/usr/bin/env bash
# Scale-out test, loopback only: 3 build/attnserve replicas, a bounded load (tests/deploy/grpc_load.py)
# through Debian's nginx running deploy/nginx/nginx.conf ("nginx" mode) or through gRPC
# client-side round_robin ("round_robin" mode), one replica SIGKILLed halfway. Checks: no call
# failed, every replica served calls before the kill, the survivors served calls after it, and
# the replicas' logs account for every call. "sessions" mode: 30 KV-cache sessions opened
# through nginx (routed by attn-session-id), 100 decode steps each checked against a reference
# (tests/deploy/session_load.py), one replica SIGKILLed halfway: its sessions answer NOT_FOUND
# or UNAVAILABLE and are re-created and prefilled again on the survivors; checks zero wrong
# answers, zero failures, and that only sessions of the killed replica were lost.
# Usage: scripts/scale-test.sh [nginx] [round_robin] [sessions]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${ATTN_BUILD_DIR:-$PWD/build}"
python=/usr/bin/python3
requests=4000
sessions=30        # sessions mode: sessions, and decode steps each after a prefill
session_steps=100
replicas=3
victim=1  # the replica that is killed (0-based)
modes=("$@")
(( ${#modes[@]} )) || modes=(nginx round_robin sessions)

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2> /dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2> /dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL [$mode]: $*"; exit 1; }
free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
attend_count() { grep -c "method=$calls " "$1" || true; }

# Starts replica $1 of this mode; sets ports[$1], replica_pids[$1], logs[$1].
start_replica() {
  local dir="$work/$mode"
  logs[$1]="$dir/replica$1.log"
  # One oneDNN thread each: 3 replicas share this machine's cores (idle OpenMP threads spin).
  "$build/attnserve" --address=127.0.0.1:0 --port_file="$dir/port$1" --intra_op_threads=1 \
    --metrics_address=127.0.0.1:0 > "${logs[$1]}" 2>&1 &
  replica_pids[$1]=$!
  pids+=($!)
  for _ in $(seq 1 300); do
    [[ -s "$dir/port$1" ]] && break
    kill -0 "${replica_pids[$1]}" 2> /dev/null || fail "replica $1 exited: $(cat "${logs[$1]}")"
    sleep 0.1
  done
  [[ -s "$dir/port$1" ]] || fail "replica $1 did not start"
  ports[$1]=$(cat "$dir/port$1")
}

# Runs deploy/nginx/nginx.conf with its listen port and its upstream server put on loopback.
start_nginx() {
  local dir="$work/$mode/nginx" addresses="" i user=""
  mkdir -p "$dir/temp"
  for i in "${!ports[@]}"; do addresses+="127.0.0.1:${ports[$i]} "; done
  lb_port=$(free_port)
  awk -v listen="127.0.0.1:$lb_port" -v addresses="$addresses" '
    /^[[:space:]]*listen 8080 / { sub(/8080/, listen); listens++ }
    /^[[:space:]]*server attnserve:50051[ ;]/ {
      n = split(addresses, address, " ")
      for (i = 1; i <= n; i++) { line = $0; sub(/attnserve:50051/, address[i], line); print line }
      upstreams++; next
    }
    { print }
    END { if (listens != 1 || upstreams != 1) exit 1 }' deploy/nginx/nginx.conf > "$dir/nginx.conf" ||
    fail "deploy/nginx/nginx.conf no longer has one 'listen 8080' and one 'server attnserve:50051'"
  if (( EUID == 0 )); then user="user $(id -un) $(id -gn);"; fi  # workers stay the current user
  nginx -p "$dir/" -c "$dir/nginx.conf" -e stderr -g "daemon off; pid $dir/nginx.pid; $user" \
    > "$dir/access.log" 2> "$dir/error.log" &
  nginx_pid=$!
  pids+=($!)
  for _ in $(seq 1 100); do
    "$build/attn-client" health --address="127.0.0.1:$lb_port" --timeout_s=1 > /dev/null 2>&1 && return
    kill -0 "$nginx_pid" 2> /dev/null || fail "nginx exited: $(cat "$dir/error.log")"
    sleep 0.1
  done
  fail "no health answer through nginx: $(cat "$dir/error.log")"
}

# The sessions mode's load: sets load_pid.
start_session_load() {
  ATTN_BUILD_DIR="$build" "$python" tests/deploy/session_load.py --target="$1" \
    --sessions="$sessions" --steps="$session_steps" > "$work/$mode/load.json" 2> "$work/$mode/load.err" &
  load_pid=$!
  pids+=($!)
}

# The sessions mode's checks, after the load: the counts, and every session lost was the victim's.
check_sessions() {
  [[ -s "$work/$mode/load.json" ]] || fail "the session load printed nothing: $(tail -20 "$work/$mode/load.err")"
  "$python" - "$work/$mode/load.json" "${logs[$victim]}" << 'EOF2' || fail "see above"
import json, sys
summary = json.loads(open(sys.argv[1]).readlines()[-1])
victim_log = open(sys.argv[2]).read()
lost = [i for i in summary.get("lost_ids", []) if i]
elsewhere = [i for i in lost if f"session={i} " not in victim_log]
print(f"[sessions] {summary['sessions']} sessions x {summary['steps_per_session']} steps: "
      f"{summary.get('steps_checked', 0)} answers checked (worst error "
      f"{summary.get('worst_error', 0):.1e}), {summary['wrong_answers']} wrong, "
      f"{summary['failures']} failed; lost with the killed replica: {len(set(lost))} sessions "
      f"({summary.get('not_found', 0)} NOT_FOUND, {summary.get('unavailable', 0)} UNAVAILABLE), "
      f"re-created and prefilled again: {summary.get('re_prefills', 0)}; "
      f"lost sessions that were not the killed replica's: {len(elsewhere)}")
for example in summary["failure_examples"]:
    print("  failure:", example)
ok = (summary["wrong_answers"] == 0 and summary["failures"] == 0 and not elsewhere
      and summary.get("steps_checked", 0) >= summary["sessions"] * summary["steps_per_session"])
sys.exit(0 if ok else 1)
EOF2
}

run_mode() {
  local i load_pid target before=() after=() total=0 logged=0 expected=$requests
  ports=(); replica_pids=(); logs=()
  calls=Attend
  mkdir -p "$work/$mode"
  for (( i = 0; i < replicas; i++ )); do start_replica "$i"; done
  if [[ "$mode" == sessions ]]; then
    start_nginx
    calls=SessionAttend expected=$(( sessions * (session_steps + 1) ))
  elif [[ "$mode" == nginx ]]; then
    start_nginx
    target="127.0.0.1:$lb_port"; load_flags=()
  else
    target="ipv4:$(for i in "${!ports[@]}"; do printf '127.0.0.1:%s,' "${ports[$i]}"; done)"
    target="${target%,}"; load_flags=(--round-robin)
  fi

  local started=$SECONDS
  if [[ "$mode" == sessions ]]; then
    start_session_load "127.0.0.1:$lb_port"
  else
    ATTN_BUILD_DIR="$build" "$python" tests/deploy/grpc_load.py --target="$target" \
      --requests="$requests" "${load_flags[@]}" > "$work/$mode/load.json" 2> "$work/$mode/load.err" &
    load_pid=$!
    pids+=($!)
  fi
  # Halfway (by the replicas' own logs), note who served what and SIGKILL the victim.
  for _ in $(seq 1 1200); do
    total=0
    for i in "${!logs[@]}"; do before[$i]=$(attend_count "${logs[$i]}"); total=$(( total + before[i] )); done
    (( total * 2 >= expected )) && break
    kill -0 "$load_pid" 2> /dev/null || break
    sleep 0.05
  done
  kill -0 "$load_pid" 2> /dev/null ||
    fail "the load ended before the kill: $(cat "$work/$mode/load.json"; tail -5 "$work/$mode/load.err")"
  kill -KILL "${replica_pids[$victim]}"
  wait "${replica_pids[$victim]}" 2> /dev/null || true
  for _ in $(seq 1 1200); do kill -0 "$load_pid" 2> /dev/null || break; sleep 0.1; done
  kill -0 "$load_pid" 2> /dev/null && fail "the load did not finish within 120 s"
  wait "$load_pid" || true
  local seconds=$((SECONDS - started))

  echo "[$mode] $expected $calls calls, replica $victim SIGKILLed after ${total} were logged, ${seconds}s"
  for i in "${!logs[@]}"; do
    after[$i]=$(( $(attend_count "${logs[$i]}") - before[i] ))
    logged=$(( logged + before[i] + after[i] ))
    printf '[%s] replica %d (127.0.0.1:%s)%s: %5d before the kill, %5d after\n' "$mode" "$i" \
      "${ports[$i]}" "$([[ $i == "$victim" ]] && echo ' killed' || echo '       ')" "${before[$i]}" "${after[$i]}"
  done
  if [[ "$mode" == sessions ]]; then
    check_sessions
    for i in "${!logs[@]}"; do
      (( before[i] > 0 )) || fail "replica $i held no session before the kill"
    done
    echo "[$mode] PASS: 0 wrong answers, 0 failures, only the killed replica's sessions lost"
    for pid in "${replica_pids[@]}" "$nginx_pid"; do kill -TERM "$pid" 2> /dev/null || true; done
    nginx_pid=""
    return
  fi
  echo "[$mode] load generator: $(cat "$work/$mode/load.json")"
  if [[ "$mode" == nginx ]]; then
    # The access log (deploy/nginx/nginx.conf's "grpc" format, on nginx's stdout): status is field 5.
    echo "[$mode] nginx: Attend answers by HTTP status (a 502 is retried by the client):" \
      "$(awk '$3 ~ /\/Attend$/ { print $5 }' "$work/$mode/nginx/access.log" | sort | uniq -c | xargs);" \
      "calls nginx passed on to another replica: $(grep -c '/Attend .*upstream=[^ ]*, ' "$work/$mode/nginx/access.log" || true)"
  fi
  "$python" -c 'import json, sys; r = json.loads(sys.stdin.readlines()[-1])
sys.exit(0 if r["errors"] == 0 and r["ok"] == r["requests"] else 1)' < "$work/$mode/load.json" ||
    fail "the caller saw failed calls (error_kinds above) $([[ -s "$work/$mode/load.json" ]] ||
          tail -20 "$work/$mode/load.err")"
  for i in "${!logs[@]}"; do
    (( before[i] > 0 )) || fail "replica $i served nothing before the kill"
    if [[ $i != "$victim" ]] && (( after[i] == 0 )); then fail "survivor $i served nothing after the kill"; fi
  done
  (( logged >= requests )) || fail "the replicas logged $logged calls, fewer than $requests"
  echo "[$mode] PASS: 0 failed calls, every replica served before the kill, survivors after"

  for pid in "${replica_pids[@]}" ${nginx_pid:+"$nginx_pid"}; do kill -TERM "$pid" 2> /dev/null || true; done
  nginx_pid=""
}

for mode in "${modes[@]}"; do
  [[ "$mode" == nginx || "$mode" == round_robin || "$mode" == sessions ]] ||
    { echo "usage: $0 [nginx] [round_robin] [sessions]"; exit 2; }
  run_mode
done
