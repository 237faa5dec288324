#!/usr/bin/env bash
# Benchmarks (`npm run bench`): each prints its figures and ratios as its last lines and writes
# bench/results/*.json. BENCH_ROWS, BENCH_RUNS and BENCH_E2E=0 tune them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
export KAFKAJS_NO_PARTITIONER_WARNING=1 QOBRA_SYNC_LOG_LEVEL="${QOBRA_SYNC_LOG_LEVEL:-error}"
node --disable-warning=TimeoutNegativeWarning bench/pg-source.ts
