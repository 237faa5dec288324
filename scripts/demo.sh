#!/usr/bin/env bash
# The demo (`npm run demo`): brings the local stack up, creates a demo PostgreSQL source (10,000
# deals) and Qobra users, starts the Salesforce and HubSpot simulators with their demo data, runs
# the pipeline (which serves the integration-settings page on http://127.0.0.1:7070), syncs all
# three sources in full and waits until every record is in Qobra's database, then prints where
# to look. The pipeline and the simulators keep running for you to explore;
# `npm run demo:stop` (= `bash scripts/demo.sh stop`) stops them. QOBRA_DEMO_KEEP_RUNNING=0 stops
# them at the end instead. Only processes this script started (by their pid files) are stopped.
# QOBRA_DEMO_PREFIX, QOBRA_DEMO_SCHEMA and QOBRA_DEMO_HTTP_PORT change the topic prefix (default
# qobra), the sink schema (qobra_data) and the page's port (7070), e.g. beside another pipeline.
# The page asks for a token: the demo config has no http.tokens, so the pipeline generates one at
# start into .stack/http-token-<port>; `npx qobra-sync -c <config> web-token` prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
# The commands below print human lines only; their JSON logs go to .stack/logs/cli.log (the
# pipeline's, a service's, to .stack/logs/demo-pipeline.log).
export KAFKAJS_NO_PARTITIONER_WARNING=1
export NODE_OPTIONS="${NODE_OPTIONS:-} --disable-warning=TimeoutNegativeWarning"
cli() { node bin/qobra-sync.js "$@"; }
state=.stack/demo
mkdir -p "$state" .stack/logs
# The Salesforce connector keeps its (rotated) OAuth tokens in an encrypted store, which opens only
# with a proper key (QOBRA_SYNC_TOKEN_KEY: 32 random bytes). The demo keeps its own in
# .stack/demo/token-key (mode 0600), outside the token folder .stack/demo/tokens; a new key starts
# an empty token folder (tokens saved with another key cannot be read).
if [ -z "${QOBRA_SYNC_TOKEN_KEY:-}" ]; then
  if [ ! -s "$state/token-key" ]; then
    rm -rf "$state/tokens"
    (umask 077 && node -e 'process.stdout.write(require("node:crypto").randomBytes(32).toString("base64"))' > "$state/token-key")
  fi
  chmod 600 "$state/token-key"
  QOBRA_SYNC_TOKEN_KEY="$(cat "$state/token-key")"
fi
export QOBRA_SYNC_TOKEN_DIR="$PWD/$state/tokens" QOBRA_SYNC_TOKEN_KEY
PREFIX="${QOBRA_DEMO_PREFIX:-qobra}" SCHEMA="${QOBRA_DEMO_SCHEMA:-qobra_data}" HTTP_PORT="${QOBRA_DEMO_HTTP_PORT:-7070}"
SF_PORT=18081 HS_PORT=18082 WEB="http://127.0.0.1:$HTTP_PORT"
config=demo/qobra-sync.yaml
if [ "$PREFIX/$SCHEMA/$HTTP_PORT" != "qobra/qobra_data/7070" ]; then
  config="$state/qobra-sync.yaml"
  sed -e "s/^topicPrefix: qobra\$/topicPrefix: $PREFIX/" -e "s/^  schema: qobra_data\$/  schema: $SCHEMA/" \
      -e "s/^http: { port: 7070,/http: { port: $HTTP_PORT,/" demo/qobra-sync.yaml > "$config"
fi

