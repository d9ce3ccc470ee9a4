/*
 * report.c - the JSON report (bench/results/coldstart.json) and the
 * table printed at the end.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "coldstart.h"
#include "ember.h"

/* ---------------------------------------------------------------------
 * Report: JSON and a table
 */
static void j_stats(FILE *f, const char *key, const struct samples *s,
		    bool with_samples)
{
	struct stats st = s_stats(s);

	fprintf(f, "\"%s\": {\"n\": %zu, \"p50_us\": %.1f, \"p99_us\": %.1f, "
		"\"min_us\": %.1f, \"mean_us\": %.1f, \"max_us\": %.1f",
		key, st.n, st.p50, st.p99, st.min, st.mean, st.max);
	if (with_samples) {
		fputs(", \"samples_us\": [", f);
		for (size_t i = 0; i < s->n; i++)
			fprintf(f, "%s%.1f", i ? ", " : "", s->v[i]);
		fputc(']', f);
	}
	fputc('}', f);
}

static void j_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void j_series(FILE *f, const char *key, const char *what,
		     const struct series *s)
{
	fprintf(f, "\"%s\": {\"what\": ", key);
	j_str(f, what);
	fprintf(f, ", \"failures\": %u, ", s->failures);
	if (s->failures) {
		fputs("\"first_error\": ", f);
		j_str(f, s->first_error);
		fputs(", ", f);
	}
	j_stats(f, "total", &s->total, true);
	fputs(", \"steps\": {", f);
	j_stats(f, "spawn_or_restore_to_socket", &s->sock, false);
	fputs(", ", f);
	j_stats(f, "vsock_handshake", &s->hs, false);
	fputs(", ", f);
	j_stats(f, "handshake_to_ready", &s->ready, false);
	fputs(", ", f);
	j_stats(f, "first_invoke_round_trip", &s->invoke, false);
	fputs(", ", f);
	j_stats(f, "warm_invoke_round_trip", &s->warm, false);
	if (s->restore.n) {
		fputs(", ", f);
		j_stats(f, "restore_call", &s->restore, false);
	}
	if (s->runstart.n) {
		fputs(", ", f);
		j_stats(f, "restore_return_to_first_kvm_run", &s->runstart,
			false);
	}
	if (s->exits_inv.n)
		fprintf(f, ", \"kvm_run_calls_median\": {\"handshake\": %.0f, "
			"\"to_ready\": %.0f, \"first_invoke\": %.0f, "
			"\"warm_invoke\": %.0f}", s_median(&s->exits_hs),
			s_median(&s->exits_ready), s_median(&s->exits_inv),
			s_median(&s->exits_warm));
	fprintf(f, ", \"page_faults_mean\": %.1f, \"page_faults_note\": "
		"\"%s\"}}", s->minflt.n ? s_stats(&s->minflt).mean : -1.0,
		s->exits_inv.n ? "minor faults of this process from connect "
		"to the end of the warm invoke (guest first touches go "
		"through KVM and count here)" : "minor faults of the VMM "
		"process during the first invoke");
}

static void j_trace(FILE *f, const char *key, const struct trace *t)
{
	fprintf(f, "\"%s\": {\"runs\": %u, \"prefetch_bytes_per_run\": %.0f, "
		"\"calls\": [", key, t->runs,
		t->runs ? (double)t->prefetch_bytes / t->runs : 0.0);
	for (unsigned i = 0; i < t->n; i++) {
		fprintf(f, "%s{\"name\": ", i ? ", " : "");
		j_str(f, t->e[i].name);
		fprintf(f, ", \"top_level\": %s, \"calls_per_run\": %.2f, "
			"\"mean_us_per_run\": %.1f, \"median_us_per_run\": %.1f}",
			t->e[i].top ? "true" : "false",
			t->runs ? (double)t->e[i].count / t->runs : 0,
			t->runs ? (double)t->e[i].ns / 1000.0 / t->runs : 0,
			s_median(&t->e[i].per_run));
	}
	fputs("]}", f);
}

