#!/bin/bash
# Builds Ember's Linux guest kernel (vmlinux) from Debian's linux-source-6.1,
# cached outside the work tree, and links $BUILD/vmlinux to the cached file.
#
#   scripts/build-kernel.sh            (BUILD=build by default)
#   EMBER_CACHE=/some/dir JOBS=2 scripts/build-kernel.sh
#
# Cache key: sha256 of (dpkg version of linux-source-6.1, guest-kernel-config,
# guest-kernel-patches/*.patch with their names, this script). A hit returns at
# once. A build is only a hit once it has completed: vmlinux is written under
# a temporary name, renamed, and then the .done marker is written, so a
# killed or failed build is redone from scratch next time. Concurrent runs
# (several engineers, CI) serialize on a lock file per key.
#
# Progress is one line per phase; the kernel's own output goes to
# <cache>/build.log, whose tail is shown on failure. docs/linux-guest.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
JOBS=${JOBS:-2}
TARBALL=${EMBER_KERNEL_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
CONFIG=$ROOT/guest-kernel-config
CACHE_ROOT=${EMBER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ember}

say() { printf 'kernel: %s\n' "$*"; }
die() { printf 'kernel: error: %s\n' "$*" >&2; exit 1; }

[ -r "$TARBALL" ] || die "$TARBALL missing (apt-get install linux-source-6.1)"
[ -r "$CONFIG" ] || die "$CONFIG missing"
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null ||
	stat -c '%s-%Y' "$TARBALL")

# The key covers every input that changes the binary; patch names are hashed
# too because they decide the order in which patches are applied.
key=$({
	printf 'linux-source-6.1 %s\n' "$srcver"
	printf 'config\n'; cat "$CONFIG"
	for p in guest-kernel-patches/*.patch; do
		[ -e "$p" ] || continue
		printf 'patch %s\n' "$(basename "$p")"; cat "$p"
	done
	printf 'script\n'; cat "$0"
} | sha256sum | cut -c1-16)
dir=$CACHE_ROOT/kernel/$key
mkdir -p "$dir"

link_result() {
	mkdir -p "$BUILD"
	ln -sfn "$dir/vmlinux" "$BUILD/vmlinux"
	say "$BUILD/vmlinux -> $dir/vmlinux"
}

if [ -f "$dir/.done" ] && [ -f "$dir/vmlinux" ]; then
	say "cache hit ($key)"
	link_result
	exit 0
fi

exec 9>"$dir.lock"
if ! flock -n 9; then
	say "another build of $key is running; waiting for it"
	flock 9
fi
# The other build may have finished while we waited.
if [ -f "$dir/.done" ] && [ -f "$dir/vmlinux" ]; then
	say "cache hit ($key)"
	link_result
	exit 0
fi

log=$dir/build.log
: >"$log"
fail() {
	echo "kernel: error: $1; last lines of $log:" >&2
	tail -25 "$log" >&2
	exit 1
}
start=$(date +%s)

# Always from a fresh tree: a half-unpacked or half-patched tree from a killed
# run must not leak into this one. (ccache keeps rebuilds cheap.)
src=$dir/src
say "unpacking $(basename "$TARBALL") into $src"
rm -rf "$src" "$dir/src.old" "$dir/vmlinux" "$dir/vmlinux.tmp"
mkdir -p "$src"
tar -xJf "$TARBALL" -C "$src" --strip-components=1 >>"$log" 2>&1 ||
	fail "unpacking failed"

for p in guest-kernel-patches/*.patch; do
	[ -e "$p" ] || continue
	say "applying $(basename "$p")"
	patch -d "$src" -p1 --forward --batch <"$p" >>"$log" 2>&1 ||
		fail "patch $(basename "$p") does not apply"
done

say "configuring (allnoconfig + guest-kernel-config)"
cp "$CONFIG" "$dir/config.fragment"
make -C "$src" ARCH=x86_64 KCONFIG_ALLCONFIG="$dir/config.fragment" \
	allnoconfig >>"$log" 2>&1 || fail "configuration failed"
# Kconfig silently drops a symbol whose dependencies are not met; catch that.
missing=0
while IFS= read -r line; do
	case $line in
	CONFIG_*=*)
		grep -qxF "$line" "$src/.config" || {
			echo "kernel: config: '$line' did not survive (dependency?)" >&2
			missing=1
		} ;;
	"# CONFIG_"*" is not set")
		sym=${line#\# }; sym=${sym%% *}
		grep -q "^$sym=" "$src/.config" && {
			echo "kernel: config: $sym is set although the fragment unsets it" >&2
			missing=1
		} ;;
	esac
done <"$CONFIG"
[ "$missing" -eq 0 ] || die "guest-kernel-config does not hold (see above)"
cp "$src/.config" "$dir/config.full"

cc=gcc
if command -v ccache >/dev/null 2>&1; then
	cc="ccache gcc"
	export CCACHE_DIR=${CCACHE_DIR:-$CACHE_ROOT/ccache}
fi
say "building vmlinux (make -j$JOBS, CC=$cc; log: $log)"
make -C "$src" ARCH=x86_64 -j"$JOBS" CC="$cc" vmlinux >>"$log" 2>&1 ||
	fail "kernel build failed"

# Atomic publication: rename, then mark complete. System.map stays for
# symbolizing initcall_debug output (no KALLSYMS in this kernel).
cp "$src/System.map" "$dir/System.map"
cp "$src/vmlinux" "$dir/vmlinux.tmp"
mv -f "$dir/vmlinux.tmp" "$dir/vmlinux"
touch "$dir/.done"
say "built in $(($(date +%s) - start)) s ($(stat -c %s "$dir/vmlinux") bytes)"
link_result
# Every build starts from a fresh tree, so the ~1.5 GB object tree is of no
# further use (ccache holds what a rebuild needs). Deleting it takes minutes
# on a busy disk: do it in the background, renamed first so that nothing
# mistakes it for a live tree.
mv "$src" "$dir/src.old" && (rm -rf "$dir/src.old" >/dev/null 2>&1 &)
