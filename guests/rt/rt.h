/*
 * rt.h - the freestanding runtime of Ember's test guests.
 *
 * Owns: the C entry (rt_start, called from crt0.S), port I/O, the serial
 * console (COM1, write-only: the VMM's 8250 is always ready), printf, exit
 * and power-off, the string functions the compiler may call, a bump
 * allocator over free RAM, rdtsc timing and the hypercall page. It also
 * provides the platform hooks of guest-drivers/gd_platform.h. Single-threaded,
 * no interrupts: a guest is one CPU running main() to completion.
 *
 * A guest defines `int main(void)`; its return value becomes the exit status
 * (EMBER_PORT_EXIT). Idle driver loops sleep in the VMM with EMBER_HC_WAIT
 * (1 ms at most each time); the cmdline word "nowait" makes them spin.
 */
#ifndef EMBER_GUEST_RT_H
#define EMBER_GUEST_RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ember/abi.h"

/* Provided by each guest program. */
int main(void);

/* The boot info the VMM handed over (validated by rt_start). */
extern const struct ember_boot_info *rt_boot_info;

/* Port I/O. The VMM starts guests with RFLAGS.IOPL=3, so these work at CPL3. */
static inline void rt_outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}
static inline void rt_outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}
static inline uint8_t rt_inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

static inline uint64_t rt_rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void rt_cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

/* Console. rt_printf understands %d %i %u %x %X %p %s %c %% with the l, ll,
 * z length modifiers, a field width and the '0' and '-' flags. Returns the
 * number of characters written. */
void rt_putc(char c);
void rt_puts(const char *s); /* no newline added */
int rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int rt_vprintf(const char *fmt, va_list ap);
/* Formats into buf (size > 0, always NUL-terminated); returns the length
 * the full output would have had. */
int rt_snprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Ends the VM with `status` (32-bit write to EMBER_PORT_EXIT). */
__attribute__((noreturn)) void rt_exit(uint32_t status);
/* Clean power-off: i8042 reset command (0xfe to port 0x64), status 0. */
__attribute__((noreturn)) void rt_poweroff(void);
/* Prints "PANIC: ..." and exits with status 99. */
__attribute__((noreturn, format(printf, 1, 2))) void rt_panic(const char *fmt,
							       ...);

/* Bump allocator over [boot_info.image_end, stack bottom). Returns zeroed
 * memory aligned to `align` (a power of two), or NULL when exhausted.
 * Memory is never freed. Identity-mapped: the pointer is the gpa. */
void *rt_alloc(size_t size, size_t align);
/* Bytes still available to rt_alloc (ignoring alignment). */
uint64_t rt_mem_free(void);

/* Time from the TSC: 0 when boot_info.tsc_khz is unknown. */
uint64_t rt_tsc_to_ns(uint64_t ticks);
uint64_t rt_now_ns(void);

/* Hypercalls (EMBER_PORT_HYPERCALL + the page at EMBER_HCALL_GPA).
 * rt_hc_wait returns 1 when woken by a used buffer, 0 on timeout. */
int64_t rt_hypercall(uint32_t op, uint64_t a0, uint64_t a1, uint64_t a2);
int rt_hc_wait(uint64_t timeout_ns);
void rt_hc_ready(void);

/* Command line (boot_info.cmdline_gpa), words separated by spaces.
 * rt_cmdline_has: true when the word `w` is present.
 * rt_cmdline_u64: for "key=NUMBER" (decimal or 0x hex), stores the number
 * and returns true; false when absent or malformed. */
const char *rt_cmdline(void);
bool rt_cmdline_has(const char *w);
bool rt_cmdline_u64(const char *key, uint64_t *out);

/* String functions: standard semantics. The compiler may emit calls to the
 * mem* ones by itself, so they carry their standard names. */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

#endif
