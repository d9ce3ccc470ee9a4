/*
 * density.c - scenario e: N idle clones of one snapshot, their memory
 * (PSS, private) and the CPU an idle clone costs.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coldstart.h"

/* utime + stime of a process, in clock ticks; -1 if not readable. */
static long proc_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime */
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &ut, &st) == 2)
		v = (long)(ut + st);
	fclose(f);
	return v;
}

long meminfo_kib(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");
	size_t kl = strlen(key);

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

int smaps_rollup(pid_t pid, struct density *d)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char key[64];
		long v;

		if (sscanf(line, "%63[^:]: %ld kB", key, &v) != 2)
			continue;
		if (!strcmp(key, "Pss"))
			d->pss += (double)v;
		else if (!strcmp(key, "Rss"))
			d->rss += (double)v;
		else if (!strcmp(key, "Private_Clean"))
			d->priv_clean += (double)v;
		else if (!strcmp(key, "Private_Dirty"))
			d->priv_dirty += (double)v;
		else if (!strcmp(key, "Shared_Clean"))
			d->shared_clean += (double)v;
	}
	fclose(f);
	return 0;
}

/* Frozen clones cannot reach their own --timeout: if this program dies
 * without cleaning up (SIGKILL), a watchdog child kills their process
 * group when our end of its pipe closes. */
static pid_t watchdog_start(int *wfd)
{
	int p[2];
	pid_t dog;

	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	dog = fork();
	if (dog < 0)
		die("fork: %s", strerror(errno));
	if (dog == 0) {
		pid_t pg = 0;
		char b;

		close(p[1]);
		if (read(p[0], &pg, sizeof(pg)) == sizeof(pg) && pg > 0) {
			while (read(p[0], &b, 1) < 0 && errno == EINTR)
				;
			kill(-pg, SIGKILL);
		}
		_exit(0);
	}
	close(p[0]);
	*wfd = p[1];
	return dog;
}

void run_density(struct cfg *c, struct density *d)
{
	pid_t *pids = calloc(d->want, sizeof(*pids));
	uint64_t t0 = now_ns(), limit = t0 + 120000000000ull;
	long avail0;
	char why[256];
	int dogfd;
	pid_t dog;

	if (!pids)
		die("out of memory");
	dog = watchdog_start(&dogfd);
	sync();
	avail0 = meminfo_kib("MemAvailable");
	for (unsigned i = 0; i < d->want && now_ns() < limit; i++) {
		char *sock = xasprintf("%s/clone-%u.sock", c->work, i);
		char *argv[] = { c->vmm, "-q", "--restore", c->snap,
				 "--vsock", sock, "--serial", "none",
				 "--timeout", "300", NULL };
		struct run r;

		unlink(sock);
		/* All clones in one new process group, led by the first. */
		g_spawn_pgroup = i ? pids[0] : 0;
		pids[i] = spawn(argv);
		g_spawn_pgroup = -1;
		if (pids[i] < 0) {
			snprintf(d->error, sizeof(d->error), "spawn clone %u: %s",
				 i, strerror(errno));
			free(sock);
			break;
		}
		if (i == 0 && write(dogfd, &pids[0], sizeof(pids[0])) !=
				      sizeof(pids[0]))
			die("watchdog: %s", strerror(errno));
		d->started++;
		memset(&r, 0, sizeof(r));
		if (start_session(sock, pids[i], now_ns(), &r, why,
				  sizeof(why)) < 0) {
			if (!d->error[0])
				snprintf(d->error, sizeof(d->error),
					 "clone %u: %.200s", i, why);
		} else {
			d->initialised++;
		}
		/* An idle micro guest still wakes every 10 ms (its idle
		 * guard timeout): ~2% of a core each, so a few hundred
		 * running clones saturate this 2-core host and starve the
		 * rest of the run. Each clone is frozen once initialised;
		 * its memory is what an idle clone holds (run_idle_cpu()
		 * reports the CPU side). */
		kill(pids[i], SIGSTOP);
		free(sock);
	}
	d->seconds = us_since(t0, now_ns()) / 1e6;
	for (unsigned i = 0; i < d->started; i++)
		if (pids[i] > 0 && smaps_rollup(pids[i], d) < 0 && !d->error[0])
			snprintf(d->error, sizeof(d->error),
				 "smaps_rollup of clone %u unreadable", i);
	d->memavail_delta_kib = avail0 - meminfo_kib("MemAvailable");
	for (unsigned i = 0; i < d->started; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
	for (unsigned i = 0; i < d->started; i++)
		if (pids[i] > 0)
			kid_reap(pids[i]);
	/* Every clone is reaped: the watchdog may go (its kill finds an
	 * empty group, or none). */
	close(dogfd);
	while (waitpid(dog, NULL, 0) < 0 && errno == EINTR)
		;
	for (unsigned i = 0; i < d->started; i++) {
		char *sock = xasprintf("%s/clone-%u.sock", c->work, i);

		unlink(sock);
		free(sock);
	}
	free(pids);
}

void run_idle_cpu(struct cfg *c, struct idle_cpu *ic)
{
	pid_t pids[16];
	long t0[16], t1[16], total = 0;
	unsigned n = ic->clones > 16 ? 16 : ic->clones, started = 0;
	char why[256];
	uint64_t a, b;

	for (unsigned i = 0; i < n; i++) {
		char *sock = xasprintf("%s/idle-%u.sock", c->work, i);
		char *argv[] = { c->vmm, "-q", "--restore", c->snap, "--vsock",
				 sock, "--serial", "none", "--timeout", "60",
				 NULL };
		struct run r;

		unlink(sock);
		pids[i] = spawn(argv);
		if (pids[i] < 0) {
			snprintf(ic->error, sizeof(ic->error), "spawn: %s",
				 strerror(errno));
			free(sock);
			break;
		}
		started++;
		memset(&r, 0, sizeof(r));
		if (start_session(sock, pids[i], now_ns(), &r, why,
				  sizeof(why)) < 0 && !ic->error[0])
			snprintf(ic->error, sizeof(ic->error), "%.200s", why);
		unlink(sock);
		free(sock);
	}
	usleep(300000);
	a = now_ns();
	for (unsigned i = 0; i < started; i++)
		t0[i] = proc_cpu_ticks(pids[i]);
	usleep((useconds_t)(ic->seconds * 1e6));
	for (unsigned i = 0; i < started; i++)
		t1[i] = proc_cpu_ticks(pids[i]);
	b = now_ns();
	for (unsigned i = 0; i < started; i++) {
		if (t0[i] >= 0 && t1[i] >= 0)
			total += t1[i] - t0[i];
		kid_reap(pids[i]);
	}
	ic->clones = started;
	if (started)
		ic->cpu_percent_per_clone = 100.0 * (double)total /
			(double)sysconf(_SC_CLK_TCK) / ((double)(b - a) / 1e9) /
			started;
}
