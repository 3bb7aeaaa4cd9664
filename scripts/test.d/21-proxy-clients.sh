#!/usr/bin/env bash
# Interoperability of the token proxy with real clients from their registries: Python
# azure-identity and Node @azure/identity obtain tokens through `azure-wi proxy` in IMDS mode
# (AZURE_POD_IDENTITY_AUTHORITY_HOST) and identity-endpoint mode (IDENTITY_ENDPOINT /
# IDENTITY_HEADER), and so does the Rust azure_identity crate in identity-endpoint mode (its IMDS
# source cannot be pointed anywhere but 169.254.169.254); the proxy gets the tokens with its
# workload identity from a local Entra stand-in.
set -euo pipefail
cd "$(dirname "$0")/../.."
AZWI_CACHE="${AZWI_CACHE:-$HOME/.cache/azure-wi}"
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
PY_IDENTITY_VERSION=1.27.0   # azure-identity, latest 1.x: the venv and version of 20-python-clients.sh
NODE_IDENTITY_VERSION=4.14.1 # @azure/identity

# --- clients (idempotent installs) ---
venv="$AZWI_CACHE/python-clients"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import azure.identity, sys; sys.exit(azure.identity.__version__ != '$PY_IDENTITY_VERSION')" 2>/dev/null; then
  "$venv/bin/pip" install --quiet "azure-identity==$PY_IDENTITY_VERSION"
fi
node_dir="$AZWI_CACHE/node"
mkdir -p "$node_dir"
[ -f "$node_dir/package.json" ] || echo '{"name":"azwi-interop","private":true}' >"$node_dir/package.json"
if [ "$(node -p "require('$node_dir/node_modules/@azure/identity/package.json').version" 2>/dev/null)" != "$NODE_IDENTITY_VERSION" ]; then
  (cd "$node_dir" && npm install --no-audit --no-fund --silent "@azure/identity@$NODE_IDENTITY_VERSION")
fi
export AZWI_NODE_MODULES="$node_dir/node_modules"
# The Rust SDK client: its own workspace and target directory, never in azure-wi's dependencies.
rust_target="$AZWI_CACHE/target-rust-interop"
CARGO_TARGET_DIR="$rust_target" cargo build --locked --quiet --manifest-path tests/interop/rust-azure-identity/Cargo.toml

# --- the proxy and the Microsoft Entra stand-in (azure-wi-test-support's, as `azwi-stand-in entra`) ---
cargo build --locked --quiet --bin azure-wi
cargo build --locked --quiet -p azure-wi-test-support --features cli --bin azwi-stand-in
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/azure-wi"
stand_in="${CARGO_TARGET_DIR:-$PWD/target}/debug/azwi-stand-in"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

tenant=72f988bf-86f1-41af-91ab-2d7cd011db47
client=11111111-2222-3333-4444-555555555555
other_client=99999999-8888-7777-6666-555555555555
header="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "eyJhbGciOiJSUzI1NiJ9.service-account-token.sig" >"$work/token"
entra_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$stand_in" entra --tenant "$tenant" --assertion-file "$work/token" --addr "127.0.0.1:$entra_port" 2>"$work/entra.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$entra_port/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$entra_port/readyz" >/dev/null || { cat "$work/entra.log"; echo "the Entra stand-in did not start" >&2; exit 1; }

# The sidecar's environment, as the webhook injects it (the postStart probe runs with it too).
proxy_env=(PATH="$PATH" AZURE_TENANT_ID="$tenant" AZURE_CLIENT_ID="$client"
  AZURE_FEDERATED_TOKEN_FILE="$work/token" AZURE_AUTHORITY_HOST="http://127.0.0.1:$entra_port"
  IDENTITY_HEADER="$header" AZWI_PROXY_IMDS_ENDPOINT="http://127.0.0.1:9")
env -i "${proxy_env[@]}" "$bin" proxy --proxy-port 0 --identity-endpoint --log-level debug 2>"$work/proxy.log" &
proxy_pid=$!
pids+=($proxy_pid)
for _ in $(seq 100); do grep -q '"token proxy listening"' "$work/proxy.log" 2>/dev/null && break; sleep 0.1; done
port="$(python3 -c 'import json,sys
for line in open(sys.argv[1]):
    f = json.loads(line)
    if f.get("message") == "token proxy listening" and f["addr"].startswith("127.0.0.1:"):
        print(f["addr"].split(":")[1]); break' "$work/proxy.log")"
[ -n "$port" ] || { cat "$work/proxy.log"; echo "the proxy did not start" >&2; exit 1; }
echo "proxy on 127.0.0.1:$port, Entra stand-in on 127.0.0.1:$entra_port"

