# End-to-end tests: Python (Debian's /usr/bin/python3 with python3-grpcio) starts the real
# build/attnserve on a free loopback port and calls it from attn-client and from Python.
set(SYSTEM_PYTHON /usr/bin/python3)
set(E2E_DIR ${CMAKE_CURRENT_SOURCE_DIR}/e2e)
set(REFLECTION_PROTO ${E2E_DIR}/proto/grpc_reflection/v1alpha/reflection.proto)
set(REFLECTION_PY ${PROJECT_BINARY_DIR}/python/grpc_reflection/v1alpha/reflection_pb2.py
                  ${PROJECT_BINARY_DIR}/python/grpc_reflection/v1alpha/reflection_pb2_grpc.py)
add_custom_command(
  OUTPUT ${REFLECTION_PY}
  COMMAND protobuf::protoc --proto_path=${E2E_DIR}/proto
    --python_out=${PROJECT_BINARY_DIR}/python --grpc_python_out=${PROJECT_BINARY_DIR}/python
    --plugin=protoc-gen-grpc_python=${GRPC_PYTHON_PLUGIN}
    ${REFLECTION_PROTO}
  DEPENDS ${REFLECTION_PROTO}
  COMMENT "Generating Python reflection stubs for the end-to-end tests")
add_custom_target(e2e_python_stubs ALL DEPENDS ${REFLECTION_PY} python_stubs)

foreach(suite test_cli test_python_client test_server_process test_multi_head test_http_gateway
              test_readme
              test_heatmap test_ghz_configs test_observability_configs test_tls_auth
              test_hostile_input test_drain test_sessions test_inference_protocol)
  add_test(NAME e2e.${suite}
           COMMAND ${SYSTEM_PYTHON} -m unittest -v ${suite}
           WORKING_DIRECTORY ${E2E_DIR})
  set_tests_properties(e2e.${suite} PROPERTIES
    ENVIRONMENT "ATTN_BUILD_DIR=${PROJECT_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1"
    TIMEOUT 300)
endforeach()

# A short soak (scripts/soak.sh, default 120 s): overload with valid, invalid, cancelled and
# deadline-expired calls; checks codes, p99, RSS and fds. `ctest -L soak` runs only this.
add_test(NAME e2e.soak COMMAND ${PROJECT_SOURCE_DIR}/scripts/soak.sh 30)
set_tests_properties(e2e.soak PROPERTIES
  ENVIRONMENT "ATTN_BUILD_DIR=${PROJECT_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1"
  LABELS soak TIMEOUT 180 RUN_SERIAL TRUE)

# The session soak (scripts/session_soak.sh): a minute of sessions opened, stepped, forked,
# truncated, evicted and closed; every page back in the pool at the end.
add_test(NAME e2e.session_soak COMMAND ${PROJECT_SOURCE_DIR}/scripts/session_soak.sh 60)
set_tests_properties(e2e.session_soak PROPERTIES
  ENVIRONMENT "ATTN_BUILD_DIR=${PROJECT_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1"
  LABELS soak TIMEOUT 300 RUN_SERIAL TRUE)

# engine-load, the in-process peer of `attn-client bench` (which test_cli covers).
add_test(NAME bench.engine_load COMMAND ${SYSTEM_PYTHON} -m unittest -v test_engine_load
         WORKING_DIRECTORY ${E2E_DIR})
set_tests_properties(bench.engine_load PROPERTIES
  ENVIRONMENT "ATTN_BUILD_DIR=${PROJECT_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1"
  LABELS bench TIMEOUT 300)
