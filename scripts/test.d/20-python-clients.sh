#!/usr/bin/env bash
# Installs Python azure-identity (pinned) into a venv under $AZWI_CACHE, for the interoperability
# test (tests/python_interop.rs). Idempotent; fails loudly when it cannot install.
set -euo pipefail
AZURE_IDENTITY_VERSION=1.27.0
cache="${AZWI_CACHE:-$HOME/.cache/azure-wi}"
venv="$cache/python-clients"
installed() {
    "$venv/bin/python" - "$AZURE_IDENTITY_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("azure-identity") == sys.argv[1] else 1)
PY
}
if installed; then
    echo "azure-identity $AZURE_IDENTITY_VERSION already in $venv"
    exit 0
fi
command -v python3 >/dev/null || { echo "python3 is required for the Python interop test" >&2; exit 1; }
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "azure-identity==$AZURE_IDENTITY_VERSION"
installed || { echo "azure-identity $AZURE_IDENTITY_VERSION did not install into $venv" >&2; exit 1; }
echo "installed azure-identity $AZURE_IDENTITY_VERSION into $venv"