# The postStart probe, invoked as `proxy` the way the injected sidecar runs it.
ln -s "$bin" "$work/proxy"
env -i "${proxy_env[@]}" "$work/proxy" --proxy-port="$port" --probe --log-level=warning
# The probe checks the configuration too: without a tenant it must not report ready.
if env -i PATH="$PATH" "$work/proxy" --proxy-port="$port" --probe --log-level=warning 2>/dev/null; then
  echo "FAIL the probe reported ready without AZURE_TENANT_ID"; exit 1
fi

fail=0
run() { # name, env..., -- command...
  local name="$1"; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  if out="$(env -i PATH="$PATH" HOME="$work" AZWI_NODE_MODULES="$AZWI_NODE_MODULES" "${envs[@]}" "$@" 2>&1)"; then
    echo "ok   $name: ${out:0:100}..."
    echo "$out" >>"$work/clients.out"
  else
    echo "FAIL $name: $out"; fail=1
  fi
}
imds=(AZURE_POD_IDENTITY_AUTHORITY_HOST="http://127.0.0.1:$port")
appsvc=(IDENTITY_ENDPOINT="http://127.0.0.1:$port/msi/token" IDENTITY_HEADER="$header")
py=("$venv/bin/python" scripts/interop/python_client.py)
js=(node scripts/interop/node_client.mjs)
rs=("$rust_target/debug/rust-azure-identity-interop")
vault=https://vault.azure.net/.default
storage=https://storage.azure.com/.default

run "python IMDS"                      "${imds[@]}"   -- "${py[@]}" "$vault" "$client"
run "python IMDS client_id"            "${imds[@]}"   -- "${py[@]}" "$storage" "$other_client" "$other_client"
run "python App Service"               "${appsvc[@]}" -- "${py[@]}" "$vault" "$client"
run "python App Service client_id"     "${appsvc[@]}" -- "${py[@]}" "$storage" "$other_client" "$other_client"
run "node IMDS"                        "${imds[@]}"   -- "${js[@]}" "$vault" "$client"
run "node IMDS client_id"              "${imds[@]}"   -- "${js[@]}" "$storage" "$other_client" "$other_client"
run "node App Service"                 "${appsvc[@]}" -- "${js[@]}" "$vault" "$client"
run "node App Service client_id"       "${appsvc[@]}" -- "${js[@]}" "$storage" "$other_client" "$other_client"
run "rust App Service"                 "${appsvc[@]}" -- "${rs[@]}" "$vault" "$client"
run "rust App Service client_id"       "${appsvc[@]}" -- "${rs[@]}" "$storage" "$other_client" "$other_client"

# A wrong identity header is refused, and the client shows why.
wrong=(IDENTITY_ENDPOINT="http://127.0.0.1:$port/msi/token" IDENTITY_HEADER="not-the-pods-header-value")
if out="$(env -i PATH="$PATH" HOME="$work" "${wrong[@]}" "${py[@]}" "$vault" "$client" 2>&1)"; then
  echo "FAIL python App Service with a wrong header got a token"; fail=1
elif grep -q "X-IDENTITY-HEADER" <<<"$out"; then
  echo "ok   python App Service with a wrong header is refused with the proxy's message"
else
  echo "FAIL python App Service with a wrong header: unexpected error: $out"; fail=1
fi

# Two tokens (two client ids x two scopes) were exchanged, whatever the number of clients.
exchanges="$(python3 -c 'import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1]))["exchanges"])' "http://127.0.0.1:$entra_port/counts")"
if [ "$exchanges" = 2 ]; then echo "ok   2 exchanges with Entra for 10 clients"; else echo "FAIL $exchanges exchanges with Entra, expected 2"; fail=1; fi
# No secret in the proxy's log: the identity header, the assertion, any access token the clients
# got (whole, or the signature part every token of the stand-in ends with).
tokens="$(python3 -c 'import json,sys
for line in open(sys.argv[1]):
    try: print(json.loads(line)["token"])
    except (ValueError, KeyError, TypeError): pass' "$work/clients.out" | sort -u)"
[ "$(wc -l <<<"$tokens")" = 2 ] || { echo "FAIL expected the clients to print 2 distinct tokens: $tokens"; fail=1; }
for secret in "$header" "$(cat "$work/token")" $tokens "${tokens##*.}"; do
  if grep -qF -- "$secret" "$work/proxy.log"; then echo "FAIL the proxy log contains a secret"; fail=1; fi
done
# SIGTERM: a clean exit (0) after the graceful drain.
kill -TERM "$proxy_pid"
if wait "$proxy_pid"; then echo "ok   SIGTERM: the proxy exited 0"; else echo "FAIL SIGTERM: exit code $?"; fail=1; fi
grep -q '"shutting down the token proxy"' "$work/proxy.log" || { echo "FAIL no shutdown log line"; fail=1; }
[ "$fail" = 0 ] || { echo "--- proxy log"; tail -50 "$work/proxy.log"; exit 1; }
echo "proxy interop: all clients got their tokens"
