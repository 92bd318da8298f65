#!/usr/bin/env bash
# Installs what is missing (build and test dependencies), builds once into build/, and runs every
# test with ctest: unit tests, in-process service tests, end-to-end tests and deploy tests
# (including the Docker smoke test, which builds the image: several minutes); then the unit and
# service tests again under ASan+UBSan and TSan (scripts/sanitize.sh, own build dirs) and 60 s of
# fuzzing hostile requests (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh --test --docker --fuzz
scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 600
scripts/sanitize.sh
scripts/fuzz.sh 60