stop_demo() {
  local name pid
  for name in pipeline salesforce hubspot; do
    [ -f "$state/$name.pid" ] || continue
    pid=$(cat "$state/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      echo "stopped the demo's $name (pid $pid)"
    fi
    rm -f "$state/$name.pid"
  done
}

if [ "${1:-}" = "stop" ]; then stop_demo; exit 0; fi
stop_demo # what a previous demo left running

started=0
trap 'rc=$?; if [ $rc -ne 0 ] && [ $started = 1 ]; then echo "demo failed (exit $rc); logs in .stack/logs/demo-*.log and .stack/logs/cli.log" >&2; stop_demo; fi' EXIT

cli stack up

# Another pipeline on the same topic prefix would serve the demo's requests with its own config.
others=$(cli -c "$config" lag --json --no-age | node --input-type=module -e "
let t = ''; for await (const c of process.stdin) t += c;
const g = JSON.parse(t).groups.filter((x) => x.members > 0);
console.log(g.map((x) => x.group + ': ' + x.clients.join(', ')).join('; '));")
if [ -n "$others" ]; then
  echo "another qobra-sync pipeline is running on topic prefix $PREFIX ($others); stop it, or run the demo beside it with QOBRA_DEMO_PREFIX=qobrademo QOBRA_DEMO_SCHEMA=qobra_demo QOBRA_DEMO_HTTP_PORT=7071 npm run demo" >&2
  exit 1
fi

node demo/seed.ts "${QOBRA_DEMO_ROWS:-10000}"

started=1
node bin/qobra-sync.js simulate salesforce --port "$SF_PORT" > .stack/logs/demo-salesforce.log 2>&1 &
echo $! > "$state/salesforce.pid"
node bin/qobra-sync.js simulate hubspot --port "$HS_PORT" > .stack/logs/demo-hubspot.log 2>&1 &
echo $! > "$state/hubspot.pid"
node --input-type=module -e "
for (const port of [$SF_PORT, $HS_PORT]) {
  const deadline = Date.now() + 60000;
  for (;;) {
    try { const r = await fetch('http://127.0.0.1:' + port + '/__simulator/counters'); if (r.ok) break; } catch {}
    if (Date.now() > deadline) { console.error('simulator on port ' + port + ' did not start; see .stack/logs/demo-*.log'); process.exit(1); }
    await new Promise((r) => setTimeout(r, 250));
  }
}
console.log('simulators: Salesforce on http://127.0.0.1:$SF_PORT, HubSpot on http://127.0.0.1:$HS_PORT (demo data)');"

for c in crm salesforce hubspot; do cli -c "$config" check "$c"; done

node bin/qobra-sync.js -c "$config" run > .stack/logs/demo-pipeline.log 2>&1 &
echo $! > "$state/pipeline.pid"
# `sync --wait` refuses to wait when no producer runs: let the roles join their groups first.
deadline=$((SECONDS + 120))
until [ "$(cli -c "$config" lag --json --no-age 2>/dev/null | node --input-type=module -e "
let t = ''; for await (const c of process.stdin) t += c;
const g = JSON.parse(t).groups;
console.log(['producer', 'mapper', 'sink'].every((r) => g.some((x) => x.role === r && x.members > 0)));" 2>/dev/null)" = true ]; do
  if ! kill -0 "$(cat "$state/pipeline.pid")" 2>/dev/null; then
    echo "the demo's pipeline stopped at start; see .stack/logs/demo-pipeline.log" >&2
    exit 1
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "the demo's pipeline did not join its consumer groups within 120 s; see .stack/logs/demo-pipeline.log" >&2
    exit 1
  fi
  sleep 1
done
echo "pipeline: running (its JSON logs: .stack/logs/demo-pipeline.log)"
for c in crm salesforce hubspot; do
  echo "— full sync of $c"
  cli -c "$config" sync "$c" --full --wait
done

node --input-type=module -e "
import pg from 'pg';
const c = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/qobra' });
await c.connect();
const tables = ['crm__deals', 'salesforce__opportunities', 'salesforce__accounts', 'hubspot__deals', 'hubspot__companies'];
for (const t of tables) {
  const r = await c.query('SELECT count(*) FILTER (WHERE _deleted_at IS NULL)::int AS n FROM $SCHEMA.\"' + t + '\"');
  console.log('sink: $SCHEMA.' + t.padEnd(26) + String(r.rows[0].n).padStart(6) + ' rows');
}
const s = await c.query('SELECT sum(amount)::text AS total FROM $SCHEMA.\"crm__deals\"');
console.log('      crm__deals amounts sum to ' + s.rows[0].total + ' (exact decimals)');
await c.end();"

cat <<EOF

Where to look:
  Integration settings (connectors, schedules, last runs, lag, Refresh / Full resync):  $WEB/
             log in with the token the pipeline generated (loopback only, new at each start):
             npx qobra-sync -c $config web-token     (it is in .stack/http-token-$HTTP_PORT, mode 0600)
  Prometheus metrics: $WEB/metrics     health: $WEB/healthz
  The data:  psql postgres://postgres@127.0.0.1:5432/qobra -c 'SELECT _external_id, _name, amount, amount_currency, closed_on, owner_email, owner_email_user_id, tags FROM $SCHEMA."crm__deals" ORDER BY _external_id LIMIT 5'
             psql postgres://postgres@127.0.0.1:5432/qobra -c 'SELECT _name, "Amount", "Amount_currency", "StageName", "OwnerId" FROM $SCHEMA."salesforce__opportunities"'
  Lag:       npx qobra-sync -c $config lag
  Logs:      .stack/logs/demo-pipeline.log, .stack/logs/demo-salesforce.log, .stack/logs/demo-hubspot.log,
             .stack/logs/cli.log (the commands'; \`--verbose\` shows them on standard error instead)
EOF
trap - EXIT
if [ "${QOBRA_DEMO_KEEP_RUNNING:-1}" = "0" ]; then
  stop_demo
  echo "The stack stays up (\`npx qobra-sync stack down\` stops it)."
else
  echo "The pipeline (pid $(cat "$state/pipeline.pid")) and the simulators keep running; stop them with: npm run demo:stop"
fi
