#!/usr/bin/env bash
# The in-cluster tests on a real node (tests/e2e_node.rs): kubelet, kube-proxy, the controllers and
# containerd around a real API server, the chart's images built from the Dockerfile without a daemon,
# installed by Helm. The first run builds the node's binaries and the images (cached afterwards).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec scripts/testbed/node-e2e
