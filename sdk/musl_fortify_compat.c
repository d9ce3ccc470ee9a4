/*
 * musl_fortify_compat.c - lets Debian's liblua5.4.a link with musl-gcc.
 *
 * Debian builds liblua5.4.a against glibc with _FORTIFY_SOURCE=2, so its
 * objects call glibc's checked entry points, which musl does not have. These
 * are the four it uses (found by linking), each making the check glibc makes
 * (the destination size known at compile time) and then calling musl's
 * plain function. Linked only into handlers/lua.musl. jmp_buf is 200 bytes
 * in both libcs and both setjmp and longjmp come from musl, so the
 * __longjmp_chk mapping is sound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int __fprintf_chk(FILE *f, int flag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void *__memcpy_chk(void *dst, const void *src, size_t n, size_t dstlen);
_Noreturn void __longjmp_chk(jmp_buf env, int val);

_Static_assert(sizeof(jmp_buf) == 200, "glibc's jmp_buf is 200 bytes");

int __fprintf_chk(FILE *f, int flag, const char *fmt, ...)
{
	va_list ap;
	int n;

	(void)flag;
	va_start(ap, fmt);
	n = vfprintf(f, fmt, ap);
	va_end(ap);
	return n;
}

int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen,
		   const char *fmt, ...)
{
	va_list ap;
	int n;

	(void)flag;
	if (slen < maxlen) /* glibc: __chk_fail() */
		abort();
	va_start(ap, fmt);
	n = vsnprintf(s, maxlen, fmt, ap);
	va_end(ap);
	return n;
}

void *__memcpy_chk(void *dst, const void *src, size_t n, size_t dstlen)
{
	if (dstlen < n)
		abort();
	return memcpy(dst, src, n);
}

_Noreturn void __longjmp_chk(jmp_buf env, int val)
{
	longjmp(env, val);
}
