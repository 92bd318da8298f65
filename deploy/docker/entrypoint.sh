#!/usr/bin/env bash
# Container entrypoint: turns every ATTN_<FLAG> environment variable into --<flag>=value
# (ATTN_INTRA_OP_THREADS=2 -> --intra_op_threads=2) and execs attnserve, so SIGTERM reaches
# the server itself. Arguments given to the container are passed after these flags.
# ATTN_MAX_CPU_ISA and ATTN_BF16_MATMUL are not flags: attnserve reads them from its
# environment (the CPU tier cap and the bf16 matmul choice, docs/server.md).
set -euo pipefail
flags=()
for name in $(compgen -e); do
  if [[ "$name" == ATTN_MAX_CPU_ISA || "$name" == ATTN_BF16_MATMUL ]]; then
    continue
  fi
  if [[ "$name" == ATTN_* ]]; then
    flag="${name#ATTN_}"
    flags+=("--${flag,,}=${!name}")
  fi
done
exec attnserve "${flags[@]}" "$@"