static double trace_us(const struct trace *t, const char *name)
{
	for (unsigned i = 0; i < t->n; i++)
		if (!strcmp(t->e[i].name, name))
			return s_median(&t->e[i].per_run);
	return 0;
}

/* Sum of KVM_SET_* / KVM_* ioctls issued directly by the restore (not
 * inside another traced call): the vCPU and VM state being loaded. */
static double trace_top_ioctls_us(const struct trace *t)
{
	double us = 0;

	for (unsigned i = 0; i < t->n; i++)
		if (t->e[i].top && !strncmp(t->e[i].name, "KVM", 3))
			us += s_median(&t->e[i].per_run);
	return us;
}

static double trace_top_sum_us(const struct trace *t)
{
	double us = 0;

	for (unsigned i = 0; i < t->n; i++)
		if (t->e[i].top)
			us += s_median(&t->e[i].per_run);
	return us;
}

/* Load average when the run started: the machine is shared, and other
 * work on its two cores shows up in every figure. */
char g_load_start[128];

static void host_facts(FILE *f)
{
	struct utsname u;
	char model[256] = "unknown", line[512];
	FILE *ci = fopen("/proc/cpuinfo", "r");

	uname(&u);
	if (ci) {
		while (fgets(line, sizeof(line), ci))
			if (!strncmp(line, "model name", 10)) {
				char *p = strchr(line, ':');

				if (p) {
					snprintf(model, sizeof(model), "%s", p + 2);
					model[strcspn(model, "\n")] = 0;
				}
				break;
			}
		fclose(ci);
	}
	fputs("\"host\": {\"kernel\": ", f);
	j_str(f, u.release);
	fprintf(f, ", \"kvm\": \"%s\", \"cpus\": %ld, \"cpu_model\": ",
		ember_host_is_pvm() ? "kvm-pvm (nested PVM)" : "kvm",
		sysconf(_SC_NPROCESSORS_ONLN));
	j_str(f, model);
	fprintf(f, ", \"mem_total_kib\": %ld, \"loadavg_start\": ",
		meminfo_kib("MemTotal"));
	j_str(f, g_load_start);
	fputs(", \"loadavg_end\": ", f);
	{
		char l[128] = "";
		FILE *la = fopen("/proc/loadavg", "r");

		if (la) {
			if (fgets(l, sizeof(l), la))
				l[strcspn(l, "\n")] = 0;
			fclose(la);
		}
		j_str(f, l);
	}
	fputs("}", f);
}

