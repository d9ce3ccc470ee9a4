#!/bin/bash
# make demo: Ember in one minute on this machine.
#  1. a test guest boots and powers off;
#  2. the micro guest runs the SDK's hash handler as a function: boot to
#     READY, an invocation over vsock, warm round trips;
#  3. the same function is snapshotted at READY and cold-started from the
#     snapshot in a fresh process, then invoked.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d /tmp/ember-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
now_us() { echo $(( $(date +%s%N) / 1000 )); }
wait_socket() { for _ in $(seq 400); do [ -S "$1" ] && return 0; sleep 0.005; done; return 1; }
say() { printf '\n== %s\n' "$*"; }

say "1. a plain test guest on /dev/kvm"
echo "\$ ember-vmm --kernel $B/guests/hello"
"$B/ember-vmm" -q --kernel "$B/guests/hello"

say "2. a function in the micro guest (handler: $B/handlers/hash, sha256 of its input)"
t0=$(now_us)
"$B/ember-vmm" -q --micro --handler "$B/handlers/hash" --vsock "$T/fn.sock" \
	--serial "$T/fn.serial" &
pids+=($!)
wait_socket "$T/fn.sock"
printf 'hello, ember' >"$T/in"
out=$("$B/ember-invoke" --vsock "$T/fn.sock" --input "$T/in")
t1=$(now_us)
echo "invoke(\"hello, ember\") -> $out"
echo "expected (sha256sum)     -> $(sha256sum "$T/in" | cut -d' ' -f1)"
echo "process start to first result: $(( (t1 - t0) / 1000 )).$(( (t1 - t0) % 1000 / 100 )) ms (boot, handler init, one invocation)"
"$B/ember-invoke" --vsock "$T/fn.sock" --input "$T/in" --repeat 500 --quiet \
	>/dev/null 2>"$T/stats"
echo "500 warm invocations: $(grep -o 'p50_us=[0-9.]* p99_us=[0-9.]*' "$T/stats")"

say "3. snapshot at READY, then a cold start from the snapshot in a new process"
"$B/ember-vmm" -q --micro --handler "$B/handlers/hash" --vsock "$T/snap.sock" \
	--serial /dev/null --snapshot-at-ready "$T/snap"
echo "snapshot: $(du -sh --apparent-size "$T/snap/memory" | cut -f1) of RAM, $(du -sh "$T/snap/memory" | cut -f1) on disk (sparse)"
t0=$(now_us)
"$B/ember-vmm" -q --restore "$T/snap" --vsock "$T/clone.sock" --serial /dev/null &
pids+=($!)
wait_socket "$T/clone.sock"
out=$("$B/ember-invoke" --vsock "$T/clone.sock" --input "$T/in")
t1=$(now_us)
echo "restored clone -> $out"
echo "cold start (spawn ember-vmm --restore, connect, invoke, result): $(( (t1 - t0) / 1000 )).$(( (t1 - t0) % 1000 / 100 )) ms"
echo
echo "More: README.md (usage, architecture, benchmarks), make test, make bench."
