#!/usr/bin/env bash
# Prints, one a line, the Debian packages that own the shared libraries the given binaries load,
# so the Dockerfile's runtime stage installs exactly those and no compiler or header.
set -euo pipefail
owner() {
  # Debian's merged /usr: dpkg may know a library under /lib while ldd and realpath say /usr/lib.
  local path
  for path in "$1" "$(realpath "$1")" "$(realpath "$1" | sed 's|^/usr/|/|')"; do
    if dpkg-query -S "$path" 2>/dev/null; then return 0; fi
  done
  echo "no Debian package owns $1" >&2
  return 1
}
libraries=$(ldd "$@")
if grep -q 'not found' <<< "$libraries"; then
  echo "unresolved libraries: $libraries" >&2
  exit 1
fi
awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<< "$libraries" | sort -u | while read -r library; do
  owner "$library" || exit 1
done | cut -d: -f1 | sort -u
