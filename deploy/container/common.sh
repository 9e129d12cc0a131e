# Shared by build-image.sh and build-postgres-image.sh (sourced, not run): the tools they need and
# the Debian bookworm base each imports once. The caller sets PROGRAM (its name, for messages).
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/deploy/container/containers.conf}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

need() { command -v "$1" >/dev/null || { echo "$PROGRAM: $1 is missing (apt-get install $2)" >&2; exit 1; }; }
need podman podman
need mmdebstrap mmdebstrap
need runc runc

# debian_base IMAGE MMDEBSTRAP-OPTION...: imports a bookworm made by mmdebstrap as IMAGE, unless it exists.
debian_base() {
  local image="$1" tarball
  shift
  podman image exists "$image" && return 0
  tarball="$(mktemp -d)/base.tar"
  echo "$PROGRAM: making the Debian base $image with mmdebstrap (a minute or two)"
  mmdebstrap --quiet --variant=apt "$@" bookworm "$tarball" "$MIRROR"
  podman import --quiet "$tarball" "$image" >/dev/null
  rm -rf "$(dirname "$tarball")"
}
