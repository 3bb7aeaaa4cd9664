# shellcheck shell=bash
# Sourced by the benchmark scripts: starts etcd + kube-apiserver from the test bed (built by
# scripts/testbed/build when missing) on loopback, as crates/azure-wi-test-support/src/e2e/testbed.rs starts them (token auth),
# and creates the namespaces `bench` and `azure-workload-identity-system` and the ServiceAccount
# bench/workload (client-id annotation, token expiration 3600).
# Needs from the caller: $work (a scratch directory), a `pids` array (the processes it starts are
# appended, for the caller's cleanup) and `free_port`. Sets: $api, $pki, $token, $work/kubeconfig,
# and the functions kcurl (curl with the admin token) and create PATH JSON (POST).
cache="${AZWI_CACHE:-$HOME/.cache/azure-wi}"
# shellcheck disable=SC1090,SC1091
source <(grep -E '^[A-Z0-9_]+=' scripts/testbed/versions)
apiserver="$cache/testbed/kube-apiserver-$K8S_VERSION/kube-apiserver"
etcd="$cache/testbed/etcd-$ETCD_VERSION/etcd"
[ -x "$apiserver" ] && [ -x "$etcd" ] || scripts/testbed/build
for tool in openssl curl python3; do command -v $tool >/dev/null || { echo "$tool is needed" >&2; exit 1; }; done
pki="$work/pki"; mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kube-apiserver \
  -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
  -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost') -out "$pki/apiserver.crt" 2>/dev/null
openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
token="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
echo "$token,bench-admin,bench-admin,system:masters" >"$pki/tokens.csv"
etcd_port="$(free_port)" peer_port="$(free_port)" api_port="$(free_port)"
"$etcd" --name=bench --data-dir="$work/etcd" --listen-client-urls="http://127.0.0.1:$etcd_port" \
  --advertise-client-urls="http://127.0.0.1:$etcd_port" --listen-peer-urls="http://127.0.0.1:$peer_port" \
  --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" --initial-cluster="bench=http://127.0.0.1:$peer_port" \
  --unsafe-no-fsync --log-level=warn >"$work/etcd.log" 2>&1 &
pids+=($!); disown
"$apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
  --endpoint-reconciler-type=none --secure-port="$api_port" --tls-cert-file="$pki/apiserver.crt" \
  --tls-private-key-file="$pki/apiserver.key" --token-auth-file="$pki/tokens.csv" --cert-dir="$work/apiserver-certs" \
  --service-account-issuer="https://127.0.0.1:$api_port" --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" --service-cluster-ip-range=10.96.0.0/16 \
  --authorization-mode=RBAC --allow-privileged=true --disable-admission-plugins=ServiceAccount \
  --profiling=false --v=1 >"$work/kube-apiserver.log" 2>&1 &
pids+=($!); disown
api="https://127.0.0.1:$api_port"
kcurl() { curl -sS --fail-with-body --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" "$@"; }
ready=""
for _ in $(seq 1200); do
  [ "$(kcurl "$api/readyz" 2>/dev/null)" = ok ] && { ready=1; break; }
  sleep 0.1
done
[ -n "$ready" ] || { tail -30 "$work/kube-apiserver.log" >&2; echo "kube-apiserver did not become ready" >&2; exit 1; }
cat >"$work/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: bench, cluster: {server: "$api", certificate-authority: "$pki/ca.crt"}}]
users: [{name: admin, user: {token: "$token"}}]
contexts: [{name: bench, context: {cluster: bench, user: admin}}]
current-context: bench
EOF
create() { kcurl -o /dev/null -X POST -H 'Content-Type: application/json' "$api$1" -d "$2"; }
create /api/v1/namespaces '{"metadata":{"name":"bench"}}'
create /api/v1/namespaces '{"metadata":{"name":"azure-workload-identity-system"}}'
create /api/v1/namespaces/bench/serviceaccounts '{"metadata":{"name":"workload","annotations":{"azure.workload.identity/client-id":"00000000-0000-0000-0000-0000000000c1","azure.workload.identity/service-account-token-expiration":"3600"}}}'
