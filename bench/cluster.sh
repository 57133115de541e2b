#!/usr/bin/env bash
# pgnoti on SQLite against pgnoti on PostgreSQL, one run, one table: the same distinct Smartro
# load (every request a new notification) at 16 connections against
#   sqlite      one daemon on SQLite (sandbox state, WAL, synchronous=FULL)
#   postgresql  one daemon on PostgreSQL 15 on this host (synchronous_commit=on, fsync=on)
#   2 hosts     two daemons sharing that PostgreSQL, the load split between them (8 + 8)
#   pgbench     PostgreSQL's own ceiling for the same transaction: a notification row and its
#               outbox row, 16 clients, prepared statements
# and, for the PostgreSQL runs, commits per notification (from pg_stat_database: group commit
# at work when well under 1).
#
#   bash bench/cluster.sh [seconds=10] [connections=16]
#   PGNOTI=path PGNOTI_BENCH=path bash bench/cluster.sh    # given binaries, nothing built
#
# Needs wrk and Debian's postgresql (15); starts its own throwaway cluster
# (Tests/Support/postgres.sh) and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-16}
PORT=${PORT:-18280}
PORT2=$((PORT + 1))
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
# PGNOTI=path runs a given pgnoti (e.g. the .deb's static release build) instead of building one;
# PGNOTI_BENCH=path likewise for pgnoti-bench, which only writes the request bodies.
BIN_DIR=$(swift build -c release --show-bin-path)
if [ -z "${PGNOTI:-}" ]; then swift build -c release --product pgnoti >/dev/null; fi
if [ -z "${PGNOTI_BENCH:-}" ]; then swift build -c release --product pgnoti-bench >/dev/null; fi
PG=${PGNOTI:-$BIN_DIR/pgnoti}
BENCH=${PGNOTI_BENCH:-$BIN_DIR/pgnoti-bench}
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/pgnoti-cluster.XXXXXX")
PIDS=()
eval "$(bash Tests/Support/postgres.sh start)"
stop_all() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && { kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; }; done; PIDS=(); }
trap 'stop_all; bash Tests/Support/postgres.sh stop "$PGNOTI_TEST_PGDATA"; rm -rf "$WORK"' EXIT
BASE=${PGNOTI_TEST_DATABASE_URL%/*}
psql_q() { psql "$1" -v ON_ERROR_STOP=1 -tAc "$2"; }

"$BENCH" bodies 400000 "$WORK/distinct.txt"
# Each run gets bodies no earlier run sent, so every request is a new notification.
"$BENCH" bodies 400000 "$WORK/distinct-pg.txt" --first 1000000
"$BENCH" bodies 400000 "$WORK/distinct-2.txt" --first 2000000

wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened"; exit 1; }
wait_ready() { for _ in $(seq 200); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.05; done; echo "admin $1 never ready"; exit 1; }

config_pg() { # dir database port admin-port
    mkdir -p "$1"
    printf 'SMTPAY001m=%s\n' "0/4GFsSd7ERVRGX9WHOzJ96GyeMTwvIaKSWUCKmN3fDklNRGw3CualCFoMPZaS99YiFGOuwtzTkrLo4bR4V+Ow==" >"$1/keys"
    cat >"$1/pgnoti.toml" <<EOF
listen = "127.0.0.1:$3"
admin_listen = "127.0.0.1:$4"
database = "$2"
[smartro]
merchant_keys_file = "$1/keys"
accept_test_merchants = true
EOF
}

declare -A RPS P50 P99 BAD COMMITS NOTE
wrk_run() { # name port bodies connections → sets LAST_*
    local out; out=$(wrk -t2 -c"$4" -d"${SECS}s" -s bench/bodies.lua "http://127.0.0.1:$2" -- "$3" 2 2>&1)
    LAST_RPS=$(echo "$out" | sed -n 's/Requests\/sec: *\([0-9.]*\).*/\1/p')
    LAST_P50=$(echo "$out" | sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p')
    LAST_P99=$(echo "$out" | sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p')
    local non2xx errors
    non2xx=$(echo "$out" | sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p')
    errors=$(echo "$out" | awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10; f = 1 } END { if (!f) print 0 }')
    LAST_BAD=$(( ${non2xx:-0} + errors ))
}
commits() { psql_q "$1" "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
rows() { psql_q "$1" "SELECT count(*) FROM notifications"; }

echo "pgnoti cluster bench $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%FT%TZ), $(nproc) cores, wrk -t2 -c$CONNS -d${SECS}s" >&2

# 1. SQLite.
mkdir -p "$WORK/sqlite"
(cd "$WORK/sqlite" && exec "$PG" serve --listen "127.0.0.1:$PORT" --admin-listen off >"$WORK/sqlite/log" 2>&1) &
PIDS=($!)
wait_port "$PORT"
wrk_run sqlite "$PORT" "$WORK/distinct.txt" "$CONNS"
RPS[sqlite]=$LAST_RPS; P50[sqlite]=$LAST_P50; P99[sqlite]=$LAST_P99; BAD[sqlite]=$LAST_BAD; COMMITS[sqlite]=-
NOTE[sqlite]="WAL, synchronous=FULL"
stop_all

# 2. One daemon on PostgreSQL.
psql_q "$PGNOTI_TEST_DATABASE_URL" "CREATE DATABASE bench_one" >/dev/null
ONE="$BASE/bench_one"
config_pg "$WORK/pg1" "$ONE" "$PORT" "$((PORT + 100))"
"$PG" serve --config "$WORK/pg1/pgnoti.toml" >"$WORK/pg1/log" 2>&1 & PIDS=($!)
wait_ready "$((PORT + 100))"
c0=$(commits "$ONE"); n0=$(rows "$ONE")
wrk_run postgresql "$PORT" "$WORK/distinct-pg.txt" "$CONNS"
c1=$(commits "$ONE"); n1=$(rows "$ONE")
RPS[postgresql]=$LAST_RPS; P50[postgresql]=$LAST_P50; P99[postgresql]=$LAST_P99; BAD[postgresql]=$LAST_BAD
COMMITS[postgresql]=$(awk -v c=$((c1 - c0)) -v n=$((n1 - n0)) 'BEGIN { printf "%.3f", n ? c / n : 0 }')
NOTE[postgresql]="$((n1 - n0)) notifications, $((c1 - c0)) commits"
stop_all

# 3. Two daemons sharing it, the load split between them.
psql_q "$PGNOTI_TEST_DATABASE_URL" "CREATE DATABASE bench_two" >/dev/null
TWO="$BASE/bench_two"
config_pg "$WORK/pga" "$TWO" "$PORT" "$((PORT + 100))"
config_pg "$WORK/pgb" "$TWO" "$PORT2" "$((PORT2 + 100))"
"$PG" serve --config "$WORK/pga/pgnoti.toml" >"$WORK/pga/log" 2>&1 & PIDS=($!)
"$PG" serve --config "$WORK/pgb/pgnoti.toml" >"$WORK/pgb/log" 2>&1 & PIDS+=($!)
wait_ready "$((PORT + 100))"; wait_ready "$((PORT2 + 100))"
c0=$(commits "$TWO"); n0=$(rows "$TWO")
head -n 200000 "$WORK/distinct-2.txt" >"$WORK/half-a.txt"
tail -n 200000 "$WORK/distinct-2.txt" >"$WORK/half-b.txt"
wrk -t2 -c$((CONNS / 2)) -d"${SECS}s" -s bench/bodies.lua "http://127.0.0.1:$PORT" -- "$WORK/half-a.txt" 2 >"$WORK/two-a.out" 2>&1 &
A=$!
out_b=$(wrk -t2 -c$((CONNS / 2)) -d"${SECS}s" -s bench/bodies.lua "http://127.0.0.1:$PORT2" -- "$WORK/half-b.txt" 2 2>&1)
wait $A
out_a=$(cat "$WORK/two-a.out" 2>/dev/null || true)
c1=$(commits "$TWO"); n1=$(rows "$TWO")
RPS[two-hosts]=$(awk -v n=$((n1 - n0)) -v s="$SECS" 'BEGIN { printf "%.1f", n / s }')
P50[two-hosts]="$(echo "$out_a" | sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p') / $(echo "$out_b" | sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p')"
P99[two-hosts]="$(echo "$out_a" | sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p') / $(echo "$out_b" | sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p')"
BAD[two-hosts]=$(echo "$out_b" | sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p'); BAD[two-hosts]=${BAD[two-hosts]:-0}
COMMITS[two-hosts]=$(awk -v c=$((c1 - c0)) -v n=$((n1 - n0)) 'BEGIN { printf "%.3f", n ? c / n : 0 }')
NOTE[two-hosts]="$((n1 - n0)) notifications stored by both; p50 and p99 per host (A / B)"
stop_all

# 4. pgbench: the same two rows per transaction, as PostgreSQL's own ceiling here.
psql_q "$PGNOTI_TEST_DATABASE_URL" "CREATE DATABASE bench_pgbench" >/dev/null
PGB="$BASE/bench_pgbench"
# The tables as pgnoti creates them: let a daemon migrate, then stop it.
config_pg "$WORK/pgc" "$PGB" "$PORT" "$((PORT + 100))"
"$PG" serve --config "$WORK/pgc/pgnoti.toml" >"$WORK/pgc/log" 2>&1 & PIDS=($!)
wait_ready "$((PORT + 100))"; stop_all
cat >"$WORK/txn.sql" <<'EOF'
\set n random(1, 2000000000)
BEGIN;
INSERT INTO notifications (provider, merchant_id, tid, state, fingerprint, event_id, event_json, queue_file_name,
    raw_body, content_type, peer, client, kind, order_id, amount, result_code, received_at, filed_at)
VALUES ('smartro', 'SMTPAY001m', 'T' || :n || '-' || :client_id || '-' || random(), '0', 'amount=1000;result=3001',
    md5(random()::text), repeat('x', 1600)::bytea, md5(random()::text) || '.json', repeat('y', 700)::bytea,
    'application/x-www-form-urlencoded', '127.0.0.1', '127.0.0.1', 'payment.approved', 'O' || :n, 1000, '3001',
    0, 0)
ON CONFLICT (provider, merchant_id, tid, state) DO NOTHING;
INSERT INTO outbox (file_name, payload, notification_id, queued_at) VALUES (md5(random()::text) || '.json', ''::bytea, lastval(), 0);
COMMIT;
EOF
pgout=$(pgbench -n -M prepared -c "$CONNS" -j 2 -T "$SECS" -f "$WORK/txn.sql" "$PGB" 2>&1)
RPS[pgbench]=$(echo "$pgout" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
P50[pgbench]=-; P99[pgbench]=-; BAD[pgbench]=$(echo "$pgout" | sed -n 's/.*number of failed transactions: \([0-9]*\).*/\1/p'); COMMITS[pgbench]=1
NOTE[pgbench]="latency average $(echo "$pgout" | sed -n 's/^latency average = \(.*\)$/\1/p')"

echo
echo "| run | notifications/s | p50 ms | p99 ms | non-2xx or errors | commits per notification | × sqlite | × pgbench | |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in sqlite postgresql two-hosts pgbench; do
    printf '| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n' "$r" "${RPS[$r]:-0}" "${P50[$r]:--}" "${P99[$r]:--}" \
        "${BAD[$r]:-?}" "${COMMITS[$r]:--}" \
        "$(awk -v a="${RPS[$r]:-0}" -v b="${RPS[sqlite]:-1}" 'BEGIN { printf "%.2f", a / b }')" \
        "$(awk -v a="${RPS[$r]:-0}" -v b="${RPS[pgbench]:-1}" 'BEGIN { printf "%.2f", a / b }')" "${NOTE[$r]:-}"
done
