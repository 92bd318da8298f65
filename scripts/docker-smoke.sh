#!/usr/bin/env bash
# Docker smoke test without a Docker engine or a registry: podman (runc, storage in a temp dir)
# builds the Dockerfile on a debian:bookworm-slim made locally with debootstrap from this
# machine's apt mirror, runs the image on a free loopback port, waits for its HEALTHCHECK, calls
# Attend with the host's attn-client --verify, reads /metrics, stops it (SIGTERM) and checks the
# clean drain.
# It also builds deploy/nginx's image and checks its nginx config with nginx -t.
# Everything it made is removed on exit. Needs root and a built tree (ATTN_BUILD_DIR, default build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh --docker
client="${ATTN_BUILD_DIR:-$PWD/build}/attn-client"
[[ -x "$client" ]] || { echo "FAIL: $client is missing (build the project first)"; exit 1; }

work=$(mktemp -d /var/tmp/attn-docker-smoke.XXXXXX)
name="attnserve-smoke-$$"
image="localhost/attnserve:smoke-$$"
nginx_image="localhost/attnserve-nginx:smoke-$$"
cleanup() {
  if [[ "${CONTAINERS_STORAGE_CONF:-}" == "$work/storage.conf" ]]; then  # never the host's storage
    podman rm -f -t 0 "$name" > /dev/null 2>&1 || true
    podman system reset --force > /dev/null 2>&1 || true
  fi
  findmnt -rn -o TARGET | grep "^$work" | sort -r | xargs -r umount -l || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work"/{storage,run,tmp}
cat > "$work/containers.conf" <<CONF
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/events.log"
tmp_dir = "$work/tmp"
CONF
cat > "$work/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$work/storage"
runroot = "$work/run"
CONF
export CONTAINERS_CONF="$work/containers.conf" CONTAINERS_STORAGE_CONF="$work/storage.conf"
export TMPDIR="$work/tmp"
start=$SECONDS
phase() { echo "== $1 (t=$((SECONDS - start))s)"; }

# The base image, from the mirror (and suites) apt on this machine already uses.
targets=$(apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT)' 'Identifier: Packages' |
          awk '$2 ~ /^bookworm(-updates|-security)?$/' | sort -u)
mirror=$(awk '$2 == "bookworm" { print $1; exit }' <<< "$targets")
[[ -n "$mirror" ]] || { echo "FAIL: apt on this machine has no bookworm source"; exit 1; }
phase "debootstrap bookworm (minbase)"
debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log"; echo "FAIL: debootstrap"; exit 1; }
awk '{ print "deb " $1 " " $2 " " $3 }' <<< "$targets" > "$work/rootfs/etc/apt/sources.list"
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/* \
       "$work"/rootfs/var/log/* "$work"/rootfs/tmp/*
phase "import as docker.io/library/debian:bookworm-slim"
tar --numeric-owner -C "$work/rootfs" -c . |
  podman import - docker.io/library/debian:bookworm-slim > /dev/null
rm -rf "$work/rootfs"

nofile=$(ulimit -Hn); [[ "$nofile" == unlimited ]] && nofile=1048576
run=(podman run --network=host --ulimit "nofile=$nofile:$nofile" --ulimit nproc=32768:32768)

phase "build the image (compiles the project)"
podman build --pull=never --format docker --network=host -t "$image" -f Dockerfile . \
  > "$work/build.log" 2>&1 || { tail -40 "$work/build.log"; echo "FAIL: podman build"; exit 1; }
podman image ls "$image"
[[ "$(podman image inspect -f '{{.Config.Healthcheck.Test}}' "$image")" == *attn-client\ health* ]] ||
  { echo "FAIL: the image has no attn-client HEALTHCHECK"; exit 1; }
[[ "$(podman image inspect -f '{{.Config.User}}' "$image")" == 10001:10001 ]] ||
  { echo "FAIL: the image does not run as 10001:10001"; exit 1; }
toolchain=$("${run[@]}" --rm --entrypoint find "$image" /usr/bin /usr/include -maxdepth 1 \
            \( -name cc -o -name 'c++' -o -name 'g++*' -o -name cmake -o -name grpcpp -o -name google \))
[[ -z "$toolchain" ]] || { echo "FAIL: the runtime image carries a toolchain: $toolchain"; exit 1; }

phase "build deploy/nginx (the load balancer of deploy/compose.yaml) and check its config"
podman build --pull=never --format docker --network=host -t "$nginx_image" deploy/nginx \
  > "$work/nginx-build.log" 2>&1 || { tail -20 "$work/nginx-build.log"; echo "FAIL: nginx image"; exit 1; }
"${run[@]}" --rm --add-host attnserve:127.0.0.1 "$nginx_image" \
  nginx -t -p /var/lib/nginx/ -c /etc/nginx/nginx.conf -e stderr || { echo "FAIL: nginx -t"; exit 1; }
[[ "$("${run[@]}" --rm "$nginx_image" curl --version)" == *HTTP2* ]] ||
  { echo "FAIL: the nginx image's curl cannot run its HTTP/2 health check"; exit 1; }

# No systemd here: podman logs that it cannot add healthcheck timers; `podman healthcheck run` polls.
phase "run on a free loopback port"
free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port); metrics_port=$(free_port)
"${run[@]}" -d --name "$name" -e ATTN_ADDRESS="127.0.0.1:$port" \
  -e ATTN_METRICS_ADDRESS="127.0.0.1:$metrics_port" "$image" > /dev/null
healthy=0
for _ in $(seq 1 60); do
  if podman healthcheck run "$name" > /dev/null 2>&1; then healthy=1; break; fi
  [[ "$(podman inspect -f '{{.State.Running}}' "$name")" == true ]] || break
  sleep 1
done
(( healthy )) || { podman logs "$name"; echo "FAIL: the container never became healthy"; exit 1; }
phase "healthy; Attend from the host"
[[ "$(podman exec "$name" id -u)" == 10001 ]] || { echo "FAIL: the server runs as root"; exit 1; }
"$client" attend --address="127.0.0.1:$port" --shape 1,4,32,32,16 --verify --timeout_s=30
/usr/bin/python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
  "http://127.0.0.1:$metrics_port/metrics" > "$work/metrics.txt"
grep -q '^attnserve_requests_total' "$work/metrics.txt" || { echo "FAIL: no request count on /metrics"; exit 1; }

phase "podman stop (SIGTERM)"
podman stop -t 30 "$name" > /dev/null
exit_code=$(podman inspect -f '{{.State.ExitCode}}' "$name")
podman logs "$name" > "$work/server.log" 2>&1
cat "$work/server.log"
[[ "$exit_code" == 0 ]] || { echo "FAIL: exit code $exit_code after podman stop"; exit 1; }
grep -q 'draining.*signal=SIGTERM' "$work/server.log" || { echo "FAIL: no drain on SIGTERM"; exit 1; }
grep -q 'stopped' "$work/server.log" || { echo "FAIL: no 'stopped' line"; exit 1; }
phase "PASS"
