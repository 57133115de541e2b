#!/usr/bin/env bash
# End-to-end test of the .deb under a real systemd: Debian 12 booted in systemd-nspawn.
#
#   bash packaging/systemd-test.sh                 # builds the .deb first (bash packaging/build-deb.sh)
#   bash packaging/systemd-test.sh --deb PATH      # tests that .deb
#   bash packaging/systemd-test.sh --deb PATH --keep   # leaves the root filesystem for a post-mortem
#
# Needs root, debootstrap and systemd-container (apt-get install debootstrap systemd-container).
# It installs the .deb in a fresh Debian 12 (bookworm) minbase root, configures Smartro and
# Innopay the way README.md tells an operator to, and checks what systemd does with the units:
# start, ACKs, queue, forwarder, reload with a rotated Smartro key, status, journal, watchdog,
# the operator commands, the backup unit's sandbox and timer, a restore, an upgrade and a
# removal. Every wait has a deadline; after the .deb is built it takes about a minute (plus
# debootstrap, about two, on the first run of a machine). One line per check,
# `ok - …` or `not ok - …`, then `N passed, N failed`; exit 0 only if every check passed.
#
# How it boots (facts in shared/SYSTEMD-NSPAWN.md): PID 1 on these machines is not systemd,
# so the script puts itself in a cgroup of its own, boots the root with
# `systemd-nspawn -b --keep-unit --register=no --private-network` and reaches it with
# `nsenter -t <container's systemd> -a`. It never boots anything against the host's root.
# The container has its own network namespace: only its loopback, no traffic leaves it.
#
# The root filesystem comes from the Debian mirror apt already uses (read from
# /etc/apt/sources.list.d/ at run time) and is cached as a tarball under /var/tmp, keyed on the
# suite and the package list; each run unpacks a fresh copy under /var/tmp and deletes it.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD
exec </dev/null

deb=""
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --deb) [ $# -ge 2 ] || { echo "usage: systemd-test.sh [--deb PATH] [--keep]" >&2; exit 2; }; deb=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "usage: systemd-test.sh [--deb PATH] [--keep]" >&2; exit 2 ;;
    esac
done

die() { echo "systemd-test.sh: $*" >&2; exit 1; }
note() { echo "# $*"; }
[ "$(id -u)" = 0 ] || die "must run as root (it boots a container)"
for tool in debootstrap systemd-nspawn nsenter python3 tar timeout setsid; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install debootstrap systemd-container)"
done

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
# check DESCRIPTION COMMAND…: one check line from a command's exit status (its output dropped).
check() {
    local description=$1
    shift
    if "$@" >/dev/null; then ok "$description"; else not_ok "$description"; fi
}
# wait_until SECONDS COMMAND…: polls every 0.3 s until COMMAND succeeds or the deadline passes.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.3
    done
}
started=$SECONDS
# redact: the secrets this run generated never reach the output.
secrets_file=""
redact() {
    python3 -c '
import sys
secrets = [l.strip() for l in open(sys.argv[1]) if l.strip()] if len(sys.argv) > 1 else []
for line in sys.stdin:
    for secret in secrets:
        line = line.replace(secret, "***")
    sys.stdout.write(line)' ${secrets_file:+"$secrets_file"}
}
# finish: the summary line, and the exit status (0 only if every check passed).
finish() {
    if [ "$failed" != 0 ] && [ -s "$work/stderr.log" ]; then
        note "the last messages on stderr inside the container:"
        tail -n 40 "$work/stderr.log" | redact | sed 's/^/#   /'
    fi
    note "systemd test took $((SECONDS - started)) s"
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ] && [ "$passed" -gt 0 ]
    exit
}

# --- the .deb ---------------------------------------------------------------------------------
if [ -z "$deb" ]; then
    t=$SECONDS
    deb=$(bash packaging/build-deb.sh | tail -n 1) || die "packaging/build-deb.sh failed"
    note "built $deb in $((SECONDS - t)) s"
fi
[ -f "$deb" ] || die "no .deb at $deb"
deb=$(readlink -f "$deb")

# --- the root filesystem ----------------------------------------------------------------------
suite=bookworm
include=systemd,systemd-sysv,dbus,procps,python3,libsqlite3-0,libssl3,zlib1g,libstdc++6,libgcc-s1
cache=/var/tmp/pgnoti-nspawn-root-$suite-$(printf '%s minbase %s\n' "$suite" "$include" | sha256sum | cut -c1-12).tar
work=$(mktemp -d /var/tmp/pgnoti-systemd-test.XXXXXX) || die "mktemp failed"
chmod 0700 "$work"
root=$work/root
mkdir "$root"

