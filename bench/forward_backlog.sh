#!/usr/bin/env bash
# `pgnoti forward` from a backlog: deliveries per second from a queue that already holds N
# events (default 1,000 and 20,000), to a local receiver that answers 204
# (bench/forward_receiver.py). Loopback only; each run stops by itself after MAX_SECONDS.
#
#   bash bench/forward_backlog.sh [N ...]
#
# PGNOTI=path/to/pgnoti uses that binary instead of building a release one; STRACE=1 also counts
# the forwarder's getdents64 calls (directory listings) with strace; CONCURRENCY (4) and
# MAX_SECONDS (300) as named. DATABASE_URL=postgresql://… delivers from a PostgreSQL database
# instead (a cluster's delivery queue): each size gets a database of its own on that server,
# migrated by `pgnoti migrate`, its outbox seeded with the same events (`psql` needed).
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 20000)
max_seconds=${MAX_SECONDS:-300}
concurrency=${CONCURRENCY:-4}
if [ -z "${PGNOTI:-}" ]; then
    swift build -c release --product pgnoti >&2
    PGNOTI="$(swift build -c release --show-bin-path)/pgnoti"
fi

work=$(mktemp -d /tmp/pgnoti-forward-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# N events in new/ (or, with a third argument, as COPY rows for the outbox on stdout), named as
# the relay names them (<micros>-<id>.json, filing order); one in ten is a second event (a
# cancel) of an earlier order, so lanes with two events are exercised.
seed() {
    python3 - "$@" <<'PY'
import json, os, sys, uuid
queue, n = sys.argv[1], int(sys.argv[2])
copy = len(sys.argv) > 3
new = os.path.join(queue, "new")
os.makedirs(new, exist_ok=True)
base = 1_700_000_000_000_000
for i in range(n):
    order = i - 5 if i % 10 == 9 else i
    canceled = order != i
    event = {
        "amount": 45000, "approved_at": "2024-11-24T10:30:55+09:00",
        "buyer": {"name": "임도윤", "phone": "01000001032", "user_id": "staff01"},
        "goods_name": "세차 이용권 5회", "id": str(uuid.uuid4()),
        "kind": "payment.canceled" if canceled else "payment.approved",
        "merchant_id": "SMTPAY001m", "order_id": f"BENCH-{order:08d}", "pay_method": "CARD",
        "provider": "smartro", "result_code": "3001", "result_message": "카드 결제 성공",
        "schema": "v1", "test": True, "tid": f"T{order:019d}",
    }
    name = f"{base + i:017d}-{event['id']}.json"
    if copy:
        payload = json.dumps(event, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        print(f"{name}\t\\\\x{payload.hex()}\t0\t{base + i}")
        continue
    with open(os.path.join(queue, name), "w") as f:
        json.dump(event, f, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    os.rename(os.path.join(queue, name), os.path.join(new, name))
PY
}

printf 'whsec_%s\n' "$(head -c 32 /dev/urandom | base64)" > "$work/secret"
echo "| backlog | delivered | sent twice | s first→last | deliveries/s | s from start | getdents64 | complete |"
echo "|---|---|---|---|---|---|---|---|"
results=()
for n in "${sizes[@]}"; do
    dir="$work/$n"
    mkdir -p "$dir/queue"
    storage="database = \"$dir/pgnoti.sqlite\"
queue = \"$dir/queue\""
    if [ -n "${DATABASE_URL:-}" ]; then
        name="pgnoti_fwd_bench_$n"
        url="${DATABASE_URL%/*}/$name"
        psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >&2
        storage="database = \"$url\""
        printf '%s\nlog_level = "warning"\n' "$storage" > "$dir/migrate.toml"
        "$PGNOTI" migrate --config "$dir/migrate.toml" >&2
        seed "$dir/queue" "$n" copy | psql "$url" -qc "\\copy outbox (file_name, payload, notification_id, queued_at) FROM STDIN"
    else
        seed "$dir/queue" "$n"
    fi
    python3 bench/forward_receiver.py --port-file "$dir/port" --expect "$n" --max-seconds "$max_seconds" \
        > "$dir/receiver.json" &
    receiver=$!
    pids+=("$receiver")
    for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
    cat > "$dir/pgnoti.toml" <<TOML
$storage
log_level = "info"

[forward]
url = "http://127.0.0.1:$(cat "$dir/port")/hook"
secret_file = "$work/secret"
concurrency = $concurrency
TOML
    start=$(date +%s.%N)
    if [ "${STRACE:-0}" = 1 ]; then
        strace --seccomp-bpf -f -c -e trace=getdents64 -o "$dir/strace" \
            "$PGNOTI" forward --config "$dir/pgnoti.toml" > "$dir/forward.log" 2>&1 &
    else
        "$PGNOTI" forward --config "$dir/pgnoti.toml" > "$dir/forward.log" 2>&1 &
    fi
    forwarder=$!
    pids+=("$forwarder")
    wait "$receiver" || true
    end=$(date +%s.%N)
    # Under strace, $forwarder is strace: stop the forwarder itself, so strace prints its count.
    target=$forwarder
    if [ "${STRACE:-0}" = 1 ]; then target=$(pgrep -P "$forwarder" | head -1 || echo "$forwarder"); fi
    kill -TERM "$target" 2>/dev/null || true
    wait "$forwarder" 2>/dev/null || true
    getdents=-
    if [ -f "$dir/strace" ]; then
        getdents=$(awk '$NF == "getdents64" { print $4 }' "$dir/strace")
    fi
    row=$(python3 - "$dir/receiver.json" "$n" "$start" "$end" "$getdents" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n, start, end, getdents = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
print(f"| {n:,} | {r['distinct']:,} | {r['duplicates']} | {r['seconds_first_to_last']:.2f} | "
      f"{r['per_second']:,.0f} | {end - start:.2f} | {getdents} | {'yes' if r['complete'] else 'NO (stopped at MAX_SECONDS)'} |")
print(r["per_second"])
PY
)
    echo "$row" | head -1
    results+=("$(echo "$row" | tail -1)")
    rm -rf "$dir"
done
if [ ${#results[@]} -ge 2 ]; then
    python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'ratio {sys.argv[4]} / {sys.argv[3]}: {b / a:.2f}' if a else 'ratio: -')" \
        "${results[0]}" "${results[-1]}" "${sizes[0]}" "${sizes[-1]}"
fi
