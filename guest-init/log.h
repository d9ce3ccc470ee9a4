/*
 * log.h - guest-init's diagnostics.
 *
 * Owns: the one place guest-init writes its own messages: its stderr, which
 * is the console (/dev/console, the serial port) in a VM and the caller's
 * stderr on the Unix-socket seam. Every line starts with "guest-init: ".
 * A VM's serial port costs a VM exit per byte, so nothing here is printed
 * per request unless `log_verbose` is set (ember.debug / --verbose).
 */
#ifndef GI_LOG_H
#define GI_LOG_H

extern int log_verbose;

void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Only with log_verbose. */
void log_dbg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
