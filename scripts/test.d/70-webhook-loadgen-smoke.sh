#!/usr/bin/env bash
# The load generator's own unit tests (its latency accounting among them), then the webhook binary
# under it for a few seconds (debug builds): every admission over TLS must be allowed, none may
# fail. The figures are in docs/webhook-server.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
(cd bench/loadgen && cargo test --locked --quiet)
scripts/bench/webhook-offline --smoke
