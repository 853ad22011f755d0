#!/usr/bin/env bash
# What the tests run for real: Debian's Prometheus (and promtool), the Vulkan loader that
# ManiSkill2's SAPIEN needs even to import, and a Kubernetes API server with kubectl and helm
# (scripts/kube-test-binaries.sh, cached). Idempotent; uses sudo when not root.
set -euo pipefail
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
missing=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
/sbin/ldconfig -p | grep -q 'libvulkan\.so\.1 ' || missing+=(libvulkan1)
if [ ${#missing[@]} -gt 0 ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
"$(dirname "$0")/kube-test-binaries.sh" >/dev/null
