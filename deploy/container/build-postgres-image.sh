#!/usr/bin/env bash
# Builds a PostgreSQL image from Debian's packages with podman, for compose.yaml where no registry is
# reachable (the official postgres image is the compose default):
#   1. a Debian bookworm base with postgresql-15, made with mmdebstrap and imported once (the cluster
#      the package makes on install is dropped: the entry point makes one in the volume);
#   2. `podman build deploy/container/postgres` (its own context) (entry point, volume, health check).
# Usage: deploy/container/build-postgres-image.sh [TAG]   (default provisor-postgres:15)
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG="${1:-provisor-postgres:15}"
BASE="${PROVISOR_POSTGRES_IMAGE_BASE:-localhost/provisor-postgres-base:bookworm}"
PROGRAM=build-postgres-image
. deploy/container/common.sh
debian_base "$BASE" --include=postgresql-15,util-linux --customize-hook='chroot "$1" pg_dropcluster 15 main'

podman build --quiet --format docker --build-arg "BASE=$BASE" -t "$TAG" deploy/container/postgres >/dev/null
echo "build-postgres-image: built $TAG"
