/*
 * rt.c - the freestanding runtime of Ember's test guests. See rt.h.
 */
#include "rt.h"

#include "guest-drivers/gd_platform.h"

/* Stack the bump allocator leaves alone below the top of low RAM (where the
 * VMM points RSP). */
#define RT_STACK_RESERVE (1u << 20)

const struct ember_boot_info *rt_boot_info;
static uintptr_t heap_next, heap_end;
static bool use_wait;

extern char __bss_start[], __bss_end[], __image_end[];

/* ---- console ---- */

void rt_putc(char c)
{
	/* The VMM's 8250 accepts every byte at once: no LSR polling. */
	rt_outb(EMBER_PORT_COM1, (uint8_t)c);
}

void rt_puts(const char *s)
{
	while (*s)
		rt_putc(*s++);
}

struct out {
	char *buf;   /* NULL: straight to the serial port */
	size_t size, len;
};

static void out_c(struct out *o, char c)
{
	if (!o->buf)
		rt_putc(c);
	else if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void out_num(struct out *o, uint64_t v, unsigned base, bool neg,
		    bool upper, int width, char pad, bool left)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = 0, len;

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	len = n + (neg ? 1 : 0);
	if (neg && pad == '0')
		out_c(o, '-');
	if (!left)
		for (; width > len; width--)
			out_c(o, pad);
	if (neg && pad != '0')
		out_c(o, '-');
	while (n)
		out_c(o, tmp[--n]);
	if (left)
		for (; width > len; width--)
			out_c(o, ' ');
}

static void vformat(struct out *o, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		int width = 0, lng = 0;
		char pad = ' ';
		bool left = false;
		uint64_t u;
		int64_t s;

		if (*fmt != '%') {
			out_c(o, *fmt);
			continue;
		}
		fmt++;
		for (; *fmt == '0' || *fmt == '-'; fmt++) {
			if (*fmt == '0')
				pad = '0';
			else
				left = true;
		}
		if (left)
			pad = ' ';
		for (; *fmt >= '0' && *fmt <= '9'; fmt++)
			width = width * 10 + (*fmt - '0');
		for (; *fmt == 'l' || *fmt == 'z'; fmt++)
			lng++;
		switch (*fmt) {
		case 'd':
		case 'i':
			s = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			u = s < 0 ? -(uint64_t)s : (uint64_t)s;
			out_num(o, u, 10, s < 0, false, width, pad, left);
			break;
		case 'u':
		case 'x':
		case 'X':
			u = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			out_num(o, u, *fmt == 'u' ? 10 : 16, false, *fmt == 'X',
				width, pad, left);
			break;
		case 'p':
			out_c(o, '0');
			out_c(o, 'x');
			out_num(o, (uintptr_t)va_arg(ap, void *), 16, false,
				false, width, pad, left);
			break;
		case 's': {
			const char *str = va_arg(ap, const char *);
			int len;

			if (!str)
				str = "(null)";
			len = (int)strlen(str);
			if (!left)
				for (; width > len; width--)
					out_c(o, ' ');
			while (*str)
				out_c(o, *str++);
			for (; width > len; width--)
				out_c(o, ' ');
			break;
		}
		case 'c':
			out_c(o, (char)va_arg(ap, int));
			break;
		case '%':
			out_c(o, '%');
			break;
		case '\0':
			return;
		default: /* unknown conversion: show it */
			out_c(o, '%');
			out_c(o, *fmt);
			break;
		}
	}
}

int rt_vprintf(const char *fmt, va_list ap)
{
	struct out o = { NULL, 0, 0 };

	vformat(&o, fmt, ap);
	return (int)o.len;
}

int rt_printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = rt_vprintf(fmt, ap);
	va_end(ap);
	return n;
}

int rt_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	struct out o = { buf, size, 0 };
	va_list ap;

	va_start(ap, fmt);
	vformat(&o, fmt, ap);
	va_end(ap);
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

/* ---- exit ---- */

void rt_exit(uint32_t status)
{
	rt_outl(EMBER_PORT_EXIT, status);
	/* The VMM never resumes us; if it did, do not run on. */
	for (;;)
		rt_cpu_relax();
}

void rt_poweroff(void)
{
	rt_outb(EMBER_PORT_I8042_CMD, EMBER_I8042_CMD_RESET);
	for (;;)
		rt_cpu_relax();
}

void rt_panic(const char *fmt, ...)
{
	va_list ap;

	rt_puts("PANIC: ");
	va_start(ap, fmt);
	rt_vprintf(fmt, ap);
	va_end(ap);
	rt_putc('\n');
	rt_exit(99);
}

/* ---- memory ---- */

void *rt_alloc(size_t size, size_t align)
{
	uintptr_t p;

	if (align == 0 || (align & (align - 1)))
		return NULL;
	p = (heap_next + align - 1) & ~(uintptr_t)(align - 1);
	if (p < heap_next || p > heap_end || size > heap_end - p)
		return NULL;
	heap_next = p + size;
	/* RAM is zero when the VM starts, but be explicit: callers rely on
	 * it and a snapshot-restored guest may reuse nothing else. */
	memset((void *)p, 0, size);
	return (void *)p;
}

