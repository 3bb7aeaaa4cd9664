#!/usr/bin/env bash
# Load test of cached-token requests: `azure-wi proxy` (release build) on loopback, its token
# cache warm, hammered by wrk for a bounded time. Not part of scripts/test (speed is measured,
# never asserted). Needs wrk (apt-get install wrk).
# usage: scripts/bench/proxy-load.sh [DURATION_SECONDS] [CONNECTIONS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration="${1:-10}" connections="${2:-64}" threads="${3:-2}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
scripts/release/build
work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
tenant=72f988bf-86f1-41af-91ab-2d7cd011db47
echo "eyJhbGciOiJSUzI1NiJ9.service-account-token.sig" >"$work/token"
python3 scripts/interop/entra_standin.py "$work/entra.port" "$tenant" "$work/token" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/entra.port" ] && break; sleep 0.1; done
[ -s "$work/entra.port" ] || { echo "the Entra stand-in did not start" >&2; exit 1; }
env -i PATH="$PATH" AZURE_TENANT_ID="$tenant" AZURE_CLIENT_ID=11111111-2222-3333-4444-555555555555 \
  AZURE_FEDERATED_TOKEN_FILE="$work/token" AZURE_AUTHORITY_HOST="http://127.0.0.1:$(cat "$work/entra.port")" \
  AZWI_PROXY_IMDS_ENDPOINT="http://127.0.0.1:9" \
  "${CARGO_TARGET_DIR:-target}/release/azure-wi" proxy --proxy-port 0 --log-level info 2>"$work/proxy.log" &
pids+=($!)
port=""
for _ in $(seq 100); do
  port="$(python3 -c 'import json,sys
for line in open(sys.argv[1]):
    f = json.loads(line)
    if f.get("message") == "token proxy listening" and f["addr"].startswith("127.0.0.1:"):
        print(f["addr"].split(":")[1]); break' "$work/proxy.log" 2>/dev/null || true)"
  [ -n "$port" ] && break; sleep 0.1
done
[ -n "$port" ] || { cat "$work/proxy.log"; echo "the proxy did not start" >&2; exit 1; }
url="http://127.0.0.1:$port/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
curl -sSf -H "Metadata: true" "$url" >/dev/null # warm the cache: the one exchange with Entra
echo "$(nproc) cores; wrk -t$threads -c$connections -d${duration}s, cached IMDS token requests"
wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -H "Metadata: true" "$url"
echo "exchanges with Entra: $(curl -s "http://127.0.0.1:$(cat "$work/entra.port")/exchanges")"
