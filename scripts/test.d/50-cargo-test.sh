#!/usr/bin/env bash
# Unit, integration and doc tests of every feature set.
set -euo pipefail
cargo test --all-features --locked
# The credential library alone, as a workload embeds it.
cargo test --no-default-features --lib --locked
