#!/usr/bin/env bash
# Fuzzes hostile requests for a bounded time: builds tests/fuzz/attend_request_fuzzer into
# build-fuzz/ (clang++-14, libFuzzer + ASan + UBSan over every file), runs it for SECONDS
# (default 60) over a copy of tests/fuzz/corpus/, and fails on any crash, leak, timeout or
# sanitizer report; the reproducer is then in build-fuzz/findings/. Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
scripts/install_deps.sh --fuzz
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DATTN_FUZZ=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target attend_request_fuzzer
rm -rf build-fuzz/corpus build-fuzz/findings
mkdir -p build-fuzz/findings
cp -r tests/fuzz/corpus build-fuzz/corpus
# One OpenMP thread: the tensors are tiny, and executions stay deterministic.
OMP_NUM_THREADS=1 \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  build-fuzz/attend_request_fuzzer -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=8192 -print_final_stats=1 -artifact_prefix=build-fuzz/findings/ build-fuzz/corpus
