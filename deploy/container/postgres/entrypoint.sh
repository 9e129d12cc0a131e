#!/bin/sh
# Entry point of the local PostgreSQL image (deploy/container/build-postgres-image.sh), configured by
# the variables compose.yaml gives the official postgres image, so either image serves it:
#   POSTGRES_PASSWORD  the password of POSTGRES_USER (needed when the data directory is empty)
#   POSTGRES_USER      the superuser initdb creates (default postgres)
#   POSTGRES_DB        a database owned by POSTGRES_USER, created on the first start (default POSTGRES_USER)
#   PGDATA             the cluster's directory, the volume (default /var/lib/postgresql/data)
# The first start of an empty data directory makes the cluster; every start then runs `postgres` in the
# foreground as the postgres user. Any other command (`psql`, `bash`) runs as given.
set -eu

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
SOCKET_DIR=/var/run/postgresql

if [ "${1:-}" != postgres ]; then
  exec "$@"
fi
shift

if [ "$(id -u)" = 0 ]; then
  # A new named volume or bind mount may belong to root: give it to postgres, then drop root for good.
  mkdir -p "$PGDATA" "$SOCKET_DIR"
  chown postgres:postgres "$PGDATA" "$SOCKET_DIR"
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "postgres-entrypoint: $PGDATA is empty and POSTGRES_PASSWORD is not set; set the password of $POSTGRES_USER" >&2
    exit 1
  fi
  # A first start that fails part-way empties the directory again, so the next start begins afresh
  # instead of serving a cluster without its database.
  trap 'echo "postgres-entrypoint: making the cluster failed; $PGDATA emptied" >&2; find "$PGDATA" -mindepth 1 -delete' EXIT
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  # Inside the container the Unix socket trusts its callers (`podman exec ... psql`); over TCP every
  # client gives the password.
  initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 \
    --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"

  if [ "$POSTGRES_DB" != postgres ]; then
    # A private socket and no TCP while the database is made, so no health check (pg_isready on the
    # usual socket) passes before the server is the one that serves.
    init_socket="$(mktemp -d)"
    pg_ctl --pgdata="$PGDATA" --wait --silent \
      --options="-c listen_addresses='' -c unix_socket_directories='$init_socket'" start
    # psql quotes the names (:"db"); variables are not expanded in --command, hence stdin.
    psql --host="$init_socket" --username="$POSTGRES_USER" --dbname=postgres --no-psqlrc --quiet \
      --set=ON_ERROR_STOP=1 --set=db="$POSTGRES_DB" --set=owner="$POSTGRES_USER" <<'SQL'
CREATE DATABASE :"db" OWNER :"owner";
SQL
    pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop
    rmdir "$init_socket"
  fi
  trap - EXIT
  echo "postgres-entrypoint: made the cluster in $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
fi

exec postgres "$@"
