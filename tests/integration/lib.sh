# Shared helpers for integration tests (sourced, not run: not executable).
BUILD=${BUILD:-build}
VMM=${EMBER_VMM:-$BUILD/ember-vmm}
GUESTS=$BUILD/guests
TMP=$(mktemp -d /tmp/ember-test.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
need() { for f in "$@"; do [ -e "$f" ] || skip "$f not built"; done; }
[ -c /dev/kvm ] || skip "no /dev/kvm"

# run_vmm OUT ERR ARGS...: runs ember-vmm, sets $rc.
run_vmm() {
	local out=$1 err=$2
	shift 2
	"$VMM" "$@" >"$out" 2>"$err"
	rc=$?
}