# Whatever happens from here on: power the container off, leave our cgroups, delete the copy.
cgroups=()
origins=()
nspawn_pid=""
leader=""
cleanup() {
    local code=$?
    trap - EXIT INT TERM
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        [ -n "$leader" ] && timeout 20 nsenter -t "$leader" -a systemctl poweroff >/dev/null 2>&1
        local deadline=$((SECONDS + 30))
        while kill -0 "$nspawn_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.3; done
        if kill -0 "$nspawn_pid" 2>/dev/null; then
            kill -TERM "$nspawn_pid" 2>/dev/null
            sleep 3
            kill -KILL "$nspawn_pid" 2>/dev/null
        fi
        wait "$nspawn_pid" 2>/dev/null
    fi
    # Back to where the shell came from, then the cgroups this script made, deepest first.
    local i
    for i in "${!cgroups[@]}"; do
        echo $$ >"${origins[$i]}/cgroup.procs" 2>/dev/null
        find "${cgroups[$i]}" -depth -type d -exec rmdir {} \; 2>/dev/null
        [ -d "${cgroups[$i]}" ] && echo "systemd-test.sh: could not remove ${cgroups[$i]}" >&2
    done
    if [ "$keep" = 1 ]; then
        echo "# kept $root" >&2
    else
        rm -rf "$work"
    fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# The mirror apt already uses for the suite (deb822 .sources or one-line .list), never a
# security or updates suite. PGNOTI_DEBIAN_MIRROR overrides it.
apt_mirror() {
    python3 - "$suite" <<'PY'
import glob, sys
suite = sys.argv[1]
found = []
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in open(path, encoding="utf-8", errors="replace").read().split("\n\n"):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
            continue
        if suite in fields.get("suites", "").split():
            found += fields.get("uris", "").split()
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.list")) + ["/etc/apt/sources.list"]:
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = line.split("#", 1)[0].split()
        if words[:1] != ["deb"]:
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 2 and words[1] == suite:
            found.append(words[0])
for uri in found:
    if uri.startswith(("http://", "https://")):
        print(uri)
        break
PY
}

t=$SECONDS
if [ -f "$cache" ]; then
    tar -C "$root" --numeric-owner -xpf "$cache" || die "cannot unpack $cache"
    note "root filesystem unpacked from the cache $cache in $((SECONDS - t)) s"
else
    mirror=${PGNOTI_DEBIAN_MIRROR:-$(apt_mirror)}
    [ -n "$mirror" ] || die "no $suite mirror found in /etc/apt/sources.list.d/ (set PGNOTI_DEBIAN_MIRROR)"
    note "debootstrap $suite minbase from the mirror apt uses (no cache yet: about a minute)"
    if ! timeout 900 debootstrap --variant=minbase --include="$include" "$suite" "$root" "$mirror" \
        >"$work/debootstrap.log" 2>&1; then
        tail -n 20 "$work/debootstrap.log" >&2
        die "debootstrap failed"
    fi
    rm -f "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" --numeric-owner -cpf "$cache.$$" . && mv "$cache.$$" "$cache" || rm -f "$cache.$$"
    note "debootstrap took $((SECONDS - t)) s; cached as $cache"
fi

# What this run adds to the fresh copy: the .deb, the fixtures, a webhook receiver.
echo pgnoti-test >"$root/etc/hostname"
install -d -m 0700 "$root/root/pgnoti-test"
cp "$deb" "$root/root/pgnoti-test/pgnoti.deb"
cp -r fixtures "$root/root/pgnoti-test/fixtures"
install -d "$root/usr/local/lib/pgnoti-test"
cat >"$root/usr/local/lib/pgnoti-test/receiver.py" <<'PY'
# A merchant app stand-in: takes pgnoti-forward's webhooks on 127.0.0.1:8000, checks the
# Standard Webhooks signature with /etc/pgnoti/forward-secret, answers 204, and appends
# {"id", "kind", "verified"} per request to /var/lib/pgnoti-test-receiver/received.
import base64, hashlib, hmac, http.server, json

LOG = "/var/lib/pgnoti-test-receiver/received"
secret = open("/etc/pgnoti/forward-secret").read().strip()
key = base64.b64decode(secret.removeprefix("whsec_"))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        wid = self.headers.get("webhook-id", "")
        signed = f"{wid}.{self.headers.get('webhook-timestamp', '')}.".encode() + body
        expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        verified = any(hmac.compare_digest(expected, s) for s in self.headers.get("webhook-signature", "").split())
        try:
            kind = json.loads(body).get("kind")
        except ValueError:
            kind = None
        with open(LOG, "a") as log:
            log.write(json.dumps({"id": wid, "kind": kind, "verified": verified}) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", 8000), Handler).serve_forever()
PY
cat >"$root/etc/systemd/system/pgnoti-test-receiver.service" <<'UNIT'
[Unit]
Description=webhook receiver for packaging/systemd-test.sh
[Service]
ExecStart=/usr/bin/python3 /usr/local/lib/pgnoti-test/receiver.py
StateDirectory=pgnoti-test-receiver
UNIT

# --- boot -------------------------------------------------------------------------------------
# A cgroup of our own in each hierarchy, so that nspawn's stay out of the host's cgroup root.
# (Where the shell was is noted, to go back there before removing them.)
name=pgnoti-systemd-test-$$
own_cgroup() { # HIERARCHY-MOUNT PATH-IN-/proc/self/cgroup
    local origin=$1${2%/}
    [ -d "$origin" ] || origin=$1
    mkdir -p "$1/$name" && echo $$ >"$1/$name/cgroup.procs" || die "cannot use the cgroup $1/$name"
    cgroups+=("$1/$name")
    origins+=("$origin")
}
[ -d /sys/fs/cgroup/systemd ] && own_cgroup /sys/fs/cgroup/systemd "$(sed -n 's/^[0-9]*:name=systemd://p' /proc/self/cgroup)"
[ -d /sys/fs/cgroup/unified ] && own_cgroup /sys/fs/cgroup/unified "$(sed -n 's/^0:://p' /proc/self/cgroup)"
if [ ${#cgroups[@]} -eq 0 ] && [ -f /sys/fs/cgroup/cgroup.procs ]; then
    own_cgroup /sys/fs/cgroup "$(sed -n 's/^0:://p' /proc/self/cgroup)"
fi

t=$SECONDS
setsid systemd-nspawn -q -D "$root" -b -M pgnoti-test --register=no --keep-unit --private-network \
    --console=pipe >"$work/nspawn.log" 2>&1 &
nspawn_pid=$!
find_leader() {
    local child
    for child in $(cat /proc/"$nspawn_pid"/task/*/children 2>/dev/null); do
        if [ "$(cat /proc/"$child"/comm 2>/dev/null)" = systemd ]; then
            leader=$child
            return 0
        fi
    done
    return 1
}
booted() { [ -e "/proc/$leader/root/run/systemd/private" ]; }
if ! wait_until 30 find_leader || ! wait_until 30 booted; then
    tail -n 30 "$work/nspawn.log" >&2
    die "the container did not boot"
fi
# c COMMAND…: runs COMMAND inside the container, with a clean environment and a deadline; its
# stderr goes to a log that finish prints (secrets redacted) when a check failed. c2 COMMAND…:
# the same with stderr on stdout, for the commands whose messages a check reports.
c() {
    if [ -n "${C_MERGE:-}" ]; then
        timeout "${C_TIMEOUT:-60}" nsenter -t "$leader" -a \
            env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@" 2>&1
    else
        { echo "\$ $*"; } >>"$work/stderr.log"
        timeout "${C_TIMEOUT:-60}" nsenter -t "$leader" -a \
            env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@" 2>>"$work/stderr.log"
    fi
}
c2() { C_MERGE=1 c "$@"; }
state=$(C_TIMEOUT=60 c systemctl is-system-running --wait 2>&1)
note "container booted in $((SECONDS - t)) s (system $state)"
case "$state" in
    running | degraded) ;;
    *) tail -n 30 "$work/nspawn.log" >&2; die "the container's systemd is $state" ;;
esac
if [ "$state" = degraded ]; then
    note "failed units in the container: $(c systemctl --failed --plain --no-legend | awk '{print $1}' | xargs)"
fi

# why UNIT: its last journal line, when it is not active.
why() {
    c systemctl is-active --quiet "$1" ||
        printf '; %s' "$(c journalctl -b -u "$1" -o cat --no-pager | grep -v "^$1\(.service\)\?: \|^Starting \|^Stopped \|^Stopping \|^Failed to start " | tail -n 1 | cut -c1-200)"
}

# --- install ----------------------------------------------------------------------------------
out=$(c2 dpkg -i /root/pgnoti-test/pgnoti.deb)
rc=$?
check "dpkg -i installs the .deb (exit $rc)" [ "$rc" = 0 ]
[ "$rc" = 0 ] || { printf '%s\n' "$out" | tail -n 20 | sed 's/^/#   /'; finish; }
check "the package installs /usr/bin/pgnoti, pgnoti.service and pgnoti-forward.service" \
    eval 'c test -x /usr/bin/pgnoti && c systemctl cat pgnoti.service pgnoti-forward.service >/dev/null'
c test -x /usr/bin/pgnoti || finish
check "the package creates the pgnoti user" eval 'c id pgnoti >/dev/null'
check "postinst does not start the daemon (the shipped config enables no PG)" \
    eval '! c systemctl is-active --quiet pgnoti'

# The shipped configuration, untouched: starts cleanly and refuses every notify URL.
# post FILE URL: replays a fixture inside the container; sets status and body. A URL with a
# path secret is never printed.
post() {
    local out
    out=$(c2 /usr/bin/pgnoti send "$1" --to "$2")
    status=$(printf '%s\n' "$out" | sed -n 1p)
    body=$(printf '%s\n' "$out" | sed -n 2p)
}
fx=/root/pgnoti-test/fixtures
c systemctl start pgnoti
check "systemctl start pgnoti with the shipped config ($(c systemctl is-active pgnoti)$(why pgnoti))" c systemctl is-active --quiet pgnoti
post $fx/smartro/approve-card.http http://127.0.0.1:8080
check "with no PG enabled, a Smartro post gets 404 (got $status)" [ "$status" = 404 ]

# --- configure Smartro, Innopay and the forwarder as README.md says ---------------------------
smartro_key=$(sed -n '/testKey =/,/"/p' Sources/PGNotiConfig/Settings/SmartroSettings.swift | grep -o '"[^"]*"' | tr -d '"' | head -n 1)
[ -n "$smartro_key" ] || die "cannot read SmartroSettings.testKey from Sources/PGNotiConfig/Settings/SmartroSettings.swift"
# Generated for this run only, never printed: the Innopay path secret, the forwarder's signing
# secret, and the "new" Smartro key the rotation switches to.
innopay_secret=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
new_key=$(python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(64)).decode())')
forward_secret=$(python3 -c 'import base64, secrets; print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())')
secrets_file=$work/secrets
printf '%s\n' "$innopay_secret" "$new_key" "$forward_secret" "${forward_secret#whsec_}" >"$secrets_file"
etc=$root/etc/pgnoti
# The .deb's tmpfiles.d creates these files 0640 root:pgnoti; writing into them keeps that.
printf 'SMTPAY001m=%s\n' "$smartro_key" >"$etc/smartro-merchant-keys"
printf '%s\n' "$innopay_secret" >"$etc/innopay-path-secret"
printf '%s\n' "$forward_secret" >"$etc/forward-secret"
check "the secret files are 0640 root:pgnoti" \
    [ "$(c stat -c '%a %U:%G' /etc/pgnoti/smartro-merchant-keys /etc/pgnoti/innopay-path-secret /etc/pgnoti/forward-secret | sort -u)" = "640 root:pgnoti" ]

# Uncomment [smartro] and [innopay] (and their merchant_keys_file / path_secret_file lines, if
# the shipped config has them), accept the PGs' published test merchants (the fixtures use
# them), and point [forward] at the receiver. Nothing else: allow_sources and merchants stay
# commented out.
cp "$etc/pgnoti.toml" "$work/pgnoti.toml.shipped"
# The shipped configuration (the same database and queue, no PG): for the checks about the state
# alone (backup sandbox, restore), apart from how the keys are loaded.
install -m 0600 "$etc/pgnoti.toml" "$etc/state-only-test.toml"   # /etc: pgnoti-backup.service has ProtectHome=yes
python3 - "$etc/pgnoti.toml" <<'PY'
import re, sys
path = sys.argv[1]
lines = open(path, encoding="utf-8").read().split("\n")
header = re.compile(r"^\s*(#\s*)?\[([a-z_.]+)\]\s*(#.*)?$")
assignment = re.compile(r"^\s*(#\s*)?([a-z_]+)\s*=\s*(.*)$")
# Per table: the keys to uncomment if the shipped file has them (commented out or not), and
# the values this test needs (set, or added right under the table's header).
uncomment = {
    "smartro": {"merchant_keys_file"},
    "innopay": {"path_secret_file"},
    "forward": {"secret_file"},
}
wanted = {
    "smartro": {"enabled": "true", "accept_test_merchants": "true"},
    "innopay": {"enabled": "true", "accept_test_merchants": "true"},
    "forward": {"url": '"http://127.0.0.1:8000/webhooks/pgnoti"'},
}
out, section, at, seen = [], None, {}, {}
for line in lines:
    m = header.match(line)
    if m:
        name, commented = m.group(2), bool(m.group(1))
        section = name if name in wanted else None
        if section:
            if section in at:
                section = None  # a second header of the same name: leave it alone
            else:
                line = f"[{section}]"
                at[section] = len(out)
                seen[section] = set()
        out.append(line)
        continue
    if section:
        a = assignment.match(line)
        if a and (a.group(2) in wanted[section] or a.group(2) in uncomment[section]):
            key = a.group(2)
            line = f"{key} = {wanted[section][key]}" if key in wanted[section] else line.lstrip("# \t")
            seen[section].add(key)
    out.append(line)
for name in sorted(at, key=at.get, reverse=True):
    added = [f"{k} = {v}    # added by packaging/systemd-test.sh" for k, v in wanted[name].items() if k not in seen[name]]
    out[at[name] + 1 : at[name] + 1] = added
for name in wanted:
    if name not in at:
        while out and not out[-1].strip():
            out.pop()
        out += ["", f"[{name}]"] + [f"{k} = {v}    # added by packaging/systemd-test.sh" for k, v in wanted[name].items()]
open(path, "w", encoding="utf-8").write("\n".join(out).rstrip("\n") + "\n")
PY
note "pgnoti.toml as configured (diff against the shipped one):"
diff -u "$work/pgnoti.toml.shipped" "$etc/pgnoti.toml" | tail -n +3 | grep '^[-+]' | sed 's/^/#   /'
grep -q '^merchant_keys_file' "$etc/pgnoti.toml" || note "the shipped config has no merchant_keys_file: keys come from the smartro-merchant-keys credential alone"

# journal_count PATTERN: lines of this boot's pgnoti journal matching PATTERN.
journal_count() { c journalctl -b -u pgnoti -o cat --no-pager 2>/dev/null | grep -c -- "$1"; }
# reload: systemctl reload pgnoti, then wait for the daemon's own line saying how it went.
reload_lines() { journal_count '"reloaded configuration"\|"reload refused'; }
reload_result=""
reload() {
    local before
    reload_result=""
    before=$(reload_lines)
    c systemctl reload pgnoti || return 1
    wait_until 15 eval '[ "$(reload_lines)" -gt "$before" ]' || return 1
    reload_result=$(c journalctl -b -u pgnoti -o cat --no-pager | grep '"reloaded configuration"\|"reload refused' | tail -n 1 |
        python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
print("reloaded configuration" if d["msg"] == "reloaded configuration" else "reload refused: %s: %s" % (d.get("key"), d.get("problem", "")[:150]))' 2>/dev/null)
    case "$reload_result" in "reloaded configuration"*) return 0 ;; *) return 1 ;; esac
}
innopay_url=http://127.0.0.1:8080/notify/innopay/$innopay_secret

# README "Installing (Debian 12)": fill the key files, uncomment the tables, reload.
check "the configured pgnoti.toml passes check-config as root (exit $(c pgnoti check-config --config /etc/pgnoti/pgnoti.toml >/dev/null 2>&1; echo $?))" \
    c pgnoti check-config --config /etc/pgnoti/pgnoti.toml
reload
check "systemctl reload takes the new config (${reload_result:-no reload line in the journal})" \
    eval 'case "$reload_result" in "reloaded configuration"*) true ;; *) false ;; esac'
post $fx/smartro/approve-card.http http://127.0.0.1:8080
check "after the reload, Smartro is enabled with the key file's key: approve-card gets 200 OK (got $status $body)" \
    [ "$status $body" = "200 OK" ]
if [ "$status $body" != "200 OK" ]; then
    note "restarting pgnoti so that the remaining checks run with the configuration loaded"
    c systemctl restart pgnoti
fi

# --- notifications ----------------------------------------------------------------------------
queue_new() { c sh -c 'ls /var/lib/pgnoti/queue/new/ 2>/dev/null | grep "\.json$"'; }
queue_count() { queue_new | grep -c .; }
post $fx/smartro/approve-card.http http://127.0.0.1:8080
check "Smartro approve-card is ACKed: 200 OK (got $status $body)" [ "$status $body" = "200 OK" ]
post $fx/smartro/approve-card.http http://127.0.0.1:8080
check "the same post again (a PG retry) is ACKed: 200 OK (got $status $body)" [ "$status $body" = "200 OK" ]
post $fx/smartro/reject-bad-signature.http http://127.0.0.1:8080
check "a bad SignValue gets 403, no ACK (got $status $body)" [ "$status" = 403 ]
post $fx/innopay/approve-card.http "$innopay_url"
check "Innopay approve-card on the path-secret URL is ACKed: 200 0000 (got $status $body)" [ "$status $body" = "200 0000" ]
post $fx/innopay/approve-card.http http://127.0.0.1:8080/notify/innopay
check "Innopay without the path secret gets 404 (got $status)" [ "$status" = 404 ]
post $fx/tomatopay/approve.http http://127.0.0.1:8080
check "TomatoPay, not enabled, gets 404 (got $status)" [ "$status" = 404 ]
wait_until 10 eval '[ "$(queue_count)" -ge 2 ]'
check "one event per accepted notification in /var/lib/pgnoti/queue/new/ ($(queue_count) files, 2 expected)" \
    [ "$(queue_count)" = 2 ]
# The files' group is new/'s (setgid where the package gives consumers a group of their own).
queue_group=$(c stat -c %G /var/lib/pgnoti/queue/new)
check "queue files are 0640 pgnoti:$queue_group ($(c sh -c 'stat -c "%a %U:%G" /var/lib/pgnoti/queue/new/*.json' | sort -u | xargs))" \
    [ "$(c sh -c 'stat -c "%a %U:%G" /var/lib/pgnoti/queue/new/*.json' | sort -u)" = "640 pgnoti:$queue_group" ]
metrics() { c python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9759/metrics", timeout=5).read().decode())'; }
readyz() { c python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9759/readyz", timeout=5).status)' 2>/dev/null; }
check "/readyz answers 200 on the admin listener" [ "$(readyz)" = 200 ]
check "/metrics counts the accepted Smartro notification" \
    eval 'metrics | grep "^pgnoti_requests_total{.*provider=\"smartro\".*} [1-9]"'
# Every metric the shipped alert rules use must be exported from the start.
alerts=/usr/share/doc/pgnoti/examples/pgnoti-alerts.yml
if c test -f $alerts; then
    needed=$(c cat $alerts | grep -o 'pgnoti_[a-z_]*' | sort -u)
    have=$(metrics | grep -o '^pgnoti_[a-z_]*' | sort -u)
    missing=$(comm -23 <(printf '%s\n' "$needed") <(printf '%s\n' "$have") | xargs)
    check "/metrics exports every metric pgnoti-alerts.yml uses${missing:+ (missing: $missing)}" [ -z "$missing" ]
else
    not_ok "the .deb ships $alerts"
fi

# --- the forwarder ----------------------------------------------------------------------------
ids_in_queue=$(queue_new | sed 's/^[0-9]*-//; s/\.json$//' | sort)
c systemctl start pgnoti-test-receiver
c systemctl start pgnoti-forward
check "systemctl start pgnoti-forward ($(c systemctl is-active pgnoti-forward)$(why pgnoti-forward))" c systemctl is-active --quiet pgnoti-forward
received() { c sh -c 'cat /var/lib/pgnoti-test-receiver/received 2>/dev/null'; }
received_verified_ids() { received | python3 -c '
import json, sys
print("\n".join(sorted({d["id"] for d in map(json.loads, sys.stdin) if d["verified"]})))'; }
all_delivered() { [ -n "$ids_in_queue" ] && [ -z "$(comm -23 <(printf '%s\n' "$ids_in_queue") <(received_verified_ids))" ]; }
wait_until 20 all_delivered
check "pgnoti-forward delivers every queued event to the receiver with a valid Standard Webhooks signature ($(received_verified_ids | grep -c .) of $(printf '%s\n' "$ids_in_queue" | grep -c .))" all_delivered
wait_until 10 eval '[ "$(queue_count)" = 0 ]'
check "the forwarder takes the files out of new/ ($(queue_count) left)" [ "$(queue_count)" = 0 ]

# --- key rotation with a reload ---------------------------------------------------------------
# craft TID-SUFFIX KEY-FILE OUT: approve-card.http with another TID, signed (MD5 form) with the
# key in KEY-FILE, as Smartro would sign it (manual §6.4: TID[0:10] + ResultCode + TID[10:15] +
# key + TID[15:]).
printf '%s' "$smartro_key" >"$work/key-old"
printf '%s' "$new_key" >"$work/key-new"
craft() {
    python3 - "$repo/fixtures/smartro/approve-card.http" "$1" "$2" "$root/root/pgnoti-test/$3" <<'PY'
import base64, hashlib, re, sys
from urllib.parse import quote_plus, unquote_to_bytes
src, suffix, keyfile, out = sys.argv[1:]
raw = open(src, "rb").read()
head, body = raw.split(b"\r\n\r\n", 1)
pairs = [p.split(b"=", 1) for p in body.split(b"&")]
fields = {k.decode(): unquote_to_bytes(v.replace(b"+", b" ")).decode("latin-1") for k, v in pairs}
tid = fields["TID"][: -len(suffix)] + suffix
key = open(keyfile).read().strip()
text = tid[:10] + fields["ResultCode"] + tid[10:15] + key + tid[15:]
sign = base64.b64encode(hashlib.md5(text.encode()).hexdigest().encode()).decode()
new = []
for k, v in pairs:
    if k == b"TID":
        v = tid.encode()
    elif k == b"SignValue":
        v = quote_plus(sign).encode()
    new.append(k + b"=" + v)
body = b"&".join(new)
head = re.sub(rb"Content-Length: \d+", b"Content-Length: %d" % len(body), head)
open(out, "wb").write(head + b"\r\n\r\n" + body)
PY
}
craft 9001 "$work/key-new" new-before.http
craft 9002 "$work/key-new" new-during.http
craft 9003 "$work/key-old" old-during.http
craft 9004 "$work/key-old" old-after.http
craft 9005 "$work/key-new" new-after.http
rt=/root/pgnoti-test
post $rt/new-before.http http://127.0.0.1:8080
check "before the rotation, a post signed with the new key is refused: 403 (got $status $body)" [ "$status" = 403 ]
# README: "a MID on two lines has two keys while rotating".
printf 'SMTPAY001m=%s\nSMTPAY001m=%s\n' "$smartro_key" "$new_key" >"$etc/smartro-merchant-keys"
pid_before=$(c systemctl show -p MainPID --value pgnoti)
reload
check "reload with two keys for SMTPAY001m (${reload_result:-no reload line in the journal})" \
    eval 'case "$reload_result" in "reloaded configuration"*) true ;; *) false ;; esac'
post $rt/new-during.http http://127.0.0.1:8080
check "after the reload, a post signed with the NEW key is ACKed without a restart: 200 OK (got $status $body)" \
    [ "$status $body" = "200 OK" ]
post $rt/old-during.http http://127.0.0.1:8080
check "while rotating, the old key still verifies: 200 OK (got $status $body)" [ "$status $body" = "200 OK" ]
printf 'SMTPAY001m=%s\n' "$new_key" >"$etc/smartro-merchant-keys"
reload
post $rt/old-after.http http://127.0.0.1:8080
check "once the old key is removed and pgnoti reloaded, the old key is refused: 403 (got $status $body)" [ "$status" = 403 ]
post $rt/new-after.http http://127.0.0.1:8080
check "and the new key is ACKed: 200 OK (got $status $body)" [ "$status $body" = "200 OK" ]
check "the reloads kept the same process (MainPID $pid_before)" \
    [ "$(c systemctl show -p MainPID --value pgnoti)" = "$pid_before" ]

# --- status and journal -----------------------------------------------------------------------
status_text=$(c systemctl show -p StatusText --value pgnoti)
check "systemctl status pgnoti: active, Status: \"$status_text\"" \
    eval 'c systemctl status pgnoti >/dev/null && case "$status_text" in "listening on port 8080"*) true ;; *) false ;; esac'
journal_json() {
    c journalctl -b -u pgnoti -o cat --no-pager | python3 -c '
import json, sys
lines = [l for l in sys.stdin if l.startswith("{")]
docs = [json.loads(l) for l in lines]
notifications = [d for d in docs if d.get("msg") == "notification"]
print(len(docs), len(notifications))
sys.exit(0 if notifications and all("level" in d and "time" in d for d in docs) else 1)'
}
counts=$(journal_json)
check "journalctl -u pgnoti holds JSON lines (lines, notification lines: $counts)" journal_json
check "no secret in the journal" \
    eval '! c journalctl -b --no-pager -o cat | grep -F -e "$innopay_secret" -e "$new_key" -e "${forward_secret#whsec_}"'

# --- watchdog ---------------------------------------------------------------------------------
# WatchdogSec=30s shortened to 5 s for the test. A SIGSTOPped process cannot take systemd's
# SIGABRT, so TimeoutAbortSec decides when SIGKILL follows (TimeoutStopSec, 30 s, otherwise).
c mkdir -p /run/systemd/system/pgnoti.service.d
printf '[Service]\nWatchdogSec=5s\nTimeoutAbortSec=2s\n' >"/proc/$leader/root/run/systemd/system/pgnoti.service.d/watchdog-test.conf"
c systemctl daemon-reload
c systemctl restart pgnoti
pid=$(c systemctl show -p MainPID --value pgnoti)
restarts=$(c systemctl show -p NRestarts --value pgnoti)
watchdogs_before=$(journal_count "Watchdog timeout")
# Never `kill 0` or `kill 1`: a MainPID that is not a process of the daemon's skips the test.
case "$pid" in '' | 0 | 1 | *[!0-9]*) pid=none ;; *) c kill -STOP "$pid" ;; esac
restarted() {
    local now
    [ "$pid" != none ] || return 1
    now=$(c systemctl show -p MainPID --value pgnoti)
    [ -n "$now" ] && [ "$now" != 0 ] && [ "$now" != "$pid" ] && c systemctl is-active --quiet pgnoti
}
t=$SECONDS
wait_until 30 restarted
check "a SIGSTOPped daemon is killed by the watchdog and restarted (MainPID $pid → $(c systemctl show -p MainPID --value pgnoti), $((SECONDS - t)) s)" restarted
check "the journal says why: watchdog timeout, result 'watchdog'" \
    eval '[ "$(journal_count "Watchdog timeout")" -gt "$watchdogs_before" ] && [ "$(journal_count "Failed with result .watchdog.")" -ge 1 ]'
check "NRestarts went up ($restarts → $(c systemctl show -p NRestarts --value pgnoti))" \
    [ "$(c systemctl show -p NRestarts --value pgnoti)" -gt "$restarts" ]
c rm -f /run/systemd/system/pgnoti.service.d/watchdog-test.conf
c systemctl daemon-reload
c systemctl restart pgnoti

# --- operator commands as root ----------------------------------------------------------------
for command in "events list" "stats" "quarantine list" "forward status" "backup /root/pgnoti-test/backup.sqlite" "check-config"; do
    # shellcheck disable=SC2086 # the command's words
    out=$(c2 pgnoti $command --config /etc/pgnoti/pgnoti.toml)
    rc=$?
    check "pgnoti $command --config /etc/pgnoti/pgnoti.toml as root exits 0 (exit $rc$([ "$rc" != 0 ] && printf ': %s' "$(printf '%s' "$out" | tail -n 1 | cut -c1-160)"))" [ "$rc" = 0 ]
done
backup_sound() {
    c python3 -c '
import sqlite3, sys
db = sqlite3.connect("file:/root/pgnoti-test/backup.sqlite?mode=ro", uri=True)
ok = db.execute("pragma integrity_check").fetchone()[0] == "ok"
rows = db.execute("select count(*) from notifications").fetchone()[0]
print(rows)
sys.exit(0 if ok and rows > 0 else 1)' 2>/dev/null
}
check "the backup is a sound SQLite database holding the notifications ($(backup_sound) rows)" backup_sound
check "the state stays the daemon's: /var/lib/pgnoti/pgnoti.sqlite is owned by pgnoti" \
    [ "$(c stat -c %U /var/lib/pgnoti/pgnoti.sqlite)" = pgnoti ]

# --- backups on a schedule --------------------------------------------------------------------
if c test -f /lib/systemd/system/pgnoti-backup.timer; then
    out=$(c2 systemd-analyze verify /lib/systemd/system/pgnoti-backup.service /lib/systemd/system/pgnoti-backup.timer)
    check "systemd-analyze verify pgnoti-backup.service pgnoti-backup.timer${out:+ ($(printf '%s' "$out" | head -n 2 | xargs))}" [ -z "$out" ]
    check "postinst does not enable the backup timer" eval '! c systemctl is-enabled --quiet pgnoti-backup.timer'
    check "tmpfiles.d made /var/backups/pgnoti 0700 root ($(c stat -c '%a %U' /var/backups/pgnoti 2>&1))" \
        [ "$(c stat -c '%a %U' /var/backups/pgnoti 2>&1)" = "700 root" ]
    # The unit's sandbox with the plain `pgnoti backup FILE` every version has: a root process
    # reads the pgnoti user's ledger and writes into /var/backups/pgnoti, nothing else. With the
    # state-only configuration, so that only the sandbox is under test.
    dropin=/run/systemd/system/pgnoti-backup.service.d
    c mkdir -p $dropin
    printf '[Service]\nExecStart=\nExecStart=/usr/bin/pgnoti backup /var/backups/pgnoti/sandbox-test.sqlite --config /etc/pgnoti/state-only-test.toml\n' \
        >"/proc/$leader/root$dropin/sandbox-test.conf"
    c systemctl daemon-reload
    C_TIMEOUT=120 c systemctl start pgnoti-backup.service
    rc=$?
    check "pgnoti-backup.service's sandbox lets \`pgnoti backup FILE\` copy the ledger into /var/backups/pgnoti (exit $rc$([ "$rc" != 0 ] && printf '; %s' "$(c journalctl -b -u pgnoti-backup -o cat --no-pager | grep -i 'pgnoti:\|error\|denied' | tail -n 1 | cut -c1-160)"))" \
        eval '[ "$rc" = 0 ] && c test -s /var/backups/pgnoti/sandbox-test.sqlite'
    check "SQLite's files beside the ledger still belong to pgnoti after the root backup" \
        eval '[ -z "$(c find /var/lib/pgnoti -maxdepth 1 -name "pgnoti.sqlite*" ! -user pgnoti)" ]'
    # Again with the daemon stopped (a timer firing during maintenance): SQLite, as root, makes
    # the -wal and -shm files itself and must hand them to pgnoti, or the daemon cannot start.
    c systemctl stop pgnoti-forward pgnoti
    c rm -f /var/backups/pgnoti/sandbox-test.sqlite
    C_TIMEOUT=120 c systemctl start pgnoti-backup.service
    rc=$?
    c systemctl start pgnoti pgnoti-forward
    check "with pgnoti stopped, the sandboxed backup works (exit $rc) and pgnoti starts after it ($(c systemctl is-active pgnoti)$(why pgnoti))" \
        eval '[ "$rc" = 0 ] && c test -s /var/backups/pgnoti/sandbox-test.sqlite && c systemctl is-active --quiet pgnoti'
    c rm -f "$dropin/sandbox-test.conf"
    c systemctl daemon-reload
    c systemctl reset-failed pgnoti-backup.service 2>/dev/null
    c systemctl enable --now pgnoti-backup.timer >/dev/null 2>&1
    check "systemctl enable --now pgnoti-backup.timer schedules it (next: $(c systemctl show -p NextElapseUSecRealtime --value pgnoti-backup.timer))" \
        c systemctl is-active --quiet pgnoti-backup.timer
    C_TIMEOUT=120 c systemctl start pgnoti-backup.service
    rc=$?
    backups=$(c sh -c 'stat -c "%a %n" /var/backups/pgnoti/pgnoti-*.sqlite 2>/dev/null')
    check "pgnoti-backup.service writes /var/backups/pgnoti/pgnoti-YYYYMMDD-HHMMSS.sqlite 0600 (exit $rc; ${backups:-no file}$([ "$rc" != 0 ] && printf '; %s' "$(c journalctl -b -u pgnoti-backup -o cat --no-pager | grep -v '^pgnoti-backup\|Starting\|Failed\|Main process' | tail -n 1 | cut -c1-160)"))" \
        eval '[ "$rc" = 0 ] && grep "^600 /var/backups/pgnoti/pgnoti-[0-9]\{8\}-[0-9]\{6\}\.sqlite$" <<<"$backups"'
else
    not_ok "the .deb ships pgnoti-backup.service and pgnoti-backup.timer"
fi

# --- restoring a backup (README "Restoring a backup") ----------------------------------------
# From the copy pgnoti-backup.service's sandbox wrote above, or else from `pgnoti backup` as
# root. Events are listed with the state-only config, so that this tests the restore.
restore_from=""
for f in /var/backups/pgnoti/sandbox-test.sqlite /root/pgnoti-test/backup.sqlite; do
    c test -s $f && { restore_from=$f; break; }
done
event_ids() { c pgnoti events list --json --limit 1000 --config /etc/pgnoti/state-only-test.toml | python3 -c '
import json, sys
print("\n".join(sorted(json.loads(l)["event_id"] for l in sys.stdin if l.strip())))'; }
if [ -n "$restore_from" ]; then
    ids_backup=$(event_ids)
    c systemctl stop pgnoti-forward pgnoti
    c sh -c 'cd /var/lib/pgnoti && d=replaced-$(date +%Y%m%d-%H%M%S) && mkdir -m 0700 $d && mv pgnoti.sqlite* $d/'
    c install -o pgnoti -g pgnoti -m 0640 $restore_from /var/lib/pgnoti/pgnoti.sqlite
    c systemctl start pgnoti pgnoti-forward
    check "pgnoti starts on the restored database ($(c systemctl is-active pgnoti)$(why pgnoti))" c systemctl is-active --quiet pgnoti
    check "the restored ledger lists the events the copy holds ($(printf '%s\n' "$ids_backup" | grep -c .) before, $(event_ids | grep -c .) after)" \
        eval '[ -n "$ids_backup" ] && [ "$(event_ids)" = "$ids_backup" ]'
    post $fx/innopay/approve-card.http "$innopay_url"
    check "after the restore, a PG retry of a stored notification is ACKed: 200 0000 (got $status $body)" [ "$status $body" = "200 0000" ]
    check "and it is a duplicate, not a new event" \
        eval 'c journalctl -b -u pgnoti -o cat --no-pager | grep "\"msg\":\"notification\"" | tail -n 1 | grep "\"outcome\":\"duplicate\""'
    c rm -f /var/backups/pgnoti/sandbox-test.sqlite
else
    not_ok "a backup to restore from (neither pgnoti-backup.service's sandbox nor pgnoti backup wrote one)"
fi

c rm -f /etc/pgnoti/state-only-test.toml

# --- upgrade and removal ----------------------------------------------------------------------
pid=$(c systemctl show -p MainPID --value pgnoti)
fpid=$(c systemctl show -p MainPID --value pgnoti-forward)
out=$(C_TIMEOUT=120 c2 dpkg -i /root/pgnoti-test/pgnoti.deb)
rc=$?
note "dpkg -i said:"
printf '%s\n' "$out" | redact | sed 's/^/#   /'
check "dpkg -i of the same .deb again (an upgrade) succeeds (exit $rc)" [ "$rc" = 0 ]
check "postinst accepts the configuration (no \"the new version refuses\")" eval '! grep "refuses" <<<"$out"'
check "the upgrade restarted pgnoti (MainPID $pid → $(c systemctl show -p MainPID --value pgnoti))" \
    eval '[ "$(c systemctl show -p MainPID --value pgnoti)" != "$pid" ] && c systemctl is-active --quiet pgnoti'
if [ "$fpid" != 0 ] && [ -n "$fpid" ]; then
    check "the upgrade restarted pgnoti-forward (MainPID $fpid → $(c systemctl show -p MainPID --value pgnoti-forward))" \
        eval '[ "$(c systemctl show -p MainPID --value pgnoti-forward)" != "$fpid" ] && c systemctl is-active --quiet pgnoti-forward'
else
    note "pgnoti-forward was not running before the upgrade: its restart is not checked"
fi
check "the upgrade kept the operator's pgnoti.toml (a conffile)" eval 'grep -q "^\[smartro\]" "$etc/pgnoti.toml"'
post $fx/innopay/approve-card.http "$innopay_url"
check "after the upgrade, Innopay is still ACKed: 200 0000 (got $status $body)" [ "$status $body" = "200 0000" ]
out=$(C_TIMEOUT=120 c2 dpkg -r pgnoti)
rc=$?
check "dpkg -r pgnoti succeeds (exit $rc)" [ "$rc" = 0 ]
check "removal stops pgnoti and pgnoti-forward" \
    eval '! c systemctl is-active --quiet pgnoti && ! c systemctl is-active --quiet pgnoti-forward'
check "removal keeps the ledger (/var/lib/pgnoti/pgnoti.sqlite)" c test -s /var/lib/pgnoti/pgnoti.sqlite
check "removal takes the binary away" eval '! c test -e /usr/bin/pgnoti'

# --- power off --------------------------------------------------------------------------------
c systemctl poweroff >/dev/null 2>&1
wait_until 30 eval '! kill -0 "$nspawn_pid" 2>/dev/null'
check "the container powers off" eval '! kill -0 "$nspawn_pid" 2>/dev/null'
finish
