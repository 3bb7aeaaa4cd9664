#!/usr/bin/env bash
# The code is formatted with rustfmt (rustfmt.toml); `cargo fmt` fixes it.
set -euo pipefail
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
cargo fmt --check
