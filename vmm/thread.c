/*
 * thread.c - the thread-kind hook of ember.h: one call per thread at the
 * point its setup ends, so that an embedder (ember-vmm's jail) can install
 * a seccomp filter per kind there. Global like the log sink: set it before
 * any VM exists.
 */
#include "ember.h"

#include <stddef.h>

static ember_thread_fn thread_hook;
static void *thread_hook_opaque;

void ember_set_thread_hook(ember_thread_fn fn, void *opaque)
{
	thread_hook = fn;
	thread_hook_opaque = opaque;
}

void ember_thread_serving(enum ember_thread_kind kind)
{
	if (thread_hook)
		thread_hook(kind, thread_hook_opaque);
}

const char *ember_thread_kind_name(enum ember_thread_kind kind)
{
	static const char *const names[] = {
		[EMBER_THREAD_MAIN] = "main",
		[EMBER_THREAD_CONTROL] = "control",
		[EMBER_THREAD_VCPU] = "vcpu",
		[EMBER_THREAD_EVENT] = "event",
		[EMBER_THREAD_RESTORE] = "restore",
	};

	if ((unsigned)kind < sizeof(names) / sizeof(names[0]))
		return names[kind];
	return "invalid";
}
