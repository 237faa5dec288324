#!/usr/bin/env bash
# The test command (`npm test`): the tiers of vitest.config.ts, the unit tier (nothing running
# needed), the integration tier against the real broker, registry and PostgreSQL (its global
# setup, test/global-setup.ts, brings Kafka and the registry up when they do not answer) and the
# security tier (the attack suites, PostgreSQL only). Arguments
# go to vitest (`--project integration`, a file). Ends with a plain `N passed, N failed` line.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
mkdir -p .stack
# kafkajs 2.2.4 schedules a negative timeout on Node >= 24: harmless, known upstream.
export NODE_OPTIONS="${NODE_OPTIONS:-} --disable-warning=TimeoutNegativeWarning"
export KAFKAJS_NO_PARTITIONER_WARNING=1
report=.stack/vitest-report.json
rm -f "$report"
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
rc=$?
node scripts/test-summary.mjs "$report" || rc=1
exit $rc
