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
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/deploy/container/containers.conf}"

need() { command -v "$1" >/dev/null || { echo "build-postgres-image: $1 is missing (apt-get install $2)" >&2; exit 1; }; }
need podman podman
need mmdebstrap mmdebstrap
need runc runc

if ! podman image exists "$BASE"; then
  tarball="$(mktemp -d)/base.tar"
  echo "build-postgres-image: making the Debian base $BASE with mmdebstrap (a minute or two)"
  mmdebstrap --quiet --variant=apt --include=postgresql-15,util-linux \
    --customize-hook='chroot "$1" pg_dropcluster 15 main' bookworm "$tarball" "$MIRROR"
  podman import --quiet "$tarball" "$BASE" >/dev/null
  rm -rf "$(dirname "$tarball")"
fi

podman build --quiet --format docker --build-arg "BASE=$BASE" -t "$TAG" deploy/container/postgres >/dev/null
echo "build-postgres-image: built $TAG"
