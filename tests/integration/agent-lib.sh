# Helpers for the tests that run a real emberd (sourced, not run): start it
# on a temporary state and runtime directory, talk to it with the ember
# CLI, stop it by pid (and check that it left no VMM behind), whatever
# happens to the test.
set -u
cd "$(dirname "$0")/../.."
B=${BUILD:-build}
EMBER=$B/ember
T=$(mktemp -d /tmp/ember-agent-test.XXXXXX)
EMBERD_PID=
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pass() { echo "ok   $*"; }
finish() {
	[ "$fails" -eq 0 ] && { echo "all passed"; exit 0; }
	echo "$fails failed"
	exit 1
}
need() {
	for f in "$@"; do
		[ -e "$f" ] || { echo "skip: $f not built"; exit 77; }
	done
}
[ -c /dev/kvm ] || { echo "skip: no /dev/kvm"; exit 77; }
need "$B/emberd" "$EMBER" "$B/ember-vmm" "$B/ember-micro" "$B/handlers/lua"

# The VMM processes emberd started (its children), for the leak check.
vmm_children() {
	[ -n "$EMBERD_PID" ] && pgrep -P "$EMBERD_PID" 2>/dev/null | tr '\n' ' '
}

# stop_emberd: SIGTERM, wait up to 20 s (then SIGKILL); sets $emberd_rc.
# Fails the test if a VMM it started outlives it.
stop_emberd() {
	local kids
	[ -n "$EMBERD_PID" ] || return 0
	kids=$(vmm_children)
	kill -TERM "$EMBERD_PID" 2>/dev/null
	for _ in $(seq 200); do
		kill -0 "$EMBERD_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$EMBERD_PID" 2>/dev/null; then
		fail "emberd did not stop within 20 s of SIGTERM"
		kill -KILL "$EMBERD_PID"
	fi
	wait "$EMBERD_PID" 2>/dev/null
	emberd_rc=$?
	EMBERD_PID=
	for k in $kids; do
		if kill -0 "$k" 2>/dev/null; then
			fail "VMM $k outlived emberd"
			kill -KILL "$k" 2>/dev/null
		fi
	done
}

cleanup() {
	stop_emberd >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT

# start_emberd [emberd args...]: on $T/state and $T/run, waits until it
# answers /v1/health (up to 20 s). Sets EMBER_ENDPOINT and $ADMIN.
start_emberd() {
	"$B/emberd" --state "$T/state" --runtime "$T/run" "$@" \
		>>"$T/emberd.out" 2>>"$T/emberd.err" &
	EMBERD_PID=$!
	export EMBER_ENDPOINT=unix:$T/run/emberd.sock
	unset EMBER_TOKEN EMBER_TOKEN_FILE EMBER_CONFIG
	export XDG_CONFIG_HOME=$T/xdg   # no user config file
	for _ in $(seq 200); do
		"$EMBER" health >/dev/null 2>&1 && break
		kill -0 "$EMBERD_PID" 2>/dev/null || break
		sleep 0.1
	done
	if ! "$EMBER" health >/dev/null 2>&1; then
		echo "emberd did not come up:"; tail -20 "$T/emberd.err"
		return 1
	fi
	ADMIN="--token-file $T/state/admin.token"
}

# expect_rc N DESCRIPTION CMD...: runs CMD, checks its exit status.
expect_rc() {
	local want=$1 what=$2 rc
	shift 2
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$rc" -eq "$want" ]; then
		pass "$what (exit $rc)"
		return 0
	fi
	fail "$what: exit $rc, expected $want"
	sed 's/^/     /' "$T/out" "$T/err" | head -20
	return 1
}
