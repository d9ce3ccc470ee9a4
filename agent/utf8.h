/*
 * utf8.h - making untrusted bytes safe to show: valid UTF-8 with no
 * control characters but tab and newline.
 *
 * Owns: one function, used wherever bytes a guest or tenant wrote reach a
 * JSON document, a CSV file or a terminal (invocation logs, log lines).
 * Threads: any (no state).
 */
#ifndef EMBER_AGENT_UTF8_H
#define EMBER_AGENT_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Copies src[len] into dst, replacing every invalid UTF-8 sequence
 * (stray or missing continuation bytes, overlong forms, surrogates, code
 * points past U+10FFFF) and every control character but tab and newline
 * (C0, DEL, C1) with U+FFFD. dst must have room for 3 * len + 1 bytes;
 * it is NUL-terminated. Returns the bytes written, without the NUL. */
size_t utf8_clean(char *dst, const uint8_t *src, size_t len);

#endif
