/*
 * cli_seccomp.c - ember-vmm --seccomp: compiles the per-thread allow-lists
 * of vmm/seccomp.c for this process's flags, and installs the thread hook
 * (ember.h) through which each thread loads its own list where its setup
 * ends. Part of the ember-vmm program; docs/seccomp.md.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "seccomp.h"

static enum seccomp_thread seccomp_kind(enum ember_thread_kind kind)
{
	switch (kind) {
	case EMBER_THREAD_MAIN:
		return SECCOMP_THREAD_MAIN;
	case EMBER_THREAD_CONTROL:
		return SECCOMP_THREAD_CONTROL;
	case EMBER_THREAD_VCPU:
		return SECCOMP_THREAD_VCPU;
	case EMBER_THREAD_EVENT:
		return SECCOMP_THREAD_EVLOOP;
	case EMBER_THREAD_RESTORE:
		return SECCOMP_THREAD_RESTORE;
	}
	return SECCOMP_NR_THREADS; /* seccomp_apply() refuses it */
}

/* Runs on the thread being restricted. A thread that cannot load its
 * filter must not go on unfiltered: the whole process ends here. */
static void apply_hook(enum ember_thread_kind kind, void *opaque)
{
	enum seccomp_thread k = seccomp_kind(kind);
	int ret = seccomp_apply(k);

	(void)opaque;
	if (ret < 0) {
		fprintf(stderr, "ember-vmm: --seccomp: cannot load the %s "
			"thread's filter: %s\n", ember_thread_kind_name(kind),
			strerror(-ret));
		_exit(ST_UNAVAILABLE);
	}
}

int cli_seccomp_setup(const char *mode, unsigned flags)
{
	enum seccomp_mode m = SECCOMP_OFF;
	char err[512];
	int ret;

	if (!mode || !strcmp(mode, "off"))
		return ST_OK;
	if (!strcmp(mode, "kill"))
		m = SECCOMP_KILL;
	else if (!strcmp(mode, "log"))
		m = SECCOMP_LOG;
	ret = seccomp_prepare(m, flags, err, sizeof(err));
	if (ret == -ENOSYS) {
		fprintf(stderr, "ember-vmm: --seccomp: this kernel cannot load "
			"seccomp filters (CONFIG_SECCOMP_FILTER); run with "
			"--no-seccomp to go without\n");
		return ST_UNAVAILABLE;
	}
	if (ret < 0) {
		fprintf(stderr, "ember-vmm: --seccomp: %s\n", err);
		return ST_SOFTWARE;
	}
	/*
	 * glibc's malloc gives a thread that meets contention an arena of its
	 * own, and the first time such an arena's heap shrinks, free() reads
	 * /proc/sys/vm/overcommit_memory (check_may_shrink_heap): an openat
	 * that no filtered thread may make. The event thread died of it in
	 * about 1 vsock-echo run in 6 beside a CPU hog. One arena for the
	 * whole process, then: the main one, which shrinks with brk. Called
	 * before any thread exists; the VMM allocates little once it runs.
	 * Where malloc is not glibc's (the sanitizer build's allocator),
	 * mallopt() answers 0 and there is nothing to set.
	 */
	(void)mallopt(M_ARENA_MAX, 1);
	ember_set_thread_hook(apply_hook, NULL);
	return ST_OK;
}
