#!/usr/bin/env bash
# The release build's code layout (scripts/release/link-ordered, used by scripts/release/build):
# hash-free names, and a real link of a small program through it with the profiled functions first.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in nm c++filt; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq binutils >/dev/null; }
done
python3 scripts/release/test_link_ordered.py
