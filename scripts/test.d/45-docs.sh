#!/usr/bin/env bash
# The API documentation builds without a single rustdoc warning (broken links, bare URLs,
# unclosed HTML, missing docs are errors). Doc tests themselves run in 50-cargo-test.sh.
set -euo pipefail
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features --locked
# The library alone, as docs.rs-style users of `default-features = false` see it.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --no-default-features --features azure-core --locked
