#!/usr/bin/env bash
# Fuzzes the pure core with libFuzzer: form decoding, CP949 decoding, field lookup and each
# provider's interpret/verify (the three notify PGs, Toss rows, Payup documents), seeded from
# fixtures/.
#
#   bash fuzz/run.sh SECONDS     # SECONDS in total, split over the targets
#
# Built with this toolchain's `swiftc -sanitize=fuzzer,address` (Linux; libFuzzer ships with
# the Swift toolchain's clang runtime). Crashes land in fuzz/out/<target>/crash-*; the run
# exits non-zero if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-60}
targets=(form cp949 fields smartro tomatopay innopay toss payup)
work=.build-fuzz
mkdir -p "$work" fuzz/out
bin="$work/pgnoti-fuzz"
sources=$(find Sources/PGNotiCore -name '*.swift' | sort)
if [ ! -x "$bin" ] || [ -n "$(find Sources/PGNotiCore fuzz/Targets.swift -newer "$bin" -name '*.swift' | head -1)" ]; then
    echo "building $bin"
    # -Onone keeps the build quick; the sanitizers do the finding.
    swiftc -sanitize=fuzzer,address -parse-as-library -Onone -module-name PGNotiFuzz \
        -I Sources/CPGNotiOpenSSL $sources fuzz/Targets.swift -lcrypto -o "$bin" 2>&1 \
        | { grep -v "Cannot export local symbol" || true; } >&2
fi

# Seeds: the bodies of the fixture requests, and for the field targets their pairs.
corpus="$work/corpus"
rm -rf "$corpus" && mkdir -p "$corpus"
for f in fixtures/toss/*.dat fixtures/toss/*/*.dat; do
    cp "$f" "$corpus/toss-$(basename "$(dirname "$f")")-$(basename "$f")"
done
printf '%s' '{"operation":"approve","intent_id":"i1","merchant_id":"m","order_number":"o","amount":"1004","timestamp":"20261124103000","outcome":"response","response":{"responseCode":"0000","transactionId":"t1","cardNo":"9490191412341234"}}' > "$corpus/payup-approve.json"
for f in fixtures/*/*.http; do
    python3 - "$f" "$corpus/$(basename "$(dirname "$f")")-$(basename "$f" .http)" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(data.split(b"\r\n\r\n", 1)[1])
PY
done

per=$(( total / ${#targets[@]} ))
[ "$per" -lt 1 ] && per=1
status=0
for t in "${targets[@]}"; do
    out="fuzz/out/$t"
    mkdir -p "$out" "$work/corpus-$t"
    cp -n "$corpus"/* "$work/corpus-$t/" 2>/dev/null || true
    echo "--- $t (${per}s)"
    if ! PGNOTI_FUZZ_TARGET=$t "$bin" -max_total_time="$per" -max_len=65536 -timeout=10 \
        -artifact_prefix="$out/" -print_final_stats=1 "$work/corpus-$t" 2>"$out/log.txt"; then
        status=1
        echo "CRASH in $t: see $out/"
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/log.txt" | sed "s/^/  /" || true
done
exit $status
