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
# The Microsoft Entra stand-in of azure-wi-test-support (one warming exchange: a debug build does).
cargo build --locked --quiet -p azure-wi-test-support --features cli --bin azwi-stand-in
work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
tenant=72f988bf-86f1-41af-91ab-2d7cd011db47
echo "eyJhbGciOiJSUzI1NiJ9.service-account-token.sig" >"$work/token"
entra_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"${CARGO_TARGET_DIR:-target}/debug/azwi-stand-in" entra --tenant "$tenant" --assertion-file "$work/token" \
  --addr "127.0.0.1:$entra_port" 2>"$work/entra.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$entra_port/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$entra_port/readyz" >/dev/null || { cat "$work/entra.log"; echo "the Entra stand-in did not start" >&2; exit 1; }
env -i PATH="$PATH" AZURE_TENANT_ID="$tenant" AZURE_CLIENT_ID=11111111-2222-3333-4444-555555555555 \
  AZURE_FEDERATED_TOKEN_FILE="$work/token" AZURE_AUTHORITY_HOST="http://127.0.0.1:$entra_port" \
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
echo "Entra stand-in counts: $(curl -s "http://127.0.0.1:$entra_port/counts")"