uint64_t rt_mem_free(void)
{
	return heap_end - heap_next;
}

/* ---- time ---- */

uint64_t rt_tsc_to_ns(uint64_t ticks)
{
	uint64_t khz = rt_boot_info->tsc_khz;

	if (!khz)
		return 0;
	/* ticks * 1e6 / khz without overflowing for ~5 h at 5 GHz. */
	return ticks / khz * 1000000 + ticks % khz * 1000000 / khz;
}

uint64_t rt_now_ns(void)
{
	return rt_tsc_to_ns(rt_rdtsc());
}

/* ---- hypercalls ---- */

int64_t rt_hypercall(uint32_t op, uint64_t a0, uint64_t a1, uint64_t a2)
{
	volatile struct ember_hypercall *hc =
		(volatile struct ember_hypercall *)(uintptr_t)EMBER_HCALL_GPA;

	hc->arg0 = a0;
	hc->arg1 = a1;
	hc->arg2 = a2;
	hc->ret = 0;
	rt_outl(EMBER_PORT_HYPERCALL, op); /* "memory" clobber orders these */
	return hc->ret;
}

int rt_hc_wait(uint64_t timeout_ns)
{
	return (int)rt_hypercall(EMBER_HC_WAIT, timeout_ns, 0, 0);
}

void rt_hc_ready(void)
{
	rt_hypercall(EMBER_HC_READY, 0, 0, 0);
}

/* ---- command line ---- */

const char *rt_cmdline(void)
{
	const char *s = (const char *)(uintptr_t)rt_boot_info->cmdline_gpa;

	return s ? s : "";
}

/* Finds word `w` (or "w=" prefix when eq) and returns what follows it. */
static const char *find_word(const char *w, bool eq)
{
	const char *s = rt_cmdline();
	size_t n = strlen(w);

	while (*s) {
		const char *e;

		while (*s == ' ')
			s++;
		for (e = s; *e && *e != ' '; e++)
			;
		if ((size_t)(e - s) >= n && strncmp(s, w, n) == 0) {
			if (!eq && (size_t)(e - s) == n)
				return e;
			if (eq && s[n] == '=')
				return s + n + 1;
		}
		s = e;
	}
	return NULL;
}

bool rt_cmdline_has(const char *w)
{
	return find_word(w, false) != NULL;
}

bool rt_cmdline_u64(const char *key, uint64_t *out)
{
	const char *s = find_word(key, true);
	uint64_t v = 0;
	unsigned base = 10;
	bool any = false;

	if (!s)
		return false;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	for (; *s && *s != ' '; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return false;
		if (v > (UINT64_MAX - d) / base)
			return false; /* overflow */
		v = v * base + d;
		any = true;
	}
	if (!any)
		return false;
	*out = v;
	return true;
}

/* ---- platform hooks for guest-drivers/ ---- */

void *gd_alloc(size_t size, size_t align)
{
	return rt_alloc(size, align);
}

uint64_t gd_virt_to_phys(const void *p)
{
	return (uintptr_t)p; /* identity-mapped */
}

void gd_idle(void)
{
	/* Sleep in the VMM until a device pushes used buffers; "nowait" on
	 * the command line spins instead. The timeout (so that driver
	 * timeouts still run) starts at 1 ms and doubles up to 64 ms while
	 * nothing happens, so an idle guest costs the host almost nothing. */
	static uint64_t timeout_ns = 1000000;

	if (!use_wait) {
		rt_cpu_relax();
		return;
	}
	if (rt_hc_wait(timeout_ns) == 1)
		timeout_ns = 1000000;
	else if (timeout_ns < 64000000)
		timeout_ns *= 2;
}

uint64_t gd_now_ns(void)
{
	return rt_now_ns();
}

/* ---- entry ---- */

void rt_start(struct ember_boot_info *bi);
void rt_start(struct ember_boot_info *bi)
{
	uint64_t top, ram;

	/* .bss is zero in fresh RAM, but the ELF loader is not ours to trust
	 * with that: clear it before any C state is used. */
	memset(__bss_start, 0, (size_t)(__bss_end - __bss_start));
	if (!bi || bi->magic != EMBER_BOOT_INFO_MAGIC)
		bi = (struct ember_boot_info *)(uintptr_t)EMBER_BOOT_INFO_GPA;
	rt_boot_info = bi;
	if (bi->magic != EMBER_BOOT_INFO_MAGIC ||
	    bi->version != EMBER_BOOT_INFO_VERSION) {
		rt_puts("rt: bad boot info\n");
		rt_exit(98);
	}

	/* Heap: from the end of the image up to the reserved stack below
	 * the top of low RAM (RSP at entry). */
	ram = bi->low_ram_size;
	if (ram > EMBER_LOW_RAM_MAX)
		ram = EMBER_LOW_RAM_MAX;
	heap_next = bi->image_end > (uintptr_t)__image_end ? bi->image_end
							  : (uintptr_t)__image_end;
	top = ram > RT_STACK_RESERVE ? ram - RT_STACK_RESERVE : 0;
	heap_end = top > heap_next ? top : heap_next;

	use_wait = !rt_cmdline_has("nowait");
	rt_exit((uint32_t)main());
}
