#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: `initdb` in a temporary directory as the
# `postgres` user (CI runs as root, which PostgreSQL refuses), on a free loopback port, trust
# authentication on loopback only, and a database `pgnoti_test`. Nothing is left behind.
#
#   eval "$(bash Tests/Support/postgres.sh start)"   # exports PGNOTI_TEST_DATABASE_URL, PGNOTI_TEST_PGDATA
#   bash Tests/Support/postgres.sh stop "$PGNOTI_TEST_PGDATA"
#   bash Tests/Support/postgres.sh stop-server|start-server DATADIR   # keep the data, for outage tests
#   bash Tests/Support/postgres.sh start-tls   # the same with TLS on, a CA of its own (PGNOTI_TEST_CA_FILE)
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
start | start-tls)
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
    tls=""
    if [ "$1" = start-tls ]; then
        # A CA of the test's own and a server certificate for localhost, so that verify-full
        # can be tried against it (and against the system roots, which must refuse it).
        mkdir -p "$data/tls"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pgnoti test CA" \
            -keyout "$data/tls/ca.key" -out "$data/tls/ca.pem" >/dev/null 2>&1
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
            -keyout "$data/tls/server.key" -out "$data/tls/server.csr" >/dev/null 2>&1
        printf 'subjectAltName=DNS:localhost\n' >"$data/tls/san.ext"
        openssl x509 -req -in "$data/tls/server.csr" -CA "$data/tls/ca.pem" -CAkey "$data/tls/ca.key" \
            -CAcreateserial -days 2 -extfile "$data/tls/san.ext" -out "$data/tls/server.pem" >/dev/null 2>&1
        chmod 0600 "$data/tls/server.key"
        [ "$(id -u)" -eq 0 ] && chown -R postgres: "$data/tls"
        chmod 0755 "$data/tls" && chmod 0644 "$data/tls/ca.pem"
        tls="-c ssl=on -c ssl_cert_file=$data/tls/server.pem -c ssl_key_file=$data/tls/server.key"
    fi
    # Loopback only, and the socket in the data directory rather than /var/run/postgresql. The
    # suites run in parallel, each ledger with a pool of its own: 100 connections is too few.
    as_postgres "$bin/pg_ctl" -D "$data/db" -l "$data/log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$data -c fsync=on -c max_connections=300 $tls" start >&2
    as_postgres "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE pgnoti_test" >&2
    echo "$port" > "$data/port"
    echo "export PGNOTI_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:$port/pgnoti_test"
    echo "export PGNOTI_TEST_PGDATA=$data"
    if [ -n "$tls" ]; then echo "export PGNOTI_TEST_CA_FILE=$data/tls/ca.pem"; fi
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
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$data -c fsync=on -c max_connections=300" start >&2
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
