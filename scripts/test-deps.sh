#!/usr/bin/env bash
# System packages the tests run for real: Debian's Prometheus (and promtool).
# Idempotent; uses sudo when not root.
set -euo pipefail
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus
fi
