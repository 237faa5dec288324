# shellcheck shell=bash
# Source this: Node >= 22 on PATH (scripts/node24.sh), and node_modules installed from the lock file
# when missing or older than package-lock.json.
source "$(dirname "${BASH_SOURCE[0]}")/node24.sh"
_qs_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -f "${_qs_root}/node_modules/.package-lock.json" ] || [ "${_qs_root}/package-lock.json" -nt "${_qs_root}/node_modules/.package-lock.json" ]; then
  echo "bootstrap: installing dependencies (npm ci)" >&2
  (cd "${_qs_root}" && npm ci --no-audit --no-fund >&2)
fi
unset _qs_root
