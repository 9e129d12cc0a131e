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
PROGRAM=build-image
. deploy/container/common.sh
debian_base "$BASE" --include=python3,python3-venv,ca-certificates

rm -rf dist/wheels && mkdir -p dist/wheels
python3 -m pip wheel --quiet --wheel-dir dist/wheels .
podman build --quiet --format docker --build-arg "BASE=$BASE" -t "$TAG" -f Containerfile . >/dev/null
echo "build-image: built $TAG"
