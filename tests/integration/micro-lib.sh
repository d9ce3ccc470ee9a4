# Helpers for the micro guest's integration tests (sourced, not run).
# Each test boots ember-vmm --micro with a handler and talks to it with
# ember-invoke over the VM's hybrid-vsock socket. See docs/micro-guest.md.
set -u
cd "$(dirname "$0")/../.."
B=${BUILD:-build}
VMM=${EMBER_VMM:-$B/ember-vmm}
INV=$B/ember-invoke
T=$(mktemp -d /tmp/ember-micro.XXXXXX)
VM_PID=
cleanup() {
	[ -n "$VM_PID" ] && kill "$VM_PID" 2>/dev/null && wait "$VM_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pass() { echo "ok   $*"; }
need() {
	for f in "$@"; do
		[ -e "$f" ] || { echo "skip: $f not built (make BUILD=$B micro sdk)"; exit 77; }
	done
}
[ -c /dev/kvm ] || { echo "skip: no /dev/kvm"; exit 77; }
need "$VMM" "$B/ember-micro"

# start_vm HANDLER [ember-vmm args...]: boots a micro guest in the
# background with its vsock socket at $T/v.sock and serial in $T/serial.
start_vm() {
	local h=$1
	shift
	rm -f "$T/v.sock"
	"$VMM" --micro --handler "$h" --vsock "$T/v.sock" \
		--serial "$T/serial" "$@" >"$T/vmm.out" 2>"$T/vmm.err" &
	VM_PID=$!
	for _ in $(seq 100); do
		[ -S "$T/v.sock" ] && return 0
		kill -0 "$VM_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "VM did not come up:"; cat "$T/vmm.err" "$T/serial" 2>/dev/null
	return 1
}

# stop_vm: ends the VM (it serves connections until killed); sets $vm_rc.
stop_vm() {
	kill "$VM_PID" 2>/dev/null
	wait "$VM_PID" 2>/dev/null
	vm_rc=$?
	VM_PID=
}

# wait_vm: waits up to 10 s for the VM to end by itself; sets $vm_rc
# (124 if it did not end).
wait_vm() {
	vm_rc=124
	for _ in $(seq 200); do
		if ! kill -0 "$VM_PID" 2>/dev/null; then
			wait "$VM_PID" 2>/dev/null
			vm_rc=$?
			VM_PID=
			return
		fi
		sleep 0.05
	done
}

# invoke INPUT OUT [ember-invoke args...]: one invocation; returns its status.
invoke() {
	local in=$1 out=$2
	shift 2
	timeout 60 "$INV" --vsock "$T/v.sock" --input "$in" "$@" >"$out" 2>"$out.err"
}

finish() {
	[ "$fails" -eq 0 ] && { echo "all passed"; exit 0; }
	echo "$fails failed"
	exit 1
}
