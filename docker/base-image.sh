#!/usr/bin/env bash
# A local base image equivalent to python:3.11-slim-bookworm, for machines that cannot pull
# images: Debian bookworm's minimal root file system (debootstrap) with its Python 3.11,
# imported into Docker (`docker import`). Needs root, debootstrap and a Debian mirror.
#
#   docker/base-image.sh [TAG]        # default nightshelf/base:bookworm
#   make stack-up BASE_IMAGE=nightshelf/base:bookworm
#
# Environment: MIRROR (default http://deb.debian.org/debian), CA_BUNDLE (a PEM file added to
# the image's trusted certificates, for networks behind a TLS-inspecting proxy).
set -euo pipefail

TAG=${1:-nightshelf/base:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ROOT=$(mktemp -d /tmp/nightshelf-rootfs.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT

if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image $TAG exists (docker rmi $TAG to rebuild)"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "needs debootstrap (apt-get install debootstrap)" >&2; exit 2; }

echo "== debootstrap bookworm (minbase + python3.11) into $ROOT"
debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates,procps,tini \
    bookworm "$ROOT" "$MIRROR"

if [ -n "${CA_BUNDLE:-}" ]; then
    cp "$CA_BUNDLE" "$ROOT/usr/local/share/ca-certificates/extra-ca.crt"
    chroot "$ROOT" update-ca-certificates >/dev/null
fi
# as in python:3.11-slim: `python` is Python 3.11, apt keeps no package lists
ln -sf /usr/bin/python3 "$ROOT/usr/local/bin/python"
chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin

echo "== docker import -> $TAG"
tar -C "$ROOT" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' - "$TAG"
docker run --rm "$TAG" python3 --version
