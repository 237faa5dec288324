#!/usr/bin/env bash
# The demo (`npm run demo`): brings the local stack up, creates a demo PostgreSQL source
# (10,000 deals), runs the pipeline, syncs it in full and waits until every row is in Qobra's
# database, then prints where to look. QOBRA_DEMO_KEEP_RUNNING=1 leaves the pipeline running.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
export KAFKAJS_NO_PARTITIONER_WARNING=1 QOBRA_SYNC_LOG_LEVEL="${QOBRA_SYNC_LOG_LEVEL:-warn}"
cli() { node bin/qobra-sync.js "$@"; }
config=demo/qobra-sync.yaml

cli stack up
node demo/seed.ts "${QOBRA_DEMO_ROWS:-10000}"
cli -c "$config" check crm

mkdir -p .stack/logs
cli -c "$config" run > .stack/logs/demo-pipeline.log 2>&1 &
pipeline=$!
trap 'kill $pipeline 2>/dev/null || true' EXIT
cli -c "$config" sync crm --full --wait
psql_cmd="psql postgres://postgres@127.0.0.1:5432/qobra -c 'SELECT _external_id, _name, amount, amount_currency, closed_on, owner_email, tags FROM qobra_data.\"crm__deals\" ORDER BY _external_id LIMIT 5'"
node --input-type=module -e "
import pg from 'pg';
const c = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/qobra' });
await c.connect();
const r = await c.query('SELECT count(*)::int AS n, sum(amount)::text AS total FROM qobra_data.\"crm__deals\"');
console.log(\`sink: qobra_data.crm__deals holds \${r.rows[0].n} rows, amounts summing to \${r.rows[0].total}\`);
await c.end();"
echo "Look at the data:   $psql_cmd"
echo "Pipeline log:       .stack/logs/demo-pipeline.log; stack logs in .stack/logs/"
if [ "${QOBRA_DEMO_KEEP_RUNNING:-0}" = "1" ]; then
  trap - EXIT
  echo "The pipeline keeps running (pid $pipeline); stop it with: kill $pipeline"
else
  echo "Stopping the demo pipeline (the stack stays up; \`npx qobra-sync stack down\` stops it)."
fi
