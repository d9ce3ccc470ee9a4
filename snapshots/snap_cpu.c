/*
 * snap_cpu.c - the CPU fingerprint a snapshot carries, and whether this
 * host can run a snapshot taken on another.
 */
#include <cpuid.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "snapshots/snap.h"

/* ---- CPU fingerprint ---- */

static const char *const word_names[SNAP_CPU_WORDS] = {
	[SNAP_CPUW_1_ECX] = "CPUID.1:ECX",
	[SNAP_CPUW_1_EDX] = "CPUID.1:EDX",
	[SNAP_CPUW_7_EBX] = "CPUID.(7,0):EBX",
	[SNAP_CPUW_7_ECX] = "CPUID.(7,0):ECX",
	[SNAP_CPUW_7_EDX] = "CPUID.(7,0):EDX",
	[SNAP_CPUW_D_EAX] = "CPUID.(0xd,0):EAX",
	[SNAP_CPUW_D_EDX] = "CPUID.(0xd,0):EDX",
	[SNAP_CPUW_D1_EAX] = "CPUID.(0xd,1):EAX",
	[SNAP_CPUW_X1_ECX] = "CPUID.0x80000001:ECX",
	[SNAP_CPUW_X1_EDX] = "CPUID.0x80000001:EDX",
};

const char *snap_cpu_word_name(unsigned i)
{
	return i < SNAP_CPU_WORDS ? word_names[i] : "unknown";
}

/* Bits that reflect what the running OS enabled rather than what the CPU
 * can do (Intel SDM vol. 2A, CPUID): OSXSAVE (1:ECX bit 27), OSPKE
 * (7:ECX bit 4). */
#define CPUID_1_ECX_OSXSAVE (1u << 27)
#define CPUID_7_ECX_OSPKE (1u << 4)

static int read_fingerprint(struct snap_cpu_fp *fp)
{
	unsigned a, b, c, d, max, xmax, base_family;

	memset(fp, 0, sizeof(*fp));
	max = __get_cpuid_max(0, NULL);
	if (max < 1)
		return -ENOTSUP;
	__cpuid(0, a, b, c, d);
	memcpy(fp->vendor, &b, 4);
	memcpy(fp->vendor + 4, &d, 4);
	memcpy(fp->vendor + 8, &c, 4);
	fp->vendor[12] = '\0';

	/* Display family and model (SDM vol. 2A, CPUID leaf 1 EAX). */
	__cpuid(1, a, b, c, d);
	base_family = (a >> 8) & 0xf;
	fp->family = base_family;
	if (base_family == 0xf)
		fp->family += (a >> 20) & 0xff;
	fp->model = (a >> 4) & 0xf;
	if (base_family == 0x6 || base_family == 0xf)
		fp->model |= ((a >> 16) & 0xf) << 4;
	fp->stepping = a & 0xf;
	fp->words[SNAP_CPUW_1_ECX] = c & ~CPUID_1_ECX_OSXSAVE;
	fp->words[SNAP_CPUW_1_EDX] = d;
	if (max >= 7) {
		__cpuid_count(7, 0, a, b, c, d);
		fp->words[SNAP_CPUW_7_EBX] = b;
		fp->words[SNAP_CPUW_7_ECX] = c & ~CPUID_7_ECX_OSPKE;
		fp->words[SNAP_CPUW_7_EDX] = d;
	}
	if (max >= 0xd) {
		__cpuid_count(0xd, 0, a, b, c, d);
		fp->words[SNAP_CPUW_D_EAX] = a;
		fp->words[SNAP_CPUW_D_EDX] = d;
		__cpuid_count(0xd, 1, a, b, c, d);
		fp->words[SNAP_CPUW_D1_EAX] = a;
	}
	xmax = __get_cpuid_max(0x80000000, NULL);
	if (xmax >= 0x80000001) {
		__cpuid(0x80000001, a, b, c, d);
		fp->words[SNAP_CPUW_X1_ECX] = c;
		fp->words[SNAP_CPUW_X1_EDX] = d;
	}
	return 0;
}

/*
 * Each CPUID instruction exits to the hypervisor when this host is itself a
 * VM: the nine above cost ~50 us here, on every restore. They describe the
 * CPU, which does not change while the process runs, so they are asked
 * once.
 */
static struct snap_cpu_fp g_fp;
static int g_fp_ret;
static pthread_once_t g_fp_once = PTHREAD_ONCE_INIT;

static void read_fingerprint_once(void)
{
	g_fp_ret = read_fingerprint(&g_fp);
}

int snap_cpu_fingerprint(struct snap_cpu_fp *fp)
{
	pthread_once(&g_fp_once, read_fingerprint_once);
	*fp = g_fp;
	return g_fp_ret;
}

int snap_cpu_compatible(const struct snap_cpu_fp *saved,
			const struct snap_cpu_fp *here, char *err,
			size_t errlen)
{
	if (strncmp(saved->vendor, here->vendor, sizeof(saved->vendor))) {
		snap_seterr(err, errlen,
			    "snapshot taken on a %.12s CPU, this host is %.12s",
			    saved->vendor, here->vendor);
		return -ENOEXEC;
	}
	if (saved->family != here->family || saved->model != here->model) {
		snap_seterr(err, errlen,
			    "snapshot taken on CPU family 0x%x model 0x%x, this "
			    "host is family 0x%x model 0x%x",
			    saved->family, saved->model, here->family,
			    here->model);
		return -ENOEXEC;
	}
	for (unsigned i = 0; i < SNAP_CPU_WORDS; i++) {
		uint32_t missing = saved->words[i] & ~here->words[i];

		if (missing) {
			snap_seterr(err, errlen,
				    "this host lacks CPU features the snapshot's "
				    "guest saw: %s bits 0x%08x (saved 0x%08x, "
				    "here 0x%08x)",
				    word_names[i], missing, saved->words[i],
				    here->words[i]);
			return -ENOEXEC;
		}
	}
	return 0;
}
