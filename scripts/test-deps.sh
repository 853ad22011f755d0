#!/usr/bin/env bash
# What the tests run for real: Debian's Prometheus (and promtool), and a Kubernetes API
# server with kubectl and helm (scripts/kube-test-binaries.sh, cached). Idempotent; uses
# sudo when not root.
set -euo pipefail
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus
fi
"$(dirname "$0")/kube-test-binaries.sh" >/dev/null
