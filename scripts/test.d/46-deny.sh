#!/usr/bin/env bash
# Dependency policy (deny.toml): licenses, banned crates (OpenSSL, aws-lc, native-tls), duplicate
# versions (warnings) and sources, with a pinned cargo-deny installed from crates.io into the cache.
# Security advisories are checked by 46-advisories.sh (cargo deny and cargo audit, offline).
set -euo pipefail
CARGO_DENY_VERSION=0.20.2
cache="${AZWI_CACHE:-$HOME/.cache/azure-wi}"
deny="$cache/cargo/bin/cargo-deny"
if ! { [ -x "$deny" ] && "$deny" --version | grep -qx "cargo-deny $CARGO_DENY_VERSION"; }; then
    cargo install --locked cargo-deny --version "$CARGO_DENY_VERSION" --root "$cache/cargo"
fi
"$deny" --version
checks=(licenses bans sources)
"$deny" --workspace --all-features check "${checks[@]}"
# The Key Vault interop crate pulls the Azure SDK: it obeys the same policy.
"$deny" --manifest-path tests/interop/keyvault/Cargo.toml --config deny.toml check "${checks[@]}"
