#!/usr/bin/env bash
# The minimum supported Rust version, `rust-version` in Cargo.toml's [workspace.package], builds
# the credential library alone and the whole workspace with every feature. Installs that toolchain with rustup (minimal profile) when it is missing.
set -euo pipefail
msrv="$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml | head -1)"
[ -n "$msrv" ] || { echo "Cargo.toml states no rust-version" >&2; exit 1; }
if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$msrv" --profile minimal || {
        echo "cannot install Rust $msrv (the MSRV) with rustup: it needs static.rust-lang.org" >&2
        exit 1
    }
fi
rustup run "$msrv" rustc --version
# Its own target directory: artifacts of another compiler version are never reused anyway.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/msrv"
cargo "+$msrv" check --locked -p azure-wi-identity
cargo "+$msrv" check --locked -p azure-wi-identity --features azure-core
cargo "+$msrv" check --locked --workspace --all-features --all-targets
