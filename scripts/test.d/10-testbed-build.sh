#!/usr/bin/env bash
# Builds the end-to-end test bed (kube-apiserver, etcd, helm) from the Go module proxy, once:
# later runs find the binaries in $AZWI_CACHE/testbed and return at once. The e2e tests of the
# cargo step need them and fail (never skip) without them.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
scripts/testbed/build
echo "test bed binaries ready ($((SECONDS - start)) s)"
