# Sourced by the bench scripts: start_local_server [attnserve flags...] runs $build/attnserve on a
# free 127.0.0.1 port (no HTTP side), start_transport_ceiling [request flags...] runs
# $build/transport-ceiling likewise. Each sets server_pid and address; tmp is a scratch
# directory with their logs (attnserve's in $tmp/server.log). On exit every server started gets
# SIGTERM (SIGKILL after 10 s) and tmp is removed.
tmp=$(mktemp -d)
server_pid=""
started_pids=()
stop_local_servers() {
  for pid in "${started_pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap stop_local_servers EXIT

# start_listening NAME COMMAND...: runs COMMAND (which takes --address and --port_file) with its
# output in $tmp/NAME.log and waits up to 30 s for its port.
start_listening() {
  local name=$1
  shift
  "$@" --address=127.0.0.1:0 --port_file="$tmp/$name.port" >"$tmp/$name.log" 2>&1 &
  server_pid=$!
  started_pids+=("$server_pid")
  for _ in $(seq 300); do
    [[ -s $tmp/$name.port ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  [[ -s $tmp/$name.port ]] || { echo "$name did not start in 30 s" >&2; exit 1; }
  address=127.0.0.1:$(cat "$tmp/$name.port")
}

start_local_server() { start_listening server "$build/attnserve" --metrics_address= "$@"; }
start_transport_ceiling() { start_listening ceiling "$build/transport-ceiling" "$@"; }
