/*
 * main.c - the micro guest's boot: check the boot info, bring up memory,
 * clock, entropy, the file image (virtio-blk) and the invocation stream
 * (virtio-vsock), load the handler, and start it at CPL3.
 *
 * Command line (boot_info.cmdline_gpa, words separated by spaces):
 *   debug            trace syscalls the kernel does not implement and echo
 *                    stdout/stderr on the serial console
 *   strace           print every system call and its result on the console
 *   preempt=MS       the preemption tick in ms (default 10, 0 = none)
 *   spin=US          the longest the idle loop polls vsock before it sleeps
 *                    in the VMM, in us (default 100; the budget adapts
 *                    below it, guest-drivers/spin.h; 0 = never spin)
 *   handler=PATH     run PATH from the image when no boot module is given
 *                    (also the handler's argv[0]; default "/handler")
 *   KEY=VALUE        put into the handler's environment
 *   -- ARGS...       the handler's argv[1..]
 */
#include "kernel.h"
#include "blk.h"
#include "gd_platform.h"
#include "spin.h"

const struct ember_boot_info *boot_info;
char micro_cmdline_debug, micro_cmdline_strace;
uint64_t micro_preempt_ns = SCHED_SLICE_NS;
uint64_t micro_spin_max_ns = GD_SPIN_DEFAULT_MAX_NS;
static char handler_path[256] = "/handler";

const char *micro_handler_path(void)
{
	return handler_path;
}

/* Finds `word` or `word=` on the command line; returns the value's start
 * (or the end of the word) and its length in *vlen, or NULL. */
static const char *cmdline_find(const char *cl, const char *word,
				size_t *vlen)
{
	size_t wl = strlen(word), i = 0, n = strnlen(cl, EMBER_CMDLINE_MAX);

	while (i < n) {
		size_t s, e;

		while (i < n && cl[i] == ' ')
			i++;
		s = i;
		while (i < n && cl[i] != ' ')
			i++;
		e = i;
		if (e - s == 2 && !memcmp(cl + s, "--", 2))
			return NULL; /* the handler's arguments follow */
		if (e - s >= wl && !memcmp(cl + s, word, wl) &&
		    (e - s == wl || cl[s + wl] == '=')) {
			s += wl + (e - s > wl);
			*vlen = e - s;
			return cl + s;
		}
	}
	return NULL;
}

/* The decimal number a value starts with (0 if none), at most 10^6. */
static uint64_t cmdline_number(const char *v, size_t vl)
{
	uint64_t n = 0;

	for (size_t i = 0; i < vl && v[i] >= '0' && v[i] <= '9'; i++)
		n = MIN(n * 10 + (uint64_t)(v[i] - '0'), 1000000ULL);
	return n;
}

/* --- gd_platform.h hooks for the virtio drivers --- */

static uint64_t dma_next, dma_end;

void *gd_alloc(size_t size, size_t align)
{
	uint64_t a;

	if (!align || (align & (align - 1)) || align > PAGE_SIZE)
		return NULL;
	a = (dma_next + align - 1) & ~(uint64_t)(align - 1);
	if (!dma_next || a + size > dma_end || a + size < a) {
		/* A new chunk from the top of RAM: driver memory is
		 * allocated at boot only, never freed. */
		uint64_t chunk = MAX(PAGE_UP(size), 64 * 1024);

		a = mm_alloc_top(chunk);
		if (!a)
			return NULL;
		dma_end = a + chunk;
	}
	dma_next = a + size;
	/* No memset: mm_alloc_top() hands out zeroed memory (it clears ranges
	 * that were ever used), and this bump allocator never reuses any.
	 * Zeroing again touched ~330 fresh pages at boot, ~4 ms here
	 * (docs/benchmarks.md). */
	return (void *)a;
}

uint64_t gd_virt_to_phys(const void *p)
{
	return (uint64_t)(uintptr_t)p; /* identity-mapped */
}

void gd_idle(void)
{
	/*
	 * Sleep in the VMM until a device pushes a used buffer. No wake-up can
	 * be lost: the VMM's wake eventfd counts every push since the last
	 * WAIT, so a push that lands between our last look at the rings and
	 * this WAIT makes it return at once. The timeout only bounds how late
	 * the guest's own timers (vsock close timeouts) are looked at; it is
	 * long so that an idle clone costs no CPU (at 10 ms, 100 idle clones
	 * kept both cores busy: docs/benchmarks.md).
	 */
	micro_wait(1000ULL * 1000 * 1000);
}

uint64_t gd_now_ns(void)
{
	return time_mono_ns();
}

static struct gblk blk;
static bool have_blk;
struct gblk *micro_blk(void);
struct gblk *micro_blk(void)
{
	return have_blk ? &blk : NULL;
}

