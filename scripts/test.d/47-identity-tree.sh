#!/usr/bin/env bash
# The credential library (crates/azure-wi-identity), as a workload depends on it (with or without
# `azure-core`): no server stack (axum, hyper's server half), no Kubernetes, no CLI or metrics
# crate, no TLS stack but rustls/ring (hyper-util, tokio-rustls and tower-http are there as
# reqwest's client); and `azure-core` brings no HTTP client of its own (reqwest reaches the tree
# only through azure-wi-identity itself). The crate graph keeps the code apart; this keeps the
# library's Cargo.toml honest.
set -euo pipefail
forbidden='^(kube|kube-[a-z]+|axum|axum-[a-z]+|k8s-openapi|clap|clap_[a-z]+|prometheus-client|json-patch|openssl|openssl-sys|native-tls|aws-lc-rs|aws-lc-sys|aws-lc-fips-sys|ureq) v'
status=0
for features in "" "azure-core"; do
    tree="$(cargo tree -p azure-wi-identity -e normal ${features:+--features "$features"} --locked --prefix none)"
    if bad="$(grep -E "$forbidden" <<<"$tree" | sort -u)" && [ -n "$bad" ]; then
        echo "azure-wi-identity (features: '${features:-none}') depends on forbidden crates:" >&2
        echo "$bad" >&2
        status=1
    else
        echo "azure-wi-identity (features: '${features:-none}'): $(sort -u <<<"$tree" | wc -l) crates, none forbidden"
    fi
done
# hyper reaches the tree as reqwest's client only: never its server half.
if cargo tree -p azure-wi-identity -e features --features azure-core --locked -i hyper --prefix none \
    | grep -q '^hyper feature "server"'; then
    echo "azure-wi-identity's tree enables hyper's server" >&2
    status=1
fi
# Who depends on reqwest with azure-core on: only azure-wi-identity.
dependents="$(cargo tree -p azure-wi-identity -e normal --features azure-core --locked -i reqwest --depth 1 --prefix none | tail -n +2 | sort -u)"
if [ "$dependents" != "azure-wi-identity v0.1.0 ($(pwd)/crates/azure-wi-identity)" ]; then
    echo "reqwest is pulled in by something other than azure-wi-identity: $dependents" >&2
    status=1
fi
# Sanity: the check itself sees the crates it forbids when they are there (the binary's tree).
grep -qE '^kube v' <(cargo tree -p azure-wi -e normal --locked --prefix none) || {
    echo "the forbidden-crate pattern no longer matches kube in the binary's tree: fix this script" >&2
    status=1
}
exit $status
