#!/usr/bin/env bash
# pgnoti's benchmark: one run, one table. Release build, loopback, a fresh daemon (sandbox mode,
# full durable path) for each load so every peak RSS is that load's own.
#
#   bash bench/run.sh [seconds=10] [connections=16]
#
# Loads (signed Smartro bodies for the published test merchant, CP949, from `pgnoti-bench bodies`):
#   ack-only     pgnoti's own HTTP stack answering OK after reading the body (`pgnoti-bench
#                ack-server`): the ceiling the stack puts on pgnoti; nothing parsed or stored
#   distinct     every request a new notification: decode, verify, commit (fsync), ACK, file
#   retry storm  90 % of requests repeat an earlier notification (dedup path)
#   steady       500 req/s offered at fixed times (`pgnoti-bench load`), latency from the
#                intended send time
#   80 % load    30 s at 80 % of the distinct rate, then the time the queue needs to catch up
#   drain        100,000 events seeded into the outbox, then the daemon restarted: filing rate
# then ../shared/bench/side_by_side.sh (nginx and PHP peers) for distinct and retry storm.
#
# Needs wrk (apt-get install wrk); the side-by-side part also nginx, php-fpm, php-sqlite3.
# State goes under $BENCH_DIR (default /tmp): point it at another filesystem to compare disks.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-16}
PORT=${PORT:-18180}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
swift build -c release --product pgnoti >/dev/null
swift build -c release --product pgnoti-bench >/dev/null
BIN_DIR=$(swift build -c release --show-bin-path)
PG=$BIN_DIR/pgnoti
BENCH=$BIN_DIR/pgnoti-bench
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/pgnoti-bench.XXXXXX")
PID=
stop() { [ -n "$PID" ] && { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }; PID=; }
trap 'stop; rm -rf "$WORK"' EXIT

"$BENCH" bodies 200000 "$WORK/distinct.txt"
# Sized near one run's request count: wrk wraps around the file, so ~90 % of what it sends repeats.
"$BENCH" bodies 30000 "$WORK/retry.txt" --dup-ratio 0.9 --first 1000000
"$BENCH" bodies $((500 * 20)) "$WORK/steady.txt" --first 2000000

wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0; sleep 0.05; done; echo "port $PORT never opened"; exit 1; }
start_pgnoti() { # directory: sandbox state goes to DIR/var
    mkdir -p "$1"
    (cd "$1" && exec "$PG" serve --listen "127.0.0.1:$PORT" --admin-listen off >"$1/log" 2>&1) &
    PID=$!
    wait_port
}
peak_rss() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }
files_in() { find "$1" -maxdepth 1 -type f | wc -l; }

