#!/usr/bin/env bash
# Benchmarks (`npm run bench`): each prints its figures and ratios as its last lines and writes
# bench/results/*.json; the ratio lines of all of them are repeated at the end (and kept in
# bench/results/summary.txt). One benchmark at a time (the machine has 2 cores).
#   BENCH_ROWS (1,000,000), BENCH_RUNS (3), BENCH_E2E=0 tune bench/pg-source.ts; the others take
#   BENCH_SINK_ROWS, BENCH_MAPPER_ROWS (200,000), BENCH_SF_RECORDS (50,000), BENCH_HS_RECORDS (20,000),
#   BENCH_DEBEZIUM=0, BENCH_SWEEP=1 (partition sweep of the mapper). BENCH_ONLY="sink mapper" runs a subset
#   (names: pg-source copy-e2e sink mapper api-sources). `npm run bench:tenants` (BENCH_ONLY=tenants) runs
#   bench/tenants.ts alone (BENCH_TENANTS, BENCH_CONNECTORS, BENCH_TENANTS_ROWS, BENCH_TENANTS_BIG_ROWS,
#   BENCH_TENANTS_PARTITIONS): see docs/scaling.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
export KAFKAJS_NO_PARTITIONER_WARNING=1 QOBRA_SYNC_LOG_LEVEL="${QOBRA_SYNC_LOG_LEVEL:-error}"
export BENCH_STARTED_AT="${BENCH_STARTED_AT:-$(date +%s)}"
mkdir -p bench/results
summary=bench/results/summary.txt
: > "$summary"
only=" ${BENCH_ONLY:-pg-source copy-e2e sink mapper api-sources} "
run() {
  local name=$1
  [[ "$only" == *" $name "* ]] || return 0
  echo "==== bench/$name.ts" >&2
  node --disable-warning=TimeoutNegativeWarning "bench/$name.ts" | tee -a "$summary"
}
run pg-source
run copy-e2e
run sink
run mapper
run api-sources
run tenants
echo "==== summary (bench/results/summary.txt)"
cat "$summary"
