#!/usr/bin/env bash
# Hostile load for a minute against a release build, genuine notifications alongside; then a
# genuine Smartro notification refused under a wrong key is released after the fix.
#
#   bash bench/hostile.sh [seconds=60] [slow-clients=500]     (PGNOTI_BIN=… to skip the build)
#
# Prints the genuine ACK latency without and with the hostile load, what the hostile requests
# got, and checks: the daemon is still up, no hostile request produced an event, every genuine
# one did, and the released notification is in the queue once.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-60}
SLOW=${2:-500}
PORT=${PORT:-18191}
# PGNOTI_BIN=path uses a binary built elsewhere (e.g. the .deb's, from packaging/build-deb.sh).
if [ -n "${PGNOTI_BIN:-}" ]; then
    BIN=$PGNOTI_BIN
else
    swift build -c release --product pgnoti >/dev/null
    BIN=$(swift build -c release --show-bin-path)/pgnoti
fi
WORK=$(mktemp -d /tmp/pgnoti-hostile.XXXXXX)
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
SECRET=hostile-bench-secret-$(date +%s)
WRONG_KEY="1$(grep -o '"0/4GF[^"]*"' Sources/PGNotiConfig/Settings/SmartroSettings.swift | tr -d '"' | cut -c2-)"
RIGHT_KEY=$(grep -o '"0/4GF[^"]*"' Sources/PGNotiConfig/Settings/SmartroSettings.swift | tr -d '"')
# The right key during the load, so flipped posts meet the StateCd check and replays dedup;
# the wrong one only for the release step at the end.
printf 'SMTPAY001m=%s\n' "$RIGHT_KEY" > "$WORK/keys"
cat > "$WORK/pgnoti.toml" <<TOML
listen = "127.0.0.1:$PORT"
admin_listen = "off"
database = "$WORK/state/pgnoti.sqlite"
queue = "$WORK/state/queue"
[limits]
read_timeout_seconds = 10
[smartro]
merchant_keys_file = "$WORK/keys"
accept_test_merchants = true
[tomatopay]
path_secret = "$SECRET"
[innopay]
path_secret = "$SECRET-innopay"
TOML
ulimit -n 65536 2>/dev/null || true
"$BIN" serve --config "$WORK/pgnoti.toml" > "$WORK/daemon.log" 2>&1 &
PID=$!
for _ in $(seq 100); do grep -q '"listening"' "$WORK/daemon.log" && break; sleep 0.1; done

echo "pgnoti hostile bench: $(date -u +%FT%TZ), $(nproc) cores, ${SECONDS_RUN}s, $SLOW slow clients"
echo "--- baseline: genuine notifications only (10 s)"
python3 bench/hostile.py --port "$PORT" --secret "$SECRET" --seconds 10 --baseline | python3 -c 'import json,sys; g=json.load(sys.stdin)["genuine"]; print("genuine ACK latency: p50 %s ms, p99 %s ms, max %s ms (%d/%d ACKed)" % (g["p50_ms"], g["p99_ms"], g["max_ms"], g["acked"], g["sent"]))'
base=$(ls "$WORK/state/queue/new" | wc -l)
echo "--- hostile: garbage, oversized, slow, forged, flipped, replayed + genuine"
python3 bench/hostile.py --port "$PORT" --secret "$SECRET" --seconds "$SECONDS_RUN" --slow "$SLOW" > "$WORK/hostile.json" || true
python3 - "$WORK/hostile.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
g = r["genuine"]
print("genuine ACK latency: p50 %s ms, p99 %s ms, max %s ms (%d/%d ACKed)" % (g["p50_ms"], g["p99_ms"], g["max_ms"], g["acked"], g["sent"]))
for kind, statuses in sorted(r["hostile"].items()):
    print("  %-10s %s" % (kind, ", ".join("%s×%d" % (s, n) for s, n in sorted(statuses.items()))))
PY
sleep 2
kill -0 $PID && echo "daemon: still running, RSS $(awk '/VmRSS/ {print $2}' /proc/$PID/status) KiB, peak $(awk '/VmHWM/ {print $2}' /proc/$PID/status) KiB"
genuine=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["genuine"]["acked"])' "$WORK/hostile.json")
files=$(ls "$WORK/state/queue/new" | wc -l)
python3 - "$WORK/state/queue/new" "$base" "$genuine" <<'PY'
import json, os, sys
directory, base, genuine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
events = [json.load(open(os.path.join(directory, f))) for f in os.listdir(directory)]
hostile = [e for e in events if e["tid"].startswith("forged") or e["tid"] == "SMTPAY001m01012411231530009999"]
replayed = [e for e in events if e["tid"] == "SMTPAY001m01012411231530008888"]
print("events: %d filed = %d baseline + %d genuine + %d replayed (once); from forged or flipped requests: %d"
      % (len(events), base, genuine, len(replayed), len(hostile)))
PY

# SIGHUP re-reads the keys file; wait for the daemon to say it did.
reload() {
    local before
    before=$(grep -c '"reloaded configuration"' "$WORK/daemon.log" || true)
    kill -HUP $PID
    for _ in $(seq 50); do
        [ "$(grep -c '"reloaded configuration"' "$WORK/daemon.log" || true)" -gt "$before" ] && return
        sleep 0.1
    done
    echo "the daemon did not reload" >&2
    exit 1
}

echo "--- release after a key fix"
printf 'SMTPAY001m=%s\n' "$WRONG_KEY" > "$WORK/keys"
reload
body=$(python3 -c 'import sys; sys.path.insert(0,"bench"); import hostile; sys.stdout.write(hostile.smartro_body("SMTPAY001m01012411231530007777").decode())')
curl -s -o /dev/null -w "posted under the wrong key: %{http_code}\n" -H "Content-Type: application/x-www-form-urlencoded" --data-binary "$body" "http://127.0.0.1:$PORT/notify/smartro"
printf 'SMTPAY001m=%s\n' "$RIGHT_KEY" > "$WORK/keys"
reload
id=$("$BIN" quarantine list --config "$WORK/pgnoti.toml" --reason signature_mismatch --json | python3 -c 'import json,sys; print([json.loads(l)["id"] for l in sys.stdin if "7777" in l][0])')
"$BIN" quarantine release "$id" --config "$WORK/pgnoti.toml" 2>/dev/null
"$BIN" quarantine release "$id" --config "$WORK/pgnoti.toml" 2>/dev/null
sleep 1.5
echo "queue files for the released TID: $(grep -l 'SMTPAY001m01012411231530007777' "$WORK"/state/queue/new/* | wc -l)"
