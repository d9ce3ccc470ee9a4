/*
 * lib.c - the micro guest's small C library: a printf subset, the serial
 * console, hypercalls and VM exit. The string functions are shared with the
 * test guests (guest-drivers/gd_string.c).
 */
#include "kernel.h"

struct out {
	char *buf;
	size_t size, len;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_num(struct out *o, uint64_t v, unsigned base, int neg,
		    int width, char pad, int upper)
{
	char tmp[24];
	int n = 0;
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	for (int i = n; i < width; i++)
		put(o, pad);
	while (n)
		put(o, tmp[--n]);
}

/* %d %i %u %x %X %p %s %c %%, flags '0', width, l/ll/z modifiers. */
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };

	for (; *fmt; fmt++) {
		int width = 0, lng = 0;
		char pad = ' ';

		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0')
			pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z')
			lng++, fmt++;
		switch (*fmt) {
		case 'd':
		case 'i': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			put_num(&o, v < 0 ? -(uint64_t)v : (uint64_t)v, 10,
				v < 0, width, pad, 0);
			break;
		}
		case 'u':
		case 'x':
		case 'X': {
			uint64_t v = lng ? va_arg(ap, uint64_t) :
					   va_arg(ap, unsigned);
			put_num(&o, v, *fmt == 'u' ? 10 : 16, 0, width, pad,
				*fmt == 'X');
			break;
		}
		case 'p':
			put(&o, '0');
			put(&o, 'x');
			put_num(&o, (uint64_t)(uintptr_t)va_arg(ap, void *), 16,
				0, width, pad, 0);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			while (*s)
				put(&o, *s++);
			break;
		}
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case '%':
			put(&o, '%');
			break;
		default:
			put(&o, '%');
			if (!*fmt)
				fmt--;
			else
				put(&o, *fmt);
			break;
		}
	}
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int ksnprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = kvsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

/* The VMM's 8250 is always ready to transmit, so no LSR polling: one OUT
 * (one VM exit) per byte. Only for diagnostics and the debug stdout. */
void serial_write(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		outb(EMBER_PORT_COM1, (uint8_t)s[i]);
}

void kprintf(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	memcpy(line, "micro: ", 7);
	n = kvsnprintf(line + 7, sizeof(line) - 7, fmt, ap);
	va_end(ap);
	n = MIN(n + 7, (int)sizeof(line) - 1);
	serial_write(line, (size_t)n);
}

int64_t hypercall(uint32_t op, uint64_t arg0)
{
	volatile struct ember_hypercall *hc =
		(volatile struct ember_hypercall *)EMBER_HCALL_GPA;

	hc->arg0 = arg0;
	hc->ret = 0;
	outl(EMBER_PORT_HYPERCALL, op);
	return hc->ret;
}

void micro_exit_vm(uint32_t status)
{
	for (;;)
		outl(EMBER_PORT_EXIT, status);
}
