# Tests of the Python (client/python, pytest) and Node (client/node, node --test) clients, each
# against the real build/attnserve on a free loopback port. Included from tests/CMakeLists.txt.
set(CLIENT_PY_DIR ${PROJECT_SOURCE_DIR}/client/python)
add_test(NAME clients.python
         COMMAND /usr/bin/python3 -m pytest -v -rs -p no:cacheprovider tests
         WORKING_DIRECTORY ${CLIENT_PY_DIR})
set(CLIENT_PY_ENV ATTN_BUILD_DIR=${PROJECT_BINARY_DIR} PYTHONDONTWRITEBYTECODE=1
    PYTHONPATH=${CLIENT_PY_DIR}:${PROJECT_BINARY_DIR}/python)
set_tests_properties(clients.python PROPERTIES ENVIRONMENT "${CLIENT_PY_ENV}" TIMEOUT 300)

# npm ci needs the npm registry; the script installs client/node/node_modules (not committed).
add_test(NAME clients.node COMMAND ${PROJECT_SOURCE_DIR}/scripts/node_test.sh)
set_tests_properties(clients.node PROPERTIES
  ENVIRONMENT "ATTN_BUILD_DIR=${PROJECT_BINARY_DIR}"
  TIMEOUT 300)
