/*
 * main.c - Ember's cold-start benchmark (docs/benchmarks.md): the command
 * line, the snapshot every scenario restores, and the order of the runs.
 *
 * Measures how long it takes to get an answer from a function whose VM
 * does not exist yet, in the ways Ember can start one, and the QEMU peer:
 *
 *   a  new process: spawn `ember-vmm --restore DIR`, connect, invoke echo
 *   b  restore into a pre-created shell (libember) in this process, invoke
 *   b2 ember_vm_restore() in this process (shell created on the critical
 *      path), invoke
 *   c  the micro guest booted from scratch (no snapshot), invoke
 *   d  QEMU microvm restored with -incoming from a migration file, until
 *      QMP query-status says "running"
 *   e  density: N idle clones of one snapshot, PSS / private memory each
 *   f  restores per second with both cores (processes and library)
 *   g  working-set prefetch on vs off, for a and b
 *   h  b from a snapshot that carries its host connection: restored over
 *      it (no transport reset, handshake or READY) against the same
 *      snapshot restored with a new connection, each with and without
 *      prefetch
 *
 * All times come from clock_gettime(CLOCK_MONOTONIC) in this process. Steps
 * inside libember (b, b2) are timed by wrapping, at link time
 * (-Wl,--wrap=...), ioctl(), mmap(), madvise() and a few of libember's
 * internal functions (trace.c: this program must be rebuilt with the
 * library it measures). Nothing here asserts a timing: the numbers go to a
 * JSON report and a table (report.c).
 *
 * Files: util.c (time, samples, children, sockets), trace.c (the wraps),
 * session.c (one cold start as the client sees it), scenarios.c (a, b, b2,
 * c, f, g), qemu.c (d), density.c (e), report.c; coldstart.h is what they
 * share.
 *
 * Every child process is recorded and killed + reaped on every exit path
 * (normal, error, SIGINT/SIGTERM); each ember-vmm child also gets its own
 * --timeout so it ends by itself even if this program is SIGKILLed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coldstart.h"
#include "ember.h"

/* ---------------------------------------------------------------------
 * Setup and main
 */
static void make_snapshot(struct cfg *c, struct results *R)
{
	char *sock = xasprintf("%s/snap.sock", c->work);
	char *argv[] = { c->vmm, "-q", "--micro", "--handler",
			 c->handler, "--vsock", sock, "--serial",
			 "none", "--mem", SNAP_MEM_MIB_STR, "--snapshot-at-ready",
			 c->snap, "--timeout", "120", NULL };
	uint64_t t0 = now_ns();
	struct stat st;
	char *path;
	pid_t pid;
	int status = 0;

	pid = spawn(argv);
	if (pid < 0)
		die("spawn %s: %s", c->vmm, strerror(errno));
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	kid_forget(pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("making the snapshot failed (status %d): see %s/vmm.log",
		    status, c->work);
	R->snap_create_ms = us_since(t0, now_ns()) / 1000.0;
	path = xasprintf("%s/state", c->snap);
	if (!stat(path, &st))
		R->snap_state_bytes = (long)st.st_size;
	free(path);
	path = xasprintf("%s/memory", c->snap);
	if (!stat(path, &st))
		R->snap_mem_alloc_kib = (long)st.st_blocks / 2;
	free(path);
	unlink(sock);
	free(sock);
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char *p;
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		p = xasprintf("%s/%s", dir, e->d_name);
		if (!lstat(p, &st) && S_ISDIR(st.st_mode))
			rm_tree(p);
		else
			unlink(p);
		free(p);
	}
	closedir(d);
	rmdir(dir);
}

static void usage(FILE *f)
{
	fputs("usage: coldstart [--vmm PATH] [--handler PATH] [--qemu PATH]\n"
	      "                 [--out FILE] [--work DIR] [--quick] [--runs N]\n"
	      "                 [--clones N[,N..]] [--seconds S] [--only abcdefgh]\n"
	      "                 [--keep]\n"
	      "Runs the cold-start scenarios (docs/benchmarks.md), prints a\n"
	      "table and writes FILE (default bench/results/coldstart.json).\n"
	      "BENCH_QUICK=1 in the environment is --quick.\n", f);
}

