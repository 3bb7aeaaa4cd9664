#!/usr/bin/env bash
# Load test of `azure-wi webhook` on loopback with bench/loadgen.
#
#   bench/webhook.sh                 release builds, concurrency 32 and 128, 20 s each
#   bench/webhook.sh --smoke         debug builds, concurrency 4, 3 s (a check that it all still works)
#   CONCURRENCY="8 64" DURATION=30 LEVELS="info warning" bench/webhook.sh
#
# The webhook runs with a generated certificate from files (--disable-cert-rotation) and
# ServiceAccounts from a file (--service-account-file): no API server is involved, so the figures
# are those of TLS + HTTP + decoding + the cache lookup + mutation + encoding, which is the path every
# admission takes once the ServiceAccount cache is warm.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

profile=release; concurrency="${CONCURRENCY:-32 128}"; duration="${DURATION:-20}"; warmup=2
if [ "${1:-}" = "--smoke" ]; then profile=debug; concurrency=4; duration=3; warmup=1; fi
flag=(); [ "$profile" = release ] && flag=(--release)

cargo build --locked "${flag[@]}" --bin azure-wi
(cd bench/loadgen && cargo build --locked "${flag[@]}")
webhook="$root/target/$profile/azure-wi"
loadgen="$root/bench/loadgen/target/$profile/azure-wi-loadgen"

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$loadgen" write-cert --dir "$work/certs" >/dev/null
cat >"$work/serviceaccounts.json" <<'JSON'
{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ServiceAccount",
  "metadata": {"name": "workload", "namespace": "bench",
    "annotations": {"azure.workload.identity/client-id": "00000000-0000-0000-0000-0000000000c1",
                    "azure.workload.identity/service-account-token-expiration": "7200"}}}]}
JSON

start_webhook() {
  AZURE_TENANT_ID=11111111-1111-1111-1111-111111111111 "$webhook" webhook \
    --webhook-host 127.0.0.1 --webhook-port 0 --health-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
    --webhook-cert-dir "$work/certs" --service-account-file "$work/serviceaccounts.json" \
    --log-level "$1" 2>"$work/webhook.log" &
  pid=$!
  addr=""
  for _ in $(seq 1 300); do
    addr=$(grep -o '"webhook":"[^"]*"' "$work/webhook.log" 2>/dev/null | head -n1 | cut -d'"' -f4 || true)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { cat "$work/webhook.log" >&2; echo "the webhook did not start" >&2; exit 1; }
  health=$(grep -o '"health":"[^"]*"' "$work/webhook.log" | head -n1 | cut -d'"' -f4)
  for _ in $(seq 1 300); do
    curl -fsS "http://$health/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the webhook never became ready" >&2; exit 1
}

stop_webhook() { kill -TERM "$pid"; wait "$pid"; pid=""; }

# Per-admission JSON logs at info level, as in production (the chart's default logLevel).
for level in ${LEVELS:-info}; do
  for c in $concurrency; do
    start_webhook "$level"
    echo "== log level $level, concurrency $c, ${duration} s (webhook pid $pid on $addr)"
    "$loadgen" run --addr "$addr" --ca "$work/certs/ca.crt" --concurrency "$c" --duration "$duration" \
      --warmup "$warmup" --pid "$pid" --expect-allowed
    stop_webhook
  done
done
