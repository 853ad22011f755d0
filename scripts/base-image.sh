#!/usr/bin/env bash
# Prints the base image for docker/*.Dockerfile (their BASE_IMAGE build arg): the upstream
# python:3.11.7-slim-bookworm where it is present or can be pulled; elsewhere (no registry
# reachable) a stand-in built here once and kept in Docker under a tag keyed by this script's
# hash: Debian bookworm (debootstrap --variant=minbase, from the Debian mirror apt already uses)
# with Debian's python3 (3.11), venv and pip. The stand-in carries this host's CA bundle and
# /etc/pip.conf, so that pip inside image builds reaches PyPI the way the host does; the images
# users build on the upstream base get neither. `--standin` skips the upstream check.
# Needs a Docker daemon; the stand-in needs debootstrap and root (or sudo).
set -euo pipefail
UPSTREAM=python:3.11.7-slim-bookworm
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STANDIN="gsl-k8s/python-standin:3.11-bookworm-$(sha256sum "$HERE/base-image.sh" | cut -c1-8)"

if [ "${1:-}" != --standin ]; then
    if docker image inspect "$UPSTREAM" >/dev/null 2>&1 || docker pull -q "$UPSTREAM" >/dev/null 2>&1; then
        echo "$UPSTREAM"
        exit 0
    fi
fi
if docker image inspect "$STANDIN" >/dev/null 2>&1; then
    echo "$STANDIN"
    exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
command -v debootstrap >/dev/null || {
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends debootstrap >&2
}
rootfs=$(mktemp -d)
trap '$sudo rm -rf "$rootfs"' EXIT
$sudo debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$("$HERE/debian-mirror.sh" bookworm)" >&2
# The host's trust store and pip settings (e.g. a proxy's CA), for this machine's builds only.
[ -f /etc/ssl/certs/ca-certificates.crt ] \
    && $sudo cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
[ -f /etc/pip.conf ] && $sudo cp /etc/pip.conf "$rootfs/etc/pip.conf"
$sudo rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
$sudo tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    --message "Debian bookworm + python3 (stand-in for $UPSTREAM)" - "$STANDIN" >/dev/null
echo "$STANDIN"
