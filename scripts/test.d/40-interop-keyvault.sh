#!/usr/bin/env bash
# The official Azure Key Vault client (azure_security_keyvault_secrets) reading a secret with
# azure-wi's PlatformCredential, end to end against local Entra and Key Vault stand-ins
# (tests/interop/keyvault: its own crate and Cargo.lock, so the SDK stays out of our tree).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root/tests/interop/keyvault"
# Share the main target directory: most dependencies are already compiled there.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo test --locked
# The interop crate must not bring in another TLS stack either.
if cargo tree -e normal --locked | grep -E 'aws-lc|openssl-sys|native-tls'; then
    echo "the Key Vault example pulls a TLS stack other than rustls/ring" >&2
    exit 1
fi
