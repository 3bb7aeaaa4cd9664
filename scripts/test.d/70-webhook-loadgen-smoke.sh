#!/usr/bin/env bash
# The webhook binary under the load generator for a few seconds (debug builds): every admission
# over TLS must be allowed, none may fail. The figures are in docs/webhook-server.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
bench/webhook.sh --smoke