static bool exists_exec(const char *p)
{
	return p && access(p, X_OK) == 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vmm", required_argument, NULL, 'v' },
		{ "handler", required_argument, NULL, 'H' },
		{ "qemu", required_argument, NULL, 'Q' },
		{ "out", required_argument, NULL, 'o' },
		{ "work", required_argument, NULL, 'w' },
		{ "quick", no_argument, NULL, 'q' },
		{ "runs", required_argument, NULL, 'n' },
		{ "clones", required_argument, NULL, 'C' },
		{ "seconds", required_argument, NULL, 's' },
		{ "only", required_argument, NULL, 'O' },
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	const char *qk = getenv("BENCH_QUICK");
	struct cfg c = { .out = "bench/results/coldstart.json",
			 .qemu = "/usr/bin/qemu-system-x86_64" };
	static struct results R;
	unsigned runs = 0;
	const char *clones = NULL;
	char *logpath;
	int o;

	c.vmm = xasprintf("%s/ember-vmm", build);
	c.handler = xasprintf("%s/handlers/echo", build);
	c.quick = qk && *qk && strcmp(qk, "0");
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'v': c.vmm = optarg; break;
		case 'H': c.handler = optarg; break;
		case 'Q': c.qemu = optarg; break;
		case 'o': c.out = optarg; break;
		case 'w': snprintf(c.work, sizeof(c.work), "%s", optarg); break;
		case 'q': c.quick = true; break;
		case 'n': runs = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'C': clones = optarg; break;
		case 's': c.tput_seconds = strtod(optarg, NULL); break;
		case 'O': snprintf(c.only, sizeof(c.only), "%s", optarg); break;
		case 'k': c.keep_work = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 64;
	}
	if (!exists_exec(c.vmm) || !exists_exec(c.handler))
		die("need %s and %s (make BUILD=%s bench-coldstart builds them)",
		    c.vmm, c.handler, build);
	/* Full run: >= 200 samples for the headline scenarios, the rest
	 * sized to keep the whole run under ~5 minutes on 2 cores. */
	c.runs_a = c.quick ? 30 : 300;
	c.runs_b = c.quick ? 30 : 300;
	c.runs_b2 = c.quick ? 10 : 100;
	c.runs_c = c.quick ? 5 : 50;
	c.runs_d = c.quick ? 3 : 30;
	c.runs_g = c.quick ? 20 : 100;
	c.runs_h = c.quick ? 20 : 150;
	if (runs)
		c.runs_a = c.runs_b = runs;
	if (!c.tput_seconds)
		c.tput_seconds = c.quick ? 1.0 : 5.0;
	if (!clones)
		clones = c.quick ? "20" : "100,500";
	for (const char *p = clones; *p && c.nclones < 4;) {
		char *end;
		unsigned long v = strtoul(p, &end, 10);

		p = end;
		if (!v || v > MAX_KIDS - 16)
			die("--clones: 1..%d", MAX_KIDS - 16);
		c.clones[c.nclones++] = (unsigned)v;
		if (*p == ',')
			p++;
		else if (*p)
			die("--clones: a comma-separated list of counts");
	}

	ember_log_set_level(EMBER_LOG_ERROR); /* libember in this process: errors only */
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);
	signal(SIGPIPE, SIG_IGN);
	atexit(kids_kill_all);
	/* Sleeps in the connect retry loop should be ~20 us, not 50+. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

	if (!c.work[0]) {
		snprintf(c.work, sizeof(c.work), "/tmp/ember-coldstart.XXXXXX");
		if (!mkdtemp(c.work))
			die("mkdtemp: %s", strerror(errno));
	} else if (mkdir(c.work, 0700) < 0 && errno != EEXIST) {
		die("mkdir %s: %s", c.work, strerror(errno));
	}
	if (strlen(c.work) > 200)
		die("--work: path too long");
	snprintf(c.snap, sizeof(c.snap), "%.200s/snap", c.work);
	snprintf(c.snap_carry, sizeof(c.snap_carry), "%.200s/snap-carry",
		 c.work);
	logpath = xasprintf("%s/vmm.log", c.work);
	g_errlog = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	{
		/* The result directory, next to --out. */
		char *dir = strdup(c.out), *sl = strrchr(dir, '/');

		if (sl) {
			*sl = 0;
			mkdir(dir, 0755);
		}
		free(dir);
	}
	fprintf(stderr, "coldstart: %s run, vmm %s, work dir %s\n",
		c.quick ? "quick" : "full", c.vmm, c.work);

	{
		FILE *la = fopen("/proc/loadavg", "r");

		if (la) {
			if (fgets(g_load_start, sizeof(g_load_start), la))
				g_load_start[strcspn(g_load_start, "\n")] = 0;
			fclose(la);
		}
	}
	make_snapshot(&c, &R);
	/* Warm the page cache and the binaries once, untimed. */
	{
		struct series warm = { 0 };

		run_process_series(&c, &warm, 3, false, false, "warm");
		if (warm.failures == 3)
			die("cannot restore the snapshot: %s", warm.first_error);
	}
	probe_shell(&c);

	const struct lib_opts plain = { 0 }, pf = { .prefetch = true };

	if (want(&c, 'a')) {
		fprintf(stderr, "coldstart: (a) %u process restores\n", c.runs_a);
		run_exec_only(&c, &R.exec_only, c.quick ? 10 : 50);
		run_process_series(&c, &R.a, c.runs_a, false, false, "a");
	}
	if (want(&c, 'b')) {
		fprintf(stderr, "coldstart: (b) %u shell restores, %u library "
			"restores\n", c.runs_b, c.runs_b2);
		run_lib_series(&c, &R.b, c.runs_b, true, &plain, &R.tr_shell,
			       &R.tr_restore, "b");
		run_lib_series(&c, &R.b2, c.runs_b2, false, &plain, NULL,
			       &R.tr_b2, "b2");
	}
	if (want(&c, 'c')) {
		fprintf(stderr, "coldstart: (c) %u boots from scratch\n", c.runs_c);
		run_process_series(&c, &R.c, c.runs_c, false, true, "c");
	}
	if (want(&c, 'd')) {
		fprintf(stderr, "coldstart: (d) QEMU, %u restores\n", c.runs_d);
		if (exists_exec(c.qemu))
			run_qemu(&c, &R.q);
		else
			snprintf(R.q.error, sizeof(R.q.error), "%s not found",
				 c.qemu);
	}
	if (want(&c, 'e')) {
		fprintf(stderr, "coldstart: (e) idle CPU of 10 clones\n");
		R.idle.clones = 10;
		R.idle.seconds = c.quick ? 1.0 : 3.0;
		run_idle_cpu(&c, &R.idle);
		for (unsigned i = 0; i < c.nclones; i++) {
			fprintf(stderr, "coldstart: (e) %u idle clones\n",
				c.clones[i]);
			R.dens[i].want = c.clones[i];
			run_density(&c, &R.dens[i]);
			R.ndens++;
		}
	}
	if (want(&c, 'f')) {
		fprintf(stderr, "coldstart: (f) throughput, 2 workers, %.0f s "
			"each\n", c.tput_seconds);
		run_tput_processes(&c, &R.tp_proc);
		run_tput_library(&c, &R.tp_lib);
	}
	if (want(&c, 'g')) {
		char why[256] = "";
		char *ws = xasprintf("%s/workingset", c.snap);
		struct stat st;
		char *sock = xasprintf("%s/g.sock", c.work);

		fprintf(stderr, "coldstart: (g) working set, %u runs each\n",
			c.runs_g);
		if (record_workingset(&c, c.snap, why, sizeof(why)) < 0 ||
		    stat(ws, &st) < 0) {
			snprintf(R.ws_error, sizeof(R.ws_error), "%s",
				 why[0] ? why : "no workingset file");
		} else {
			R.ws_ok = true;
			/* Interleave off/on so drift hits both alike. */
			for (unsigned i = 0; i < c.runs_g; i++) {
				run_process_series(&c, &R.g_off, 1, false, false,
						   "g-off");
				run_process_series(&c, &R.g_on, 1, true, false,
						   "g-on");
				run_lib_series(&c, &R.gb_off, 1, true, &plain,
					       NULL, &R.tr_gb_off, "gb-off");
				run_lib_series(&c, &R.gb_on, 1, true, &pf,
					       NULL, &R.tr_gb_on, "gb-on");
			}
			R.ws_pages = R.tr_gb_on.runs ?
				(long)(R.tr_gb_on.prefetch_bytes /
				       R.tr_gb_on.runs / 4096) : -1;
		}
		free(ws);
		free(sock);
	}
	if (want(&c, 'h')) {
		const struct lib_opts hp = { c.snap_carry, false, false },
				      hpp = { c.snap_carry, true, false },
				      hc = { c.snap_carry, false, true },
				      hcp = { c.snap_carry, true, true };
		char why[256] = "";

		fprintf(stderr, "coldstart: (h) carried connection, %u runs "
			"each\n", c.runs_h);
		if (make_carry_snapshot(&c, why, sizeof(why)) < 0 ||
		    record_workingset(&c, c.snap_carry, why, sizeof(why)) < 0) {
			snprintf(R.h_error, sizeof(R.h_error), "%s", why);
		} else {
			R.h_ok = true;
			for (unsigned i = 0; i < c.runs_h; i++) {
				run_lib_series(&c, &R.h_plain, 1, true, &hp,
					       NULL, NULL, "h-plain");
				run_lib_series(&c, &R.h_carry, 1, true, &hc,
					       NULL, NULL, "h-carry");
				run_lib_series(&c, &R.h_plain_pf, 1, true,
					       &hpp, NULL, NULL, "h-plain-pf");
				run_lib_series(&c, &R.h_carry_pf, 1, true,
					       &hcp, NULL, NULL, "h-carry-pf");
			}
		}
	}

	print_table(&R);
	write_json(&c, &R);
	printf("\nwrote %s\n", c.out);
	kids_kill_all();
	if (!c.keep_work)
		rm_tree(c.work);
	else
		fprintf(stderr, "coldstart: kept %s\n", c.work);
	free(logpath);
	return R.a.failures || R.b.failures ? 1 : 0;
}
