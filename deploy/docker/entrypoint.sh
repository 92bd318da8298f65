#!/usr/bin/env bash
# Container entrypoint: turns every ATTN_<FLAG> environment variable into --<flag>=value
# (ATTN_INTRA_OP_THREADS=2 -> --intra_op_threads=2) and execs attnserve, so SIGTERM reaches
# the server itself. Arguments given to the container are passed after these flags.
set -euo pipefail
flags=()
for name in $(compgen -e); do
  if [[ "$name" == ATTN_* ]]; then
    flag="${name#ATTN_}"
    flags+=("--${flag,,}=${!name}")
  fi
done
exec attnserve "${flags[@]}" "$@"
