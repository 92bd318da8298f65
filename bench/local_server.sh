# Sourced by the bench scripts: start_local_server [attnserve flags...] runs $build/attnserve on a
# free 127.0.0.1 port (no HTTP side) and sets server_pid, address and tmp (a scratch directory
# with the server's log); on exit the server gets SIGTERM (SIGKILL after 10 s) and tmp is removed.
tmp=$(mktemp -d)
server_pid=""
stop_local_server() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap stop_local_server EXIT

start_local_server() {
  "$build/attnserve" --address=127.0.0.1:0 --port_file="$tmp/port" --metrics_address= "$@" \
    >"$tmp/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 300); do
    [[ -s $tmp/port ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
    sleep 0.1
  done
  [[ -s $tmp/port ]] || { echo "attnserve did not start in 30 s" >&2; exit 1; }
  address=127.0.0.1:$(cat "$tmp/port")
}
