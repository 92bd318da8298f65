#!/usr/bin/env bash
# Installs what is missing (build and test dependencies), builds once into build/, and runs every
# test with ctest: unit tests, in-process service tests, end-to-end tests and deploy tests
# (including the Docker smoke test, which builds the image: several minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh --test --docker
scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 600
