#!/bin/bash
# Ember's test runner: cmocka unit tests, then integration tests on /dev/kvm.
#
#   tests/run.sh [unit|integration|all] [NAME-FILTER]
#
# Unit tests are counted per cmocka test case. Each integration test is one
# executable under tests/integration/ (a script or a program) that exits
# 0 = pass, 1 = fail, 77 = skip, run with a timeout (EMBER_TEST_TIMEOUT, or the
# "# timeout: N" line in the script). The last line is the summary:
#   N passed, N failed, N skipped
#
# Under CI (CI=true) a test that skips because /dev/kvm is missing or
# unusable, or because something it needs was not built or installed,
# fails instead: a CI run that tested nothing must not be green. Its skip
# line says why (conventionally "SKIP: no /dev/kvm", "... not built",
# "... missing", "... not installed"); the summary still counts skips.
set -u
cd "$(dirname "$0")/.."
what=${1:-all}
filter=${2:-}
BUILD=${BUILD:-build}
export BUILD
LOGDIR=$BUILD/test/logs
mkdir -p "$LOGDIR"
passed=0 failed=0 skipped=0
failures=()
CI_STRICT=0
[ "${CI:-}" = true ] && CI_STRICT=1

# Under CI: is this skip (the test's last line) one of the environment's
# making, which CI must not accept?
env_skip() {
	grep -qiE 'no /dev/kvm|/dev/kvm (missing|unusable|not)|not built|missing|not installed|needed' <<<"$1"
}

run_unit() {
	local bin name log p f src
	# A unit test that was not built is invisible below: under CI, say so.
	if [ $CI_STRICT -eq 1 ]; then
		for src in tests/unit/test_*.c; do
			name=$(basename "$src" .c)
			[[ -n $filter && $name != *$filter* ]] && continue
			[ -x "$BUILD/test/unit/$name" ] && continue
			failed=$((failed + 1)); failures+=("unit/$name (not built)")
			echo "FAIL unit $name: CI=true and $BUILD/test/unit/$name was not built"
		done
	fi
	for bin in "$BUILD"/test/unit/test_*; do
		[ -x "$bin" ] || continue
		name=$(basename "$bin")
		[[ -n $filter && $name != *$filter* ]] && continue
		log=$LOGDIR/$name.log
		timeout 300 "$bin" >"$log" 2>&1
		local rc=$?
		p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
		f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
		p=${p:-0} f=${f:-0}
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			f=1 # crashed, sanitizer report, or timeout
		fi
		passed=$((passed + p)) failed=$((failed + f))
		if [ "$f" -ne 0 ]; then
			failures+=("unit/$name (log: $log)")
			printf 'FAIL unit %s (%s passed, %s failed)\n' "$name" "$p" "$f"
			grep -E '^\[  (FAILED|ERROR)|ERROR:|runtime error' "$log" | head -20
		else
			printf 'ok   unit %s (%s tests)\n' "$name" "$p"
		fi
	done
}

run_integration() {
	local t name log limit rc start
	for t in tests/integration/*; do
		[ -x "$t" ] && [ -f "$t" ] || continue
		name=$(basename "$t")
		[[ -n $filter && $name != *$filter* ]] && continue
		log=$LOGDIR/integration-$name.log
		limit=$(sed -n 's/^# timeout: *\([0-9]*\).*/\1/p' "$t" | head -1)
		limit=${EMBER_TEST_TIMEOUT:-${limit:-60}}
		start=$(date +%s)
		timeout -k 5 "$limit" "$t" >"$log" 2>&1
		rc=$?
		case $rc in
		0) passed=$((passed + 1)); echo "ok   integration $name ($(($(date +%s) - start)) s)" ;;
		77) if [ $CI_STRICT -eq 1 ] && env_skip "$(tail -1 "$log")"; then
			failed=$((failed + 1)); failures+=("integration/$name (log: $log)")
			echo "FAIL integration $name: CI=true, and it skipped: $(tail -1 "$log")"
		    else
			skipped=$((skipped + 1)); echo "skip integration $name: $(tail -1 "$log")"
		    fi ;;
		*) failed=$((failed + 1)); failures+=("integration/$name (log: $log)")
		   [ $rc -eq 124 ] && echo "FAIL integration $name: timed out after ${limit}s" ||
			   echo "FAIL integration $name (exit $rc)"
		   # The failing checks first (a long log's tail may show only
		   # passes), then how the log ends.
		   grep -n -A3 -E '^ *(FAIL|not ok)' "$log" | head -24 | sed 's/^/     /'
		   echo "     --- end of log"
		   tail -15 "$log" | sed 's/^/     /' ;;
		esac
	done
}

# Under CI, a missing or unusable /dev/kvm is said once, up front (every
# VM test then fails with its own line too).
if [ $CI_STRICT -eq 1 ] && [ "$what" != unit ] &&
	! { [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then
	echo "CI=true: /dev/kvm is missing or not usable by $(id -un): the VM tests cannot run, and fail"
fi

case $what in
unit) run_unit ;;
integration) run_integration ;;
all) run_unit; run_integration ;;
*) echo "usage: $0 [unit|integration|all] [filter]" >&2; exit 2 ;;
esac

if [ ${#failures[@]} -gt 0 ]; then
	echo "failures:"
	printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
