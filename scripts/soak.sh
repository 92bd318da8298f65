#!/usr/bin/env bash
# Soak test: a bounded overload of a real attnserve on loopback (tests/e2e/soak_driver.py).
# Usage: scripts/soak.sh [seconds]   (default 120; needs build/attnserve and /usr/bin/python3)
# Exits 0 when every check passes, 1 otherwise; prints requests by code, p50/p99, RSS and fds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-120}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || (( seconds < 5 || seconds > 86400 )); then
  echo "usage: $0 [seconds]   (5..86400, default 120)" >&2
  exit 2
fi
export ATTN_BUILD_DIR="${ATTN_BUILD_DIR:-$root/build}"
export PYTHONDONTWRITEBYTECODE=1
exec timeout --kill-after=30 $((seconds + 120)) \
  /usr/bin/python3 "$root/tests/e2e/soak_driver.py" --seconds "$seconds"
