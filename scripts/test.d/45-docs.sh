#!/usr/bin/env bash
# The API documentation builds without a single rustdoc warning (broken links, bare URLs,
# unclosed HTML, missing docs are errors). Doc tests themselves run in 50-cargo-test.sh.
set -euo pipefail
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked
# The credential library alone, as docs.rs builds it (its package.metadata.docs.rs: every
# feature, `--cfg docsrs` needs nightly, so stable checks the same features without it).
RUSTDOCFLAGS="-D warnings" cargo doc -p azure-wi-identity --no-deps --features azure-core --locked
