#!/usr/bin/env bash
# Session soak: KV-cache sessions opened, stepped, forked, truncated, evicted and closed on a real
# attnserve on loopback (tests/e2e/session_soak_driver.py); ends with every page back in the pool.
# Usage: scripts/session_soak.sh [seconds]   (default 60; needs build/attnserve, /usr/bin/python3)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || (( seconds < 5 || seconds > 86400 )); then
  echo "usage: $0 [seconds]   (5..86400, default 60)" >&2
  exit 2
fi
export ATTN_BUILD_DIR="${ATTN_BUILD_DIR:-$root/build}"
export PYTHONDONTWRITEBYTECODE=1
exec timeout --kill-after=30 $((seconds + 180)) \
  /usr/bin/python3 "$root/tests/e2e/session_soak_driver.py" --seconds "$seconds"