void write_json(struct cfg *c, struct results *R)
{
	char tmp[PATH_MAX];
	FILE *f;
	time_t now = time(NULL);
	char date[64];

	snprintf(tmp, sizeof(tmp), "%s.tmp", c->out);
	f = fopen(tmp, "w");
	if (!f)
		die("cannot write %s: %s", tmp, strerror(errno));
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	fprintf(f, "{\n\"benchmark\": \"coldstart\", \"schema\": 1, "
		"\"date\": \"%s\", \"quick\": %s, \"request\": ", date,
		c->quick ? "true" : "false");
	j_str(f, g_req);
	fputs(",\n", f);
	host_facts(f);
	fputs(",\n\"snapshot\": {\"guest\": \"micro guest + echo handler "
	      "(glibc static), snapshot at READY\", \"memory_mib\": 256, ", f);
	fprintf(f, "\"state_bytes\": %ld, \"memory_allocated_kib\": %ld, "
		"\"create_ms\": %.1f},\n", R->snap_state_bytes,
		R->snap_mem_alloc_kib, R->snap_create_ms);
	fputs("\"scenarios\": {\n", f);
	j_series(f, "a_process_restore", "spawn ember-vmm --restore, connect, "
		 "handshake, READY, invoke echo: spawn to RESULT", &R->a);
	fputs(",\n", f);
	j_series(f, "b_shell_restore", "ember_shell_restore into a "
		 "pre-created shell + run thread + invoke: restore call to "
		 "RESULT", &R->b);
	fputs(",\n", f);
	j_series(f, "b2_library_restore", "ember_vm_restore (shell created "
		 "on the clock) + run thread + invoke", &R->b2);
	fputs(",\n", f);
	j_series(f, "c_boot_from_scratch", "spawn ember-vmm --micro --handler "
		 "echo (no snapshot): spawn to RESULT", &R->c);
	fputs(",\n\"d_qemu_restore\": {\"what\": \"qemu-system-x86_64 -M "
	      "microvm -m 256 -incoming exec:cat FILE: spawn to QMP "
	      "query-status running\", \"guest\": \"empty microvm: qboot "
	      "firmware only, no kernel (microvm does not load the Ember "
	      "micro guest, see kernel_attempt)\", \"version\": ", f);
	j_str(f, R->q.version);
	fputs(", \"kernel_attempt\": ", f);
	j_str(f, R->q.kernel_attempt);
	fprintf(f, ", \"state_bytes\": %ld, \"ok\": %s, \"error\": ",
		R->q.state_bytes, R->q.ok ? "true" : "false");
	j_str(f, R->q.error);
	fputs(", ", f);
	j_stats(f, "total", &R->q.total, true);
	fputs(", ", f);
	j_stats(f, "spawn_to_qmp_ready", &R->q.qmp_sock, false);
	fputs("}\n},\n", f);

	/* Ratios of medians. */
	{
		double qm = s_median(&R->q.total);
		double am = s_median(&R->a.total), bm = s_median(&R->b.total);

		fprintf(f, "\"ratios\": {\"qemu_p50_over_a_p50\": %.1f, "
			"\"qemu_p50_over_b_p50\": %.1f, "
			"\"c_p50_over_a_p50\": %.1f},\n",
			am > 0 ? qm / am : 0, bm > 0 ? qm / bm : 0,
			am > 0 ? s_median(&R->c.total) / am : 0);
	}

	/* The per-step breakdown of (a), from the pieces measured above. */
	{
		double ex = s_median(&R->exec_only);
		double shell = trace_us(&R->tr_b2,
					"open /dev/kvm + KVM_CREATE_VM (kvm_open)") +
			       trace_us(&R->tr_b2,
					"eventfds, evloop, vCPUs (vm_create_core)");
		double parse = trace_us(&R->tr_b2,
				"state file read+parse (snap_read_state)");
		double mopen = trace_us(&R->tr_b2,
				"open memory file (snap_open_memory)");
		double mmap_ = trace_us(&R->tr_b2,
				"map guest RAM + memslots (kvm_map_ram)");
		double dev = trace_us(&R->tr_b2,
				"device setup (vm_create_devices)");
		double ioc = trace_top_ioctls_us(&R->tr_b2);
		double rest = s_median(&R->b2.restore);
		double other = rest - trace_top_sum_us(&R->tr_b2);
		double sock = s_median(&R->a.sock);

		fputs("\"breakdown_a\": {\"note\": \"medians of (a)'s own "
		      "timeline; the in-process restore steps are medians "
		      "per restore from (b2) (the same code ember-vmm runs); process_exec is "
		      "spawn-to-exit of ember-vmm --help\", \"steps_us\": [\n", f);
		fprintf(f, "{\"step\": \"process exec + dynamic link + exit "
			"(ember-vmm --help)\", \"us\": %.1f},\n", ex);
		fprintf(f, "{\"step\": \"open /dev/kvm, KVM_CREATE_VM, vCPU "
			"creation, evloop (shell)\", \"us\": %.1f},\n", shell);
		fprintf(f, "{\"step\": \"state file read + parse\", \"us\": "
			"%.1f},\n", parse);
		fprintf(f, "{\"step\": \"memory file open + mmap MAP_PRIVATE + "
			"memslot\", \"us\": %.1f},\n", mopen + mmap_);
		fprintf(f, "{\"step\": \"device setup (serial, i8042, "
			"virtio-vsock, listening socket)\", \"us\": %.1f},\n", dev);
		fprintf(f, "{\"step\": \"KVM_SET_* state ioctls (vCPU, VM)\", "
			"\"us\": %.1f},\n", ioc);
		fprintf(f, "{\"step\": \"rest of restore (device state, "
			"identity refresh, ...)\", \"us\": %.1f},\n", other);
		fprintf(f, "{\"step\": \"(a) spawn -> vsock socket accepts "
			"(all of the above + threads + listen)\", \"us\": "
			"%.1f},\n", sock);
		fprintf(f, "{\"step\": \"vsock handshake (CONNECT/OK)\", "
			"\"us\": %.1f},\n", s_median(&R->a.hs));
		fprintf(f, "{\"step\": \"handshake -> READY (guest runs, "
			"first page faults)\", \"us\": %.1f},\n",
			s_median(&R->a.ready));
		fprintf(f, "{\"step\": \"first invoke round trip (first "
			"touches of the handler's pages)\", \"us\": %.1f},\n",
			s_median(&R->a.invoke));
		fprintf(f, "{\"step\": \"warm invoke round trip (for "
			"comparison, not in the total)\", \"us\": %.1f},\n",
			s_median(&R->a.warm));
		fprintf(f, "{\"step\": \"total (a) p50\", \"us\": %.1f}\n]},\n",
			s_median(&R->a.total));
	}
	fputs("\"traces\": {", f);
	j_trace(f, "b_shell_create", &R->tr_shell);
	fputs(",\n", f);
	j_trace(f, "b_shell_restore", &R->tr_restore);
	fputs(",\n", f);
	j_trace(f, "b2_library_restore", &R->tr_b2);
	fputs("},\n", f);
	j_stats(f, "process_exec_only", &R->exec_only, false);
	fputs(",\n\"density\": [", f);
	for (unsigned i = 0; i < R->ndens; i++) {
		const struct density *d = &R->dens[i];
		double n = d->started ? d->started : 1;

		fprintf(f, "%s\n{\"clones\": %u, \"started\": %u, "
			"\"initialised\": %u, \"seconds_to_start\": %.1f, "
			"\"pss_total_kib\": %.0f, \"pss_per_clone_kib\": %.0f, "
			"\"private_per_clone_kib\": %.0f, "
			"\"private_clean_per_clone_kib\": %.0f, "
			"\"private_dirty_per_clone_kib\": %.0f, "
			"\"rss_per_clone_kib\": %.0f, "
			"\"shared_clean_per_clone_kib\": %.0f, "
			"\"memavailable_drop_per_clone_kib\": %.0f, \"error\": ",
			i ? "," : "", d->want, d->started, d->initialised,
			d->seconds, d->pss, d->pss / n,
			(d->priv_clean + d->priv_dirty) / n, d->priv_clean / n,
			d->priv_dirty / n, d->rss / n, d->shared_clean / n,
			(double)d->memavail_delta_kib / n);
		j_str(f, d->error);
		fputc('}', f);
	}
	fprintf(f, "],\n\"density_note\": \"each clone is restored, invoked "
		"once, then frozen with SIGSTOP (an idle micro guest wakes "
		"every 10 ms; see idle_cpu); private = Private_Clean + "
		"Private_Dirty from /proc/PID/smaps_rollup; the MemAvailable "
		"drop also counts kernel memory (KVM, page tables)\",\n"
		"\"idle_cpu\": {\"clones\": %u, \"seconds\": %.1f, "
		"\"cpu_percent_per_clone\": %.2f, \"error\": ",
		R->idle.clones, R->idle.seconds, R->idle.cpu_percent_per_clone);
	j_str(f, R->idle.error);
	fprintf(f, "},\n\"throughput\": {\"process\": {\"workers\": %u, "
		"\"seconds\": %.1f, \"restores\": %lu, \"failed\": %lu, "
		"\"per_second\": %.1f}, \"library\": {\"workers\": %u, "
		"\"seconds\": %.1f, \"restores\": %lu, \"failed\": %lu, "
		"\"per_second\": %.1f}},\n",
		R->tp_proc.workers, R->tp_proc.seconds, R->tp_proc.done,
		R->tp_proc.failed,
		R->tp_proc.seconds > 0 ? R->tp_proc.done / R->tp_proc.seconds : 0,
		R->tp_lib.workers, R->tp_lib.seconds, R->tp_lib.done,
		R->tp_lib.failed,
		R->tp_lib.seconds > 0 ? R->tp_lib.done / R->tp_lib.seconds : 0);
	fprintf(f, "\"prefetch\": {\"recorded\": %s, \"error\": ",
		R->ws_ok ? "true" : "false");
	j_str(f, R->ws_error);
	fprintf(f, ", \"workingset_pages\": %ld, \"interleaved\": true,\n",
		R->ws_pages);
	j_series(f, "a_off", "(a) without --prefetch", &R->g_off);
	fputs(",\n", f);
	j_series(f, "a_on", "(a) with --prefetch", &R->g_on);
	fputs(",\n", f);
	j_series(f, "b_off", "(b) prefetch=false", &R->gb_off);
	fputs(",\n", f);
	j_series(f, "b_on", "(b) prefetch=true", &R->gb_on);
	fputs(",\n", f);
	j_trace(f, "b_on_trace", &R->tr_gb_on);
	fputs("},\n", f);
	fprintf(f, "\"carried_connection\": {\"ok\": %s, \"error\": ",
		R->h_ok ? "true" : "false");
	j_str(f, R->h_error);
	fputs(", \"interleaved\": true,\n", f);
	j_series(f, "plain", "(h) new connection", &R->h_plain);
	fputs(",\n", f);
	j_series(f, "carried", "(h) carried connection", &R->h_carry);
	fputs(",\n", f);
	j_series(f, "plain_prefetch", "(h) new connection, prefetch",
		 &R->h_plain_pf);
	fputs(",\n", f);
	j_series(f, "carried_prefetch", "(h) carried connection, prefetch",
		 &R->h_carry_pf);
	fputs("},\n", f);
	{
		struct stats a = s_stats(&R->a.total), b = s_stats(&R->b.total);
		double qm = s_median(&R->q.total);
		double worst = 0;

		for (unsigned i = 0; i < R->ndens; i++) {
			double n = R->dens[i].started ? R->dens[i].started : 1;
			double p = (R->dens[i].priv_clean +
				    R->dens[i].priv_dirty) / n;
			if (p > worst)
				worst = p;
		}
		fprintf(f, "\"targets\": {\"a_p50_le_3ms\": %s, "
			"\"a_p99_le_8ms\": %s, \"b_p50_le_1ms\": %s, "
			"\"qemu_ratio_ge_20x\": %s, "
			"\"private_le_5mib_per_clone\": %s}\n}\n",
			a.n && a.p50 <= 3000 ? "true" : "false",
			a.n && a.p99 <= 8000 ? "true" : "false",
			b.n && b.p50 <= 1000 ? "true" : "false",
			a.n && qm / a.p50 >= 20 ? "true" : "false",
			R->ndens && worst <= 5 * 1024 ? "true" : "false");
	}
	if (fclose(f) != 0 || rename(tmp, c->out) < 0)
		die("cannot write %s: %s", c->out, strerror(errno));
}

