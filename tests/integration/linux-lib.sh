# Shared by linux-boot and linux-smp (sourced after lib.sh; not a test: not
# executable). Builds the test initramfs and runs Ember's Linux guest.
KERNEL=$BUILD/vmlinux
[ -e "$KERNEL" ] || skip "$KERNEL missing: run 'make kernel' (cached build, ~6-11 min cold)"
command -v cpio >/dev/null || skip "cpio not installed"
command -v gcc >/dev/null || skip "gcc not installed"
# Nested PVM (../shared/PLATFORM.md): CPL0 is emulated, user space cannot run.
PVM=0
[ -d /sys/module/kvm_pvm ] && PVM=1

# /init: no libc, two system calls: write a marker, then reboot(RESTART),
# which with reboot=k goes through the i8042 and ends ember-vmm.
make_initramfs() {
	cat >"$TMP/init.c" <<'EOC'
static long sc(long n, long a, long b, long c, long d)
{
	register long r10 __asm__("r10") = d;
	long r;

	__asm__ volatile("syscall" : "=a"(r)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return r;
}

void _start(void)
{
	static const char msg[] = "EMBER-LINUX-INIT: user space runs\n";

	sc(1, 1, (long)msg, sizeof(msg) - 1, 0);       /* write(1, ...) */
	sc(169, 0xfee1dead, 672274793, 0x01234567, 0); /* reboot(RESTART) */
	for (;;)
		;
}
EOC
	gcc -static -nostdlib -no-pie -ffreestanding -fno-stack-protector -O2 \
		-o "$TMP/init" "$TMP/init.c" || fail "cannot build the test /init"
	mkdir -p "$TMP/root/dev"
	cp "$TMP/init" "$TMP/root/init"
	# The kernel opens /dev/console for init; DEVTMPFS is off.
	mknod "$TMP/root/dev/console" c 5 1 2>/dev/null ||
		echo "note: cannot mknod /dev/console (not root?): init has no console"
	(cd "$TMP/root" && find . | cpio -o -H newc --quiet) >"$TMP/initrd.cpio" ||
		fail "cannot build the initramfs"
}

# stamp START_NS: copies stdin to stdout, each line prefixed by the wall
# seconds since START_NS (guest timestamps lag under emulation: PLATFORM.md).
stamp() {
	local start=$1 line
	while IFS= read -r line || [ -n "$line" ]; do
		printf '%7.1f %s\n' "$(( ($(date +%s%N) - start) / 1000000 ))e-3" "$line"
	done
}

# boot_linux CPUS VMM-TIMEOUT [EXTRA ember-vmm ARGS...]: boots with the test
# initramfs; the console goes to $TMP/console with each line prefixed by
# wall seconds since the start; sets $rc (ember-vmm's exit status) and $ms
# (wall time), and also writes them to $TMP/rc (for a background boot).
# No 'quiet': the checks read KERN_INFO lines. rodata=off saves seconds of
# emulated page-table work on PVM and is harmless elsewhere.
boot_linux() {
	local cpus=$1 limit=$2 start
	shift 2
	start=$(date +%s%N)
	"$VMM" --kernel "$KERNEL" --initrd "$TMP/initrd.cpio" --mem 256 \
		--cpus "$cpus" --timeout "$limit" "$@" \
		--cmdline "console=ttyS0 reboot=k panic=-1 rodata=off" \
		2>"$TMP/err" | stamp "$start" >"$TMP/console"
	rc=${PIPESTATUS[0]}
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	echo "$rc $ms" >"$TMP/rc"
	echo "ember-vmm --cpus $cpus: exit $rc after $ms ms (pvm=$PVM)"
	echo "--- stderr"; cat "$TMP/err"
	echo "--- console (selected lines; first column: wall seconds)"
	grep -E 'Linux version|Command line|BIOS-e820|MPTABLE|Processor #|IOAPIC\[|Allowing|smpboot|smp:|x86: Booting|CPU1|Brought up|Run /init|EMBER-LINUX-INIT|segfault|Kernel panic|Rebooting|Restarting' \
		"$TMP/console" | head -60
	echo "--- last console lines"; tail -5 "$TMP/console"
	echo "---"
}

# expect REGEX WHAT: fails unless the console matches.
expect() {
	grep -qE "$1" "$TMP/console" || fail "$2"
}
