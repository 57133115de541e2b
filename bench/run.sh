#!/usr/bin/env bash
# Load benchmark: a release build of pgnoti on loopback, driven by wrk. Bounded in time, local only.
# Usage: bench/run.sh [seconds] [connections]   (needs `apt-get install wrk`)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-15}
CONNS=${2:-32}
PORT=${PORT:-18181}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
swift build -c release --product pgnoti >/dev/null
BIN=$(swift build -c release --show-bin-path)/pgnoti
WORK=$(mktemp -d /tmp/pgnoti-bench.XXXXXX)
mkdir -p "$WORK/out"
printf 'SMTPAY001m=%s\n' "$(grep -o '"0/4GF[^"]*"' Sources/PGNotiServer/Config.swift | tr -d '"')" > "$WORK/keys"
cat > "$WORK/pgnoti.toml" <<TOML
listen = "127.0.0.1:$PORT"
database = "$WORK/state/pgnoti.sqlite"
queue = "$WORK/state/queue"
log_level = "info"
[smartro]
merchant_keys_file = "$WORK/keys"
TOML
"$BIN" serve --config "$WORK/pgnoti.toml" > "$WORK/out/daemon.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '"listening"' "$WORK/out/daemon.log" && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
hwm() { awk '/VmHWM/ {print $2}' /proc/$PID/status; }
echo "pgnoti bench: $(date -u +%FT%TZ) $(nproc) cores, ${SECONDS_PER_RUN}s per run, $CONNS connections"
echo "idle RSS: $(rss) KiB"
echo "--- distinct notifications (every request commits, fsync, files an event)"
wrk -t2 -c"$CONNS" -d"${SECONDS_PER_RUN}s" --latency -s bench/distinct.lua "http://127.0.0.1:$PORT" | sed -n '/Latency Distribution/,$p'
echo "RSS after: $(rss) KiB, peak: $(hwm) KiB"
# The relay files events behind the ACKs; measure how long the queue takes to catch up,
# and let it finish so it does not compete with the next run.
accepted=$(grep -c '"outcome":"accepted"' "$WORK/out/daemon.log" || true)
filed_at_end=$(ls "$WORK/state/queue/new" | wc -l)
start=$(date +%s.%N)
for _ in $(seq 1200); do
    [ "$(ls "$WORK/state/queue/new" | wc -l)" -ge "$accepted" ] && break
    sleep 0.1
done
end=$(date +%s.%N)
filed=$(ls "$WORK/state/queue/new" | wc -l)
echo "accepted: $accepted, filed when the load stopped: $filed_at_end, filed now: $filed"
awk -v a="$filed_at_end" -v f="$filed" -v s="$start" -v e="$end" -v d="$SECONDS_PER_RUN" \
    'BEGIN { printf "queue caught up %.1fs after the load; filing rate ~%.0f events/s\n", e - s, f / (d + e - s) }'
echo "--- PG retry storm (same signed Smartro approval; dedup, no new event)"
curl -s -o /dev/null --data-binary @<(sed -n '/^\r$/,$p' fixtures/smartro/approve-card.http | tail -n +2) -H 'Content-Type: application/x-www-form-urlencoded' "http://127.0.0.1:$PORT/notify/smartro" || true
wrk -t2 -c"$CONNS" -d"${SECONDS_PER_RUN}s" --latency -s bench/retry.lua "http://127.0.0.1:$PORT" -- "$PWD/fixtures/smartro/approve-card.http" | sed -n '/Latency Distribution/,$p'
echo "RSS after: $(rss) KiB, peak: $(hwm) KiB"
kill -TERM $PID; wait $PID || true
rm -rf "$WORK"