static void row(const char *name, const struct samples *s, unsigned fail)
{
	struct stats st = s_stats(s);

	if (!st.n) {
		printf("  %-44s %5s%s\n", name, "-", fail ? "  (all failed)" : "");
		return;
	}
	printf("  %-44s %5zu %9.0f %9.0f %9.0f %9.0f%s\n", name, st.n, st.p50,
	       st.p99, st.min, st.mean, fail ? "  (failures!)" : "");
}

void print_table(const struct results *R)
{
	printf("\nEmber cold start (us)                          "
	       "    n       p50       p99       min      mean\n");
	row("(a) new process: spawn -> echo RESULT", &R->a.total, R->a.failures);
	row("    spawn -> vsock socket accepts", &R->a.sock, 0);
	row("    vsock handshake", &R->a.hs, 0);
	row("    handshake -> READY", &R->a.ready, 0);
	row("    first invoke round trip", &R->a.invoke, 0);
	row("    (warm invoke round trip)", &R->a.warm, 0);
	row("    (ember-vmm --help: exec+exit)", &R->exec_only, 0);
	row("(b) pre-created shell: restore -> RESULT", &R->b.total,
	    R->b.failures);
	row("    ember_shell_restore()", &R->b.restore, 0);
	row("    restore -> socket", &R->b.sock, 0);
	row("    first invoke round trip", &R->b.invoke, 0);
	row("(b2) ember_vm_restore() -> RESULT", &R->b2.total, R->b2.failures);
	row("    ember_vm_restore()", &R->b2.restore, 0);
	row("(c) boot from scratch: spawn -> RESULT", &R->c.total, R->c.failures);
	row("(d) QEMU -incoming: spawn -> running", &R->q.total,
	    R->q.error[0] != 0);
	row("(g) (a) prefetch off", &R->g_off.total, R->g_off.failures);
	row("(g) (a) prefetch on", &R->g_on.total, R->g_on.failures);
	row("(g) (b) prefetch off", &R->gb_off.total, R->gb_off.failures);
	row("(g) (b) prefetch on", &R->gb_on.total, R->gb_on.failures);
	row("(h) (b) new connection", &R->h_plain.total, R->h_plain.failures);
	row("(h) (b) carried connection", &R->h_carry.total,
	    R->h_carry.failures);
	row("    ember_shell_restore()", &R->h_carry.restore, 0);
	row("    first invoke round trip", &R->h_carry.invoke, 0);
	row("(h) (b) new connection, prefetch", &R->h_plain_pf.total,
	    R->h_plain_pf.failures);
	row("(h) (b) carried connection, prefetch", &R->h_carry_pf.total,
	    R->h_carry_pf.failures);
	row("    ember_shell_restore()", &R->h_carry_pf.restore, 0);
	row("    first invoke round trip", &R->h_carry_pf.invoke, 0);
	if (R->h_error[0])
		printf("  (h): %s\n", R->h_error);
	if (R->q.total.n && R->a.total.n)
		printf("  QEMU / (a) p50: %.1fx   QEMU / (b) p50: %.1fx\n",
		       s_median(&R->q.total) / s_median(&R->a.total),
		       R->b.total.n ? s_median(&R->q.total) /
					      s_median(&R->b.total) : 0);
	if (R->q.error[0])
		printf("  QEMU: %s\n", R->q.error);
	printf("\nRestore steps inside libember, b2 (us per restore)   "
	       "median     mean  calls\n");
	for (unsigned i = 0; i < R->tr_b2.n; i++)
		if (R->tr_b2.e[i].top)
			printf("  %-50s %8.1f %8.1f  x%.0f\n", R->tr_b2.e[i].name,
			       s_median(&R->tr_b2.e[i].per_run),
			       (double)R->tr_b2.e[i].ns / 1000.0 / R->tr_b2.runs,
			       (double)R->tr_b2.e[i].count / R->tr_b2.runs);
	if (R->ndens) {
		printf("\nDensity (idle clones, per clone KiB)    clones   "
		       "PSS  private  (clean  dirty)  MemAvailable drop\n");
		for (unsigned i = 0; i < R->ndens; i++) {
			const struct density *d = &R->dens[i];
			double n = d->started ? d->started : 1;

			printf("  %-38s %6u %5.0f %8.0f  (%5.0f %6.0f)  %8.0f%s\n",
			       "", d->started, d->pss / n,
			       (d->priv_clean + d->priv_dirty) / n,
			       d->priv_clean / n, d->priv_dirty / n,
			       (double)d->memavail_delta_kib / n,
			       d->error[0] ? "  (errors)" : "");
		}
	}
	if (R->idle.clones)
		printf("  idle clone CPU (not frozen): %.2f%% of a core each "
		       "(%u clones, %.0f s)\n", R->idle.cpu_percent_per_clone,
		       R->idle.clones, R->idle.seconds);
	if (R->tp_proc.seconds > 0 || R->tp_lib.seconds > 0)
		printf("\nRestores per second, 2 workers: processes %.1f/s, "
		       "library %.1f/s\n",
		       R->tp_proc.seconds > 0 ? R->tp_proc.done / R->tp_proc.seconds : 0,
		       R->tp_lib.seconds > 0 ? R->tp_lib.done / R->tp_lib.seconds : 0);
	fflush(stdout);
}