declare -A RPS P50 P99 BAD RSS NOTE
wrk_run() { # name bodies
    local out; out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" -s bench/bodies.lua "http://127.0.0.1:$PORT" -- "$2" 2 2>&1)
    RPS[$1]=$(echo "$out" | sed -n 's/Requests\/sec: *\([0-9.]*\).*/\1/p')
    P50[$1]=$(echo "$out" | sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p')
    P99[$1]=$(echo "$out" | sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p')
    local non2xx errors requests
    non2xx=$(echo "$out" | sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p')
    errors=$(echo "$out" | awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10; f = 1 } END { if (!f) print 0 }')
    BAD[$1]=$(( ${non2xx:-0} + errors ))
    requests=$(echo "$out" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
    OK_REQUESTS=$(( requests - ${non2xx:-0} ))
}
load_run() { # name rate seconds bodies connections → fields of `pgnoti-bench load`
    LOAD_OUT=$("$BENCH" load --port "$PORT" --bodies "$4" --rate "$2" --duration "$3" --connections "$5")
    field() { echo "$LOAD_OUT" | sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
    RPS[$1]=$(field achieved_2xx_rps); P50[$1]=$(field p50_ms); P99[$1]=$(field p99_ms)
    BAD[$1]=$(( $(field non_2xx) + $(field errors) ))
    OK_REQUESTS=$(field ok_2xx)
}
catch_up() { # queue accepted → seconds until `accepted` files are in new/
    "$BENCH" wait-files "$1" "$2" --timeout 300
}

echo "pgnoti bench $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%FT%TZ), $(nproc) cores, state on $(df -T "$WORK" | awk 'NR == 2 {print $2 " " $1}'), wrk -t2 -c$CONNS -d${SECS}s" >&2

# 1. ACK-only ceiling: the same HTTP stack, nothing behind it.
"$BENCH" ack-server --listen "127.0.0.1:$PORT" >"$WORK/ack.log" 2>&1 & PID=$!
wait_port
wrk_run ack-only "$WORK/distinct.txt"; RSS[ack-only]=$(peak_rss); NOTE[ack-only]="no parse, no store"
stop

# 2. Distinct notifications.
start_pgnoti "$WORK/distinct"
wrk_run distinct "$WORK/distinct.txt"; RSS[distinct]=$(peak_rss)
lag=$(catch_up "$WORK/distinct/var/queue/new" "$OK_REQUESTS")
NOTE[distinct]="$OK_REQUESTS events; queue caught up ${lag} s after the load"
DISTINCT_RPS=${RPS[distinct]}
stop

# 3. Retry storm: 90 % duplicates.
start_pgnoti "$WORK/retry"
wrk_run retry-storm "$WORK/retry.txt"; RSS[retry-storm]=$(peak_rss)
NOTE[retry-storm]="$(files_in "$WORK/retry/var/queue/new") new events, the rest duplicates"
stop

# 4. Steady 500 req/s, fixed schedule.
start_pgnoti "$WORK/steady"
load_run steady-500 500 20 "$WORK/steady.txt" 16; RSS[steady-500]=$(peak_rss)
NOTE[steady-500]="20 s offered at 500 req/s; latency from the intended send time"
stop

# 5. 30 s at 80 % of the distinct rate, then how long the queue takes to catch up.
RATE80=$(awk -v r="$DISTINCT_RPS" 'BEGIN { printf "%d", r * 0.8 }')
"$BENCH" bodies $((RATE80 * 30)) "$WORK/eighty.txt" --first 3000000
start_pgnoti "$WORK/eighty"
load_run load-80pct "$RATE80" 30 "$WORK/eighty.txt" 64; RSS[load-80pct]=$(peak_rss)
lag=$(catch_up "$WORK/eighty/var/queue/new" "$OK_REQUESTS")
NOTE[load-80pct]="30 s offered at $RATE80 req/s; queue caught up ${lag} s after the load"
stop

# 6. Outbox drain: 100,000 events committed with no relay running, then the daemon starts.
mkdir -p "$WORK/drain/var"
"$BENCH" seed --database "$WORK/drain/var/pgnoti.sqlite" --count 100000 >&2
sync
t0=$(date +%s.%N)
(cd "$WORK/drain" && exec "$PG" serve --listen "127.0.0.1:$PORT" --admin-listen off >"$WORK/drain/log" 2>&1) & PID=$!
mkdir -p "$WORK/drain/var/queue/new"
catch_up "$WORK/drain/var/queue/new" 100000 >/dev/null
t1=$(date +%s.%N)
RPS[drain-100k]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", 100000 / (b - a) }')
P50[drain-100k]=-; P99[drain-100k]=-; BAD[drain-100k]=0; RSS[drain-100k]=$(peak_rss)
NOTE[drain-100k]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "events/s; 100,000 filed %.1f s after the daemon started", b - a }')
stop

echo
echo "| load | 2xx req/s | p50 ms | p99 ms | non-2xx or errors | peak RSS MB | |"
echo "|---|---|---|---|---|---|---|"
for r in ack-only distinct retry-storm steady-500 load-80pct drain-100k; do
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$r" "$(printf '%.0f' "${RPS[$r]:-0}")" "${P50[$r]:--}" "${P99[$r]:--}" "${BAD[$r]:-?}" "${RSS[$r]:-?}" "${NOTE[$r]:-}"
done

SBS=../shared/bench/side_by_side.sh
if [ -x "$SBS" ] || [ -f "$SBS" ]; then
    echo
    echo "side by side, distinct:"
    bash "$SBS" "$PG" "$SECS" "$CONNS" 0
    echo
    echo "side by side, retry storm (90 % duplicates):"
    bash "$SBS" "$PG" "$SECS" "$CONNS" 0.9
else
    echo "($SBS not found: peer ratios skipped)"
fi
