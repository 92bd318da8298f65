#!/usr/bin/env bash
# Installs, with apt-get, the Debian packages attnserve needs that are not installed yet (a no-op
# when everything is present). `--test` adds what the tests need; `--docker` adds what
# scripts/docker-smoke.sh needs to build and run the image without a Docker engine; `--fuzz`
# adds clang 14 and its libFuzzer/sanitizer runtimes for scripts/fuzz.sh.
set -euo pipefail

packages=(cmake g++ make pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libpng-dev
  libdnnl-dev ocl-icd-opencl-dev libabsl-dev libspdlog-dev nlohmann-json3-dev libcpp-httplib-dev)
for option in "$@"; do
  case "$option" in
    --test)
      packages+=(libgtest-dev libgmock-dev python3 python3-grpcio python3-protobuf
                 python3-numpy python3-torch python3-pytest python3-yaml openssl nginx
                 python3-matplotlib python3-prometheus-client libbenchmark-dev libopenblas0-pthread)
      # The Node client's tests need node and npm: Debian's only when none is installed (a
      # NodeSource nodejs already ships npm and conflicts with Debian's npm package).
      if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        packages+=(nodejs npm)
      fi
      ;;
    --docker) packages+=(podman runc debootstrap) ;;
    --fuzz) packages+=(clang-14 libclang-rt-14-dev) ;;
    *) echo "usage: $0 [--test] [--docker] [--fuzz]" >&2; exit 2 ;;
  esac
done

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if (( ${#missing[@]} == 0 )); then
  exit 0
fi

sudo=()
if (( EUID != 0 )); then sudo=(sudo); fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q "${missing[@]}"