/* Reads the whole file `path` from the image into fresh memory (used when
 * the handler comes from the image rather than a boot module). */
static int load_from_image(const char *path, uint64_t *addr, uint64_t *len)
{
	long fd = fs_openat(-100 /* AT_FDCWD */, path, 0, 0);
	uint8_t st[144];
	uint64_t size, a;
	long n;

	if (fd < 0)
		return (int)fd;
	if (fs_fstat((int)fd, st) < 0) {
		fs_close((int)fd);
		return -EIO;
	}
	memcpy(&size, st + 48, 8); /* struct stat.st_size (x86-64) */
	a = mm_alloc_top(PAGE_UP(size ? size : 1));
	if (!a) {
		fs_close((int)fd);
		return -ENOMEM;
	}
	n = fs_pread((int)fd, (void *)a, size, 0);
	fs_close((int)fd);
	if (n < 0 || (uint64_t)n != size)
		return n < 0 ? (int)n : -EIO;
	*addr = a;
	*len = size;
	return 0;
}

__attribute__((noreturn)) void micro_main(const struct ember_boot_info *bi);
void micro_main(const struct ember_boot_info *bi)
{
	const char *cl, *v;
	size_t vl;
	uint64_t entry = 0, sp = 0, mod, mod_len;
	int ret;

	if (!bi || bi->magic != EMBER_BOOT_INFO_MAGIC ||
	    bi->version != EMBER_BOOT_INFO_VERSION) {
		serial_write("micro: bad boot info\n", 21);
		micro_exit_vm(MICRO_EXIT_PANIC);
	}
	boot_info = bi;
	time_init();
	random_init(bi->seed);
	cl = (const char *)(uintptr_t)bi->cmdline_gpa;
	if (cmdline_find(cl, "debug", &vl))
		micro_cmdline_debug = 1;
	if (cmdline_find(cl, "strace", &vl))
		micro_cmdline_strace = 1;
	v = cmdline_find(cl, "handler", &vl);
	if (v && vl > 0 && vl < sizeof(handler_path)) {
		memcpy(handler_path, v, vl);
		handler_path[vl] = '\0';
	}
	v = cmdline_find(cl, "preempt", &vl);
	if (v)
		micro_preempt_ns = cmdline_number(v, vl) * 1000000u;
	v = cmdline_find(cl, "spin", &vl);
	if (v)
		micro_spin_max_ns = cmdline_number(v, vl) * 1000u;
	mm_init();

	/* Devices: the first virtio-blk is the image, the first vsock the
	 * invocation stream (ember-vmm --micro --disk IMAGE --vsock PATH). */
	for (uint32_t i = 0; i < bi->nr_virtio && i < EMBER_VIRTIO_MAX_DEVICES;
	     i++) {
		if (bi->virtio[i].device_id == GBLK_DEVICE_ID && !have_blk) {
			ret = gblk_init(&blk, (uintptr_t)bi->virtio[i].gpa, 0);
			if (ret)
				kprintf("virtio-blk at 0x%lx: error %d\n",
					bi->virtio[i].gpa, ret);
			else
				have_blk = true;
		}
	}
	if (have_blk) {
		ret = fs_init();
		if (ret)
			kprintf("file image unusable (error %d): no files\n",
				ret);
	}
	ret = stdio_init();
	if (ret)
		kprintf("invocation stream unavailable (error %d)\n", ret);
	stdio_install_fds();

	mod = bi->initrd_gpa;
	mod_len = bi->initrd_size;
	if (!mod || !mod_len) {
		ret = load_from_image(handler_path, &mod, &mod_len);
		if (ret) {
			kprintf("no handler: no boot module and %s: error %d\n",
				handler_path, ret);
			stdio_report_end(EMBER_ERR_INTERNAL, "no handler");
			micro_exit_vm(MICRO_EXIT_NO_HANDLER);
		}
	} else if (!mm_user_range(mod, mod_len)) {
		kprintf("boot module outside RAM\n");
		micro_exit_vm(MICRO_EXIT_PANIC);
	}
	ret = loader_load((const uint8_t *)(uintptr_t)mod, mod_len, &entry, &sp);
	if (ret) {
		stdio_report_end(EMBER_ERR_INTERNAL,
				 "the handler could not be loaded");
		micro_exit_vm(MICRO_EXIT_NO_HANDLER);
	}
	if (micro_cmdline_debug)
		kprintf("handler entry 0x%lx sp 0x%lx, %lu MiB free\n", entry,
			sp, mm_free_bytes() >> 20);
	sched_init();
	micro_enter_user(entry, sp, bi->cpl == 0);
}
