# Deploy tests (label deploy): the Kubernetes, KServe, Compose and nginx files against the
# Dockerfile, the contract and the real server; the scale-out test through nginx, through
# client-side round_robin and with KV-cache sessions through nginx (label scale); the Docker smoke test, which builds and
# runs the image with podman (label docker: several minutes, root, the machine's Debian mirror;
# `ctest -LE docker` skips it).
# Included after e2e/e2e_tests.cmake, whose SYSTEM_PYTHON it uses.
set(DEPLOY_TEST_DIR ${CMAKE_CURRENT_SOURCE_DIR}/deploy)

add_test(NAME deploy.k8s_manifests
         COMMAND ${SYSTEM_PYTHON} -m unittest -v test_k8s_manifests
         WORKING_DIRECTORY ${DEPLOY_TEST_DIR})
set_tests_properties(deploy.k8s_manifests PROPERTIES LABELS deploy TIMEOUT 120)

add_test(NAME deploy.kserve_manifests
         COMMAND ${SYSTEM_PYTHON} -m unittest -v test_kserve_manifests
         WORKING_DIRECTORY ${DEPLOY_TEST_DIR})
set_tests_properties(deploy.kserve_manifests PROPERTIES LABELS deploy TIMEOUT 120)

foreach(mode nginx round_robin sessions)
  add_test(NAME deploy.scale_${mode} COMMAND ${PROJECT_SOURCE_DIR}/scripts/scale-test.sh ${mode})
  set_tests_properties(deploy.scale_${mode} PROPERTIES LABELS "deploy;scale" TIMEOUT 240)
endforeach()

add_test(NAME deploy.docker_smoke COMMAND ${PROJECT_SOURCE_DIR}/scripts/docker-smoke.sh)
# Alone: the image build compiles the project on every core.
set_tests_properties(deploy.docker_smoke PROPERTIES LABELS "deploy;docker" TIMEOUT 1800 RUN_SERIAL TRUE)

set_tests_properties(deploy.k8s_manifests deploy.kserve_manifests deploy.scale_nginx
  deploy.scale_round_robin deploy.scale_sessions deploy.docker_smoke PROPERTIES ENVIRONMENT "ATTN_BUILD_DIR=${PROJECT_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1")
