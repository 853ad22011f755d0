#!/usr/bin/env bash
# What the tests run for real: Debian's Prometheus (and promtool) and etcd, the Vulkan loader
# that ManiSkill2's SAPIEN needs even to import, a Docker daemon (started here when none
# answers) with debootstrap for the images' stand-in base, the CNI plugins and a static C
# toolchain for the real node's kubelet (its loopback-only pod network and its sandbox image,
# tests/cluster.py), and the Kubernetes binaries with kubectl and helm
# (scripts/kube-test-binaries.sh, cached). Idempotent; uses sudo when not root.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
missing=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
command -v etcd >/dev/null || missing+=(etcd-server)
/sbin/ldconfig -p | grep -q 'libvulkan\.so\.1 ' || missing+=(libvulkan1)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ -x /usr/lib/cni/loopback ] || missing+=(containernetworking-plugins)
command -v gcc >/dev/null || missing+=(gcc)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -f /usr/lib/aarch64-linux-gnu/libc.a ] || missing+=(libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! docker info >/dev/null 2>&1; then
    # No systemd needed. No docker0 bridge and no iptables rules: builds and test containers use
    # --network host or none. The daemon keeps running after the tests.
    log="${GSL_CACHE:-$HOME/.cache/gsl-k8s}/dockerd.log"
    mkdir -p "$(dirname "$log")"
    $sudo setsid -f dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
        >"$log" 2>&1 </dev/null
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start; see $log" >&2; exit 1; }
fi

"$HERE/kube-test-binaries.sh" >/dev/null
