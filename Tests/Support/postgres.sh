#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: `initdb` in a temporary directory as the
# `postgres` user (CI runs as root, which PostgreSQL refuses), on a free loopback port, trust
# authentication on loopback only, and a database `pgnoti_test`. Nothing is left behind.
#
#   eval "$(bash Tests/Support/postgres.sh start)"   # exports PGNOTI_TEST_DATABASE_URL, PGNOTI_TEST_PGDATA
#   bash Tests/Support/postgres.sh stop "$PGNOTI_TEST_PGDATA"
#   bash Tests/Support/postgres.sh stop-server|start-server DATADIR   # keep the data, for outage tests
#
# Installs Debian's postgresql (15) when it is missing.
set -euo pipefail

bin=/usr/lib/postgresql/15/bin

# The server outlives this script: it must not keep a descriptor its caller waits on (a test
# runner's pipe that was not close-on-exec would never see end-of-file).
for fd in /proc/$$/fd/*; do
    n=${fd##*/}
    if [ "$n" -gt 2 ] 2>/dev/null; then eval "exec $n>&-" 2>/dev/null || true; fi
done

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
    if [ ! -x "$bin/initdb" ]; then
        apt-get update -qq >&2 && apt-get install -y -qq postgresql >/dev/null 2>&1
        # The package starts its own cluster on 5432; the tests use their own.
        (systemctl stop postgresql 2>/dev/null || service postgresql stop 2>/dev/null || true) >&2
    fi
    data=$(mktemp -d /tmp/pgnoti-pg.XXXXXX)
    [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
    chmod 0700 "$data"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_postgres "$bin/initdb" -D "$data/db" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null
    # Loopback only, and the socket in the data directory rather than /var/run/postgresql.
    as_postgres "$bin/pg_ctl" -D "$data/db" -l "$data/log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$data -c fsync=on" start >&2
    as_postgres "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE pgnoti_test" >&2
    echo "$port" > "$data/port"
    echo "export PGNOTI_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:$port/pgnoti_test"
    echo "export PGNOTI_TEST_PGDATA=$data"
    ;;
stop-server)
    # Stops the server and keeps its data, for a test of what the daemons do meanwhile.
    data=${2:?the data directory start printed}
    as_postgres "$bin/pg_ctl" -D "$data/db" -m fast -w stop >&2
    ;;
start-server)
    data=${2:?the data directory start printed}
    port=$(cat "$data/port")
    as_postgres "$bin/pg_ctl" -D "$data/db" -l "$data/log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$data -c fsync=on" start >&2
    ;;
stop)
    data=${2:?the data directory start printed}
    as_postgres "$bin/pg_ctl" -D "$data/db" -m fast -w stop >&2 || true
    rm -rf "$data"
    ;;
*)
    echo "usage: $0 start | stop DATADIR | stop-server DATADIR | start-server DATADIR" >&2
    exit 64
    ;;
esac
