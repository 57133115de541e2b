#!/usr/bin/env bash
# The ACK path while a large purge runs: 200,000 notifications seeded into a sandbox ledger, a
# fixed 50 req/s load of new notifications (`pgnoti-bench load`, latency from the intended send
# time), and `pgnoti purge --older-than 0s` started two seconds into it. Prints the load's
# percentiles and the worst ACK, and how long the purge took. Target: max ≤ 100 ms.
#
#   bash bench/purge_ack.sh [rows=200000] [seconds=40]
#
# BIN_DIR=… uses binaries built elsewhere (default: a release build of this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-200000}
SECS=${2:-40}
PORT=${PORT:-18190}
if [ -z "${BIN_DIR:-}" ]; then
    swift build -c release --product pgnoti >/dev/null
    swift build -c release --product pgnoti-bench >/dev/null
    BIN_DIR=$(swift build -c release --show-bin-path)
fi
PG=$BIN_DIR/pgnoti
BENCH=$BIN_DIR/pgnoti-bench
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/pgnoti-purge.XXXXXX")
PID=
stop() { [ -n "$PID" ] && { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }; PID=; }
trap 'stop; rm -rf "$WORK"' EXIT

echo "seeding $ROWS notifications …"
"$BENCH" seed --database "$WORK/var/pgnoti.sqlite" --count "$ROWS" --first 10000000
"$BENCH" bodies $((50 * SECS)) "$WORK/load.txt" --first 30000000
(cd "$WORK" && exec "$PG" serve --listen "127.0.0.1:$PORT" --admin-listen off >"$WORK/log" 2>&1) &
PID=$!
for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
# The seeded events are filed first, so the purge is all that competes with the load.
"$BENCH" wait-files "$WORK/var/queue/new" "$ROWS" --timeout 900 >/dev/null
"$BENCH" load --port "$PORT" --bodies "$WORK/load.txt" --rate 50 --duration "$SECS" --connections 8 \
    >"$WORK/load.out" &
LOAD=$!
sleep 2
start=$(date +%s.%N)
(cd "$WORK" && "$PG" purge --older-than 0s --force --yes) | tail -1
end=$(date +%s.%N)
wait "$LOAD"
echo "purge took $(echo "$end - $start" | bc) s"
cat "$WORK/load.out"
stop
