# Shared helpers for integration tests (sourced, not run: not executable).
BUILD=${BUILD:-build}
VMM=${EMBER_VMM:-$BUILD/ember-vmm}
GUESTS=$BUILD/guests
TMP=$(mktemp -d /tmp/ember-test.XXXXXX)
# EMBER_KEEP_TMP=1 keeps a failed test's files (snapshots, logs) for a look.
trap 'rc=$?; if [ "${EMBER_KEEP_TMP:-}" = 1 ] && [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
	echo "kept: $TMP" >&2; else rm -rf "$TMP"; fi' EXIT

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
