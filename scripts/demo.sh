#!/bin/bash
# make demo: Ember as a platform, in about a minute on this machine.
#  1. emberd starts on a temporary state directory;
#  2. the admin creates two tenants, acme and globex, and a token for each;
#  3. acme deploys two functions: hash (a static C handler) and words (a Lua
#     script), each booted to READY and snapshotted by emberd;
#  4. each is invoked cold (restored into a pooled VM shell), then warm,
#     then 200 times warm;
#  5. globex cannot see acme's functions, and its own "hash" is its own;
#  6. emberd stops on SIGTERM, leaving no VM behind.
# Every figure printed comes from Ember itself: emberd's X-Ember-* headers
# and deploy details, or the ember client's own clock. The script only
# waits (for emberd to answer) and never times anything.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d /tmp/ember-demo.XXXXXX)
EMBERD_PID=
cleanup() {
	if [ -n "$EMBERD_PID" ]; then
		kill -TERM "$EMBERD_PID" 2>/dev/null || true
		wait "$EMBERD_PID" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT
say() { printf '\n== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
# The same, the result (the last of --repeat's) not shown.
show_stats() { printf '$ %s >/dev/null\n' "$*"; "$@" >/dev/null; }
for f in "$B/emberd" "$B/ember" "$B/functions/hash/ember.json" \
	"$B/functions/lua/ember.json" "$B/functions/echo/ember.json"; do
	[ -e "$f" ] || { echo "demo: $f is missing: run make first"; exit 1; }
done
[ -c /dev/kvm ] || { echo "demo: no /dev/kvm"; exit 1; }

say "1. emberd on a fresh state directory ($T/state)"
"$B/emberd" --state "$T/state" --runtime "$T/run" >"$T/emberd.log" 2>&1 &
EMBERD_PID=$!
export EMBER_ENDPOINT=unix:$T/run/emberd.sock XDG_CONFIG_HOME=$T/xdg
for _ in $(seq 300); do
	"$B/ember" health >/dev/null 2>&1 && break
	kill -0 "$EMBERD_PID" 2>/dev/null || { cat "$T/emberd.log"; exit 1; }
	sleep 0.05
done
show "$B/ember" health
ember() { "$B/ember" "$@"; }
admin() { "$B/ember" --token-file "$T/state/admin.token" "$@"; }

say "2. two tenants, a token each (the admin token is $T/state/admin.token)"
show admin tenant create acme
show admin tenant create globex
ACME=$(admin token create acme 2>/dev/null)
GLOBEX=$(admin token create globex 2>/dev/null)
echo "acme's token: ${ACME:0:10}...  globex's token: ${GLOBEX:0:10}..."
admin tenant ls

say "3. acme deploys a C handler (hash: SHA-256) and a Lua script (words)"
export EMBER_TOKEN=$ACME
show ember deploy "$B/functions/hash"
show ember deploy "$B/functions/lua" --name words
ember ls

say "4. invocations: cold (restore into a pooled VM shell), then warm"
printf 'hello, ember' >"$T/in"
echo "sha256sum says: $(sha256sum "$T/in" | cut -d' ' -f1)"
show ember -v invoke hash --data 'hello, ember'
show ember -v invoke hash --data 'hello, ember'
show_stats ember invoke hash --data 'hello, ember' --repeat 200
show ember -v invoke words --data 'functions that start in milliseconds'
show ember -v invoke words --data 'and stay warm'
show_stats ember invoke words --data 'x' --repeat 200

say "5. tenant isolation: globex sees none of acme's functions"
export EMBER_TOKEN=$GLOBEX
show ember ls
printf '$ ember invoke hash --data hello\n'
ember invoke hash --data hello || echo "(exit $?: to globex, acme's hash does not exist)"
show ember deploy "$B/functions/echo" --name hash
show ember invoke hash --data "globex's own hash is an echo"
echo
EMBER_TOKEN=$ACME ember invoke hash --data 'hello, ember'

say "6. emberd stops on SIGTERM"
kids=$(pgrep -P "$EMBERD_PID" | tr '\n' ' ' || true)
kill -TERM "$EMBERD_PID"
rc=0
wait "$EMBERD_PID" || rc=$?
EMBERD_PID=
left=0
for k in $kids; do kill -0 "$k" 2>/dev/null && left=$((left + 1)); done
echo "emberd exited with status $rc; VMM processes it had: $(echo $kids | wc -w), left running: $left"
echo
echo "More: docs/functions.md (manifest, archive, deploy), ember --help, README.md."
