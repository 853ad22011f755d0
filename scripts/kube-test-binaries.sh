#!/usr/bin/env bash
# The Kubernetes binaries the tests run: kube-apiserver, kube-controller-manager, kube-scheduler
# and kubelet v1.20.2 built from Debian's source package (scripts/build-kubernetes.sh, cached),
# plus upstream kubectl 1.32.3 and helm 3.17.2 (scripts/helm.sh), linked into the same
# directory. Prints that directory. $PYTHON (default python3) must have pip.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}
case $python in
    */*) python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;;
    *) python=$(command -v "$python") ;;
esac

BIN=$("$HERE/build-kubernetes.sh")
TOOLS=$(PYTHON="$python" "$HERE/helm.sh")
ln -sf "$TOOLS/kubectl" "$TOOLS/helm" "$BIN/"
echo "$BIN"
