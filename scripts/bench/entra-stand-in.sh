# shellcheck shell=bash
# Sourced by the proxy benchmark: starts the Microsoft Entra stand-in (`azwi-stand-in entra`, the
# one of azure-wi-test-support: here an HTTPS proxy for login.microsoftonline.com that checks each
# exchange's assertion byte for byte) with a service-account-token-shaped assertion in $work/token.
# Needs from the caller: $loadgen (for its certificate), $stand_in, $work, a `pids` array and
# `free_port`. Sets: $tenant, $client,
# $entra_port, $entra_pid, the array proxy_env (the environment a token proxy runs in:
# `env -i "${proxy_env[@]}" COMMAND`), $token_query (an IMDS token request path) and the function
# counts (the stand-in's counters as JSON).
tenant=72f988bf-86f1-41af-91ab-2d7cd011db47 client=11111111-2222-3333-4444-555555555555
"$loadgen" write-cert --dir "$work/entra" --name login.microsoftonline.com >/dev/null
# A service-account-token-shaped assertion, without a trailing newline as the kubelet writes it
# (upstream sends the file's bytes as they are, ours trims; the stand-in compares byte for byte).
python3 -c 'import base64,json,time
b=lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
now=int(time.time())
print(b({"alg":"RS256","kid":"bench"})+"."+b({"aud":["api://AzureADTokenExchange"],"exp":now+86400,"iat":now,
  "iss":"https://oidc.bench.invalid","sub":"system:serviceaccount:bench:workload"})+"."+"c2ln"*86, end="")' >"$work/token"
entra_port="$(free_port)"
out="$(python3 scripts/bench/start-ready.py "http://127.0.0.1:$entra_port/readyz" "$work/entra.log" 30 -- \
  "$stand_in" entra --cert-dir "$work/entra" --addr "127.0.0.1:$entra_port" --tenant "$tenant" --assertion-file "$work/token")"
entra_pid="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["pid"])' "$out")"; pids+=("$entra_pid")
counts() { curl -sS --fail "http://127.0.0.1:$entra_port/counts"; }
proxy_env=(PATH="$PATH" AZURE_TENANT_ID="$tenant" AZURE_CLIENT_ID="$client" AZURE_FEDERATED_TOKEN_FILE="$work/token"
  AZURE_AUTHORITY_HOST=https://login.microsoftonline.com/ HTTPS_PROXY="http://127.0.0.1:$entra_port"
  SSL_CERT_FILE="$work/entra/ca.crt")
token_query="/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
