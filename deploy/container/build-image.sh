#!/usr/bin/env bash
# Builds Provisor's container image with podman, using only Debian packages and PyPI wheels:
#   1. a Debian bookworm base (python3, python3-venv) made with mmdebstrap, imported once;
#   2. the wheels of Provisor and its pinned dependencies (pip wheel), copied into the build;
#   3. `podman build -f Containerfile`.
# Usage: deploy/container/build-image.sh [TAG]   (default provisor:latest)
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG="${1:-provisor:latest}"
BASE="${PROVISOR_IMAGE_BASE:-localhost/provisor-base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/deploy/container/containers.conf}"

need() { command -v "$1" >/dev/null || { echo "build-image: $1 is missing (apt-get install $2)" >&2; exit 1; }; }
need podman podman
need mmdebstrap mmdebstrap
need runc runc

if ! podman image exists "$BASE"; then
  tarball="$(mktemp -d)/base.tar"
  echo "build-image: making the Debian base $BASE with mmdebstrap (a minute or two)"
  mmdebstrap --quiet --variant=apt --include=python3,python3-venv,ca-certificates bookworm "$tarball" "$MIRROR"
  podman import --quiet "$tarball" "$BASE" >/dev/null
  rm -rf "$(dirname "$tarball")"
fi

rm -rf dist/wheels && mkdir -p dist/wheels
python3 -m pip wheel --quiet --wheel-dir dist/wheels .
podman build --quiet --format docker --build-arg "BASE=$BASE" -t "$TAG" -f Containerfile . >/dev/null
echo "build-image: built $TAG"
