#!/usr/bin/env bash
# The credential library, as a workload embeds it (`default-features = false`, with or without
# `azure-core`), compiles no server stack and no TLS stack but rustls/ring; and `azure-core`
# brings no HTTP client of its own (reqwest reaches the tree only through azure-wi itself).
set -euo pipefail
forbidden='^(kube|kube-[a-z]+|axum|axum-[a-z]+|k8s-openapi|openssl|openssl-sys|native-tls|aws-lc-rs|aws-lc-sys|aws-lc-fips-sys|ureq) v'
status=0
for features in "" "azure-core"; do
    tree="$(cargo tree -e normal --no-default-features ${features:+--features "$features"} --locked --prefix none)"
    if bad="$(grep -E "$forbidden" <<<"$tree" | sort -u)" && [ -n "$bad" ]; then
        echo "library tree (features: '${features:-none}') contains forbidden crates:" >&2
        echo "$bad" >&2
        status=1
    else
        echo "library tree (features: '${features:-none}'): $(sort -u <<<"$tree" | wc -l) crates, none forbidden"
    fi
done
# Who depends on reqwest with azure-core on: only azure-wi.
dependents="$(cargo tree -e normal --no-default-features --features azure-core --locked -i reqwest --depth 1 --prefix none | tail -n +2 | sort -u)"
if [ "$dependents" != "azure-wi v0.1.0 ($(pwd))" ]; then
    echo "reqwest is pulled in by something other than azure-wi: $dependents" >&2
    status=1
fi
# Sanity: the check itself sees the crates it forbids when they are there.
grep -qE '^kube v' <(cargo tree -e normal --all-features --locked --prefix none) || {
    echo "the forbidden-crate pattern no longer matches kube in the full tree: fix this script" >&2
    status=1
}
exit $status
