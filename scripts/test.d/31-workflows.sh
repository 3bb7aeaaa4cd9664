#!/usr/bin/env bash
# The GitHub Actions workflows (.github/workflows): actionlint (built from the Go module proxy by
# scripts/tools/actionlint, pinned) checks their syntax, expressions, action inputs, job outputs and
# permissions, and their `run:` scripts with shellcheck (installed from Debian when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
actionlint="$(scripts/tools/actionlint)"
if ! command -v shellcheck >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "31-workflows: shellcheck missing and not root: apt-get install shellcheck" >&2; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
fi
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
[ ${#workflows[@]} -gt 0 ] || { echo "31-workflows: no workflow in .github/workflows" >&2; exit 1; }
"$actionlint" -no-color -shellcheck "$(command -v shellcheck)" "${workflows[@]}"
echo "actionlint: ${workflows[*]} clean"
# The check itself finds what it is for: a workflow with an undefined job output and an unquoted
# variable in a run script must fail.
broken="$(mktemp -d)"
trap 'rm -rf "$broken"' EXIT
mkdir -p "$broken/.github/workflows"
cat >"$broken/.github/workflows/broken.yml" <<'YAML'
on: push
jobs:
  a:
    runs-on: ubuntu-24.04
    steps:
      - run: echo ${{ needs.b.outputs.nothing }} && cd $HOME/x
YAML
if (cd "$broken" && "$actionlint" -no-color -shellcheck "$(command -v shellcheck)" .github/workflows/broken.yml) >/dev/null 2>&1; then
  echo "31-workflows: actionlint accepted a broken workflow: the check does not work" >&2
  exit 1
fi
