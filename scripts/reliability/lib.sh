# Shared by the scripts in scripts/reliability/: builds (release), a webhook process serving
# certificate files and a ServiceAccount file (no API server), and small checks. Sourced, not run.
# shellcheck shell=bash disable=SC2034 # the variables are for the sourcing scripts
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
target="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TARGET_DIR="$target"

# AZWI_CARGO_ARGS: extra cargo arguments (e.g. `--config profile.release.package.azure-wi.codegen-units=2`
# gives this checkout's build its own file names in a target directory shared with other checkouts).
# AZWI_BIN and LOADGEN_BIN: use these binaries instead of building.
build() {
  mkdir -p "$work/bin"
  if [ -n "${AZWI_BIN:-}" ] && [ -n "${LOADGEN_BIN:-}" ]; then
    cp "$AZWI_BIN" "$work/bin/azure-wi"; cp "$LOADGEN_BIN" "$work/bin/azure-wi-loadgen"
  else
    # shellcheck disable=SC2086
    scripts/release/build ${AZWI_CARGO_ARGS:-}
    (cd bench/loadgen && CARGO_TARGET_DIR="$target" cargo build --locked --release --quiet)
    # Copies: the target directory may be shared with other builds that replace these files.
    cp "$target/release/azure-wi" "$target/release/azure-wi-loadgen" "$work/bin/"
  fi
  webhook_bin="$work/bin/azure-wi"
  loadgen="$work/bin/azure-wi-loadgen"
}

work=$(mktemp -d)
webhook_pid=""
background=()
cleanup() {
  for pid in "${background[@]}" $webhook_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

write_service_accounts() {
  cat >"$work/serviceaccounts.json" <<'JSON'
{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ServiceAccount",
  "metadata": {"name": "workload", "namespace": "bench",
    "annotations": {"azure.workload.identity/client-id": "00000000-0000-0000-0000-0000000000c1"}}}]}
JSON
}

# start_webhook CERT_DIR [EXTRA FLAGS...]: sets webhook_pid, addr, health, metrics.
start_webhook() {
  local cert_dir=$1; shift
  write_service_accounts
  AZURE_TENANT_ID=11111111-1111-1111-1111-111111111111 "$webhook_bin" webhook \
    --webhook-host 127.0.0.1 --webhook-port 0 --health-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
    --webhook-cert-dir "$cert_dir" --service-account-file "$work/serviceaccounts.json" \
    --log-level info "$@" 2>"$work/webhook.log" &
  webhook_pid=$!
  addr=""
  for _ in $(seq 1 300); do
    addr=$(grep -o '"webhook":"[^"]*"' "$work/webhook.log" 2>/dev/null | head -n1 | cut -d'"' -f4 || true)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { cat "$work/webhook.log" >&2; fail "the webhook did not start"; }
  health=$(grep -o '"health":"[^"]*"' "$work/webhook.log" | head -n1 | cut -d'"' -f4)
  metrics=$(grep -o '"metrics":"[^"]*"' "$work/webhook.log" | head -n1 | cut -d'"' -f4)
  for _ in $(seq 1 300); do
    curl -fsS "http://$health/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "the webhook never became ready"
}

stop_webhook() { kill -TERM "$webhook_pid"; wait "$webhook_pid" || true; webhook_pid=""; }

vmhwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

fail() { echo "FAIL: $*" >&2; exit 1; }

# json FILE EXPR: a field of the last JSON line of FILE.
json() { tail -n1 "$1" | jq -r "$2"; }

load_average() { cut -d' ' -f1-3 /proc/loadavg; }
