#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler and kubelet v1.20.2 from Debian
# bookworm's `kubernetes` source package (no registry ships these binaries) for the tests'
# control plane and real single-node cluster. Prints the bin directory:
#   ${GSL_CACHE:-~/.cache/gsl-k8s}/kubernetes-1.20.2-<first 8 hex of this script's sha256>/bin
# The directory is keyed by this script's hash, so a changed patch rebuilds. `--bin-dir` prints it
# without building. Go's build cache is kept beside it (go-build/, ~2.3 GB): a rebuild after a
# change here takes ~3 minutes instead of ~16 (cold, 2 cores). Needs Debian bookworm and root
# or sudo (apt). Two patches on the Debian source:
#   1. vendored modern-go/reflect2 1.0.1 -> Debian's 1.0.2: built with Go >= 1.18, 1.0.1 crashes
#      the apiserver ("fatal error: fault" in mapiterinit) on the first custom resource.
#   2. dockershim never asks docker for a negative oom_score_adj (-998 for every pod sandbox, -997
#      for Guaranteed containers): where CAP_SYS_RESOURCE is missing from the capability bounding
#      set (e.g. a Firecracker VM), runc fails "can't get final child's PID from pipe: EOF" and no
#      pod starts. Positive scores (Burstable, BestEffort) are still passed on.
set -euo pipefail
VERSION=1.20.2
DEBIAN_VERSION="1.20.5+really${VERSION}-1.1+deb12u1"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "${GSL_CACHE:-$HOME/.cache/gsl-k8s}"
ROOT=$(cd "${GSL_CACHE:-$HOME/.cache/gsl-k8s}" && pwd)
KEY=$(sha256sum "$HERE/build-kubernetes.sh" | cut -c1-8)
BIN="$ROOT/kubernetes-${VERSION}-${KEY}/bin"

built() { for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || return 1; done; }
if [ "${1:-}" = --bin-dir ] || built; then
    echo "$BIN"
    exit 0
fi

exec 9>"$ROOT/.build-kubernetes.lock"
flock 9  # one build at a time per cache; a second caller waits and reuses it
if built; then
    echo "$BIN"
    exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
apt_install() {
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
}
tools_ok=1
for tool in go rsync dpkg-source make gcc; do command -v "$tool" >/dev/null || tools_ok=0; done
[ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || tools_ok=0
[ $tools_ok = 1 ] || apt_install dpkg-dev golang-go rsync make gcc libc6-dev \
    golang-github-modern-go-reflect2-dev

if ! apt-get source --download-only --print-uris "kubernetes=${DEBIAN_VERSION}" >/dev/null 2>&1; then
    # deb-src is off by default: add it for the mirror apt already uses.
    mirror=$("$HERE/debian-mirror.sh" bookworm)
    printf 'Types: deb-src\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" | $sudo tee /etc/apt/sources.list.d/gsl-k8s-deb-src.sources >/dev/null
    $sudo apt-get update -qq
fi

# A fixed source path, so that Go's cache (keyed on it) hits on a rebuild.
src="$ROOT/src/kubernetes-${VERSION}"
rm -rf "$src" && mkdir -p "$src" && cd "$src"
apt-get source --download-only "kubernetes=${DEBIAN_VERSION}" >&2
dpkg-source -x "kubernetes_${DEBIAN_VERSION}.dsc" k8s >&2
cd k8s
rm -rf vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
sed -i 's/defaultSandboxOOMAdj int = -998/defaultSandboxOOMAdj int = 0/' \
    pkg/kubelet/dockershim/docker_sandbox.go
sed -i 's/^\(\t*\)createConfig.HostConfig.OomScoreAdj = int(rOpts.OomScoreAdj)$/\1if rOpts.OomScoreAdj > 0 {\n\1\tcreateConfig.HostConfig.OomScoreAdj = int(rOpts.OomScoreAdj)\n\1}/' \
    pkg/kubelet/dockershim/helpers_linux.go
grep -q 'defaultSandboxOOMAdj int = 0' pkg/kubelet/dockershim/docker_sandbox.go
grep -q 'if rOpts.OomScoreAdj > 0 {' pkg/kubelet/dockershim/helpers_linux.go
# k8s forces GOCACHE=_output/local/go/cache; point it at the kept cache.
mkdir -p _output/local/go "$ROOT/go-build/kubernetes-${VERSION}"
ln -sfn "$ROOT/go-build/kubernetes-${VERSION}" _output/local/go/cache
whats=$(printf 'cmd/%s ' "${BINARIES[@]}")
KUBE_GIT_VERSION="v${VERSION}" KUBE_GIT_TREE_STATE=clean make WHAT="${whats% }" >&2
mkdir -p "$BIN.partial"
for b in "${BINARIES[@]}"; do cp "_output/bin/$b" "$BIN.partial/"; done
rm -rf "$BIN" && mv "$BIN.partial" "$BIN"
cd "$ROOT" && rm -rf "$src"
echo "$BIN"
