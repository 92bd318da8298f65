#!/usr/bin/env bash
# Runs the Node client's tests (client/node) against build/attnserve: installs the locked
# dependencies with `npm ci`, then `node --test`. ATTN_BUILD_DIR names the build directory.
set -euo pipefail
cd "$(dirname "$0")/../client/node"
npm ci --no-audit --no-fund --loglevel=error
npm test
