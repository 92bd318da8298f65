#!/usr/bin/env bash
# Runs the unit and in-process service tests under sanitizers (not the e2e, client or deploy
# tests): ASan+UBSan (build-asan/, g++, -fno-sanitize-recover=all) over every unit and service
# test (uncapped, and at the avx2 CPU tier), and TSan (build-tsan/) over the concurrent parts (executor, weight registry, call gate,
# memory budget, service tests). Builds only the test binaries it runs; fails on any report.
# Usage: scripts/sanitize.sh [address|thread] (default: both).
set -euo pipefail
cd "$(dirname "$0")/.."
modes=("$@")
(( ${#modes[@]} )) || modes=(address thread)
scripts/install_deps.sh --test

asan_targets=(dtype_test attention_shapes_test reference_attention_test executor_test
  online_softmax_test primitive_cache_test attention_engine_test operand_copies_test
  multi_head_weights_test
  multi_head_attention_test weight_registry_test safetensors_test tensor_codec_test
  attention_service_test
  multi_head_service_test attend_stream_test admission_test call_gate_test memory_budget_test
  request_fields_test attend_wire_test stream_store_test kv_layer_cache_test session_store_test
  session_step_test session_service_test inference_service_test)
# Each test with its instantiation's prefix (ThreadsAndKeyTile/...), uncapped and at the avx2
# tier (the AVX2 kernels; the other tiers' code is the same C++ as these).
asan_tests='^(avx2\.)?([A-Za-z]+/)?(DType|AttentionShapes|OnlineSoftmax|ReferenceAttention|Executor|ExecutorOptions|StreamStore|ResizeUninitialized|PrimitiveCache|AttentionEngine[A-Za-z]*|OperandCopies|MultiHeadWeights|MultiHeadAttention|WeightRegistry|Safetensors|WeightsFile|TensorCodec|AttentionService|AttentionServerShutdown|MultiHeadService|AttendStream|Admission|CallGate|MemoryBudget|SaturatingArithmetic|AttendWire|KvLayerCache|KvPagePool|SessionStore|Turns|SessionStep|SessionService|InferenceService)Test\.'
tsan_targets=(executor_test weight_registry_test call_gate_test memory_budget_test
  attention_service_test multi_head_service_test attend_stream_test admission_test
  session_store_test session_step_test session_service_test inference_service_test)
tsan_tests='^(Executor|WeightRegistry|CallGate|MemoryBudget|AttentionService|AttentionServerShutdown|MultiHeadService|AttendStream|Admission|SessionStore|Turns|SessionStep|SessionService|InferenceService)Test\.'

# build_and_test DIR SANITIZER TEST_REGEX TARGETS...
build_and_test() {
  local dir=$1 sanitizer=$2 tests=$3
  shift 3
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATTN_SANITIZE="$sanitizer" >/dev/null
  # One target per invocation: make given several targets at once may build their shared
  # libraries twice in parallel and corrupt the archives.
  local target
  for target in "$@"; do cmake --build "$dir" -j"$(nproc)" --target "$target"; done
  ctest --test-dir "$dir" --output-on-failure -j"$(nproc)" --timeout 900 -R "$tests"
}

for mode in "${modes[@]}"; do
  case "$mode" in
    address)
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
      UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        build_and_test build-asan address "$asan_tests" "${asan_targets[@]}"
      ;;
    thread)
      # One OpenMP thread: libgomp is not instrumented (TRAPS.md). tsan.supp: gRPC-only suppressions.
      OMP_NUM_THREADS=1 \
      TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$PWD/tests/sanitize/tsan.supp" \
        build_and_test build-tsan thread "$tsan_tests" "${tsan_targets[@]}"
      ;;
    *) echo "usage: $0 [address|thread]..." >&2; exit 2 ;;
  esac
done
