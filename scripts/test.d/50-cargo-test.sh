#!/usr/bin/env bash
# Unit, integration and doc tests of every feature set, then how many end-to-end tests
# (tests/e2e/, one binary on a real kube-apiserver; tests/e2e_node.rs is run by 55-node-e2e.sh)
# ran.
set -euo pipefail
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-features --locked 2>&1 | tee "$log" || status=$?
awk '/Running tests\/e2e[\/_]/ { e2e = 1; binaries++; next }
     /Running |Doc-tests / { e2e = 0 }
     e2e && /^test result:/ { passed += $4; failed += $6 }
     END {
       printf "end-to-end tests (real kube-apiserver): %d passed, %d failed, in %d test binaries\n",
              passed, failed, binaries
       if (passed == 0) { print "error: no end-to-end test ran" > "/dev/stderr"; exit 1 }
     }' "$log" || status=1
[ "$status" = 0 ] || exit "$status"
# The credential library alone, as a workload embeds it (without `azure-core`).
cargo test -p azure-wi-identity --lib --locked
