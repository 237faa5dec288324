#!/usr/bin/env bash
# The heavy reliability suite (`npm run chaos`, docs/reliability.md): SIGKILL of every role, Kafka
# broker and PostgreSQL restarts, a registry outage, one broker of a three-broker cluster SIGKILLed
# mid-run, fuzzed hostile source values, token refresh under 50 concurrent calls, secrets in logs.
# Ends with "N lost / N duplicated / N stale; faults injected: N".
# It restarts the local broker and PostgreSQL: run it when nothing else uses them.
#   CHAOS_ONLY="pipeline cluster fuzz tokens", CHAOS_PHASES="roles,broker,postgres,registry", CHAOS_ROWS (300,000),
#   CHAOS_CLUSTER_KAFKA_PORT (the three-broker cluster's first port, and the five after it: Kafka port + 100),
#   CHAOS_FUZZ_ROWS (3,000), CHAOS_SEED (replay). Logs and reports: .stack/logs/chaos/.
#   CHAOS_PG_CLUSTER ("15 main"): the PostgreSQL cluster the postgres phase stops (with QOBRA_SYNC_PG_URL and
#   QOBRA_SYNC_KAFKA_PORT / QOBRA_SYNC_REGISTRY_PORT the suite runs beside other work).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
export KAFKAJS_NO_PARTITIONER_WARNING=1 QOBRA_SYNC_LOG_LEVEL="${QOBRA_SYNC_LOG_LEVEL:-error}"
npx tsc -p chaos/tsconfig.json
node --disable-warning=TimeoutNegativeWarning chaos/main.ts
