/*
 * pid1.h - what guest-init does because it is process 1 of the guest.
 *
 * Owns: the guest's file system mounts (/dev as a small tmpfs with the few
 * device nodes a handler needs, since the kernel has no devtmpfs; /proc,
 * /sys, /tmp, /run, /dev/shm), standard fds for itself, stepping the clock
 * and reseeding the kernel RNG from a SYNC frame, killing every other
 * process, and powering the VM off (reboot(2) with the kernel's reboot=k:
 * through the i8042, which ends ember-vmm).
 *
 * On the Unix-socket seam guest-init is PID 1 of a new PID and mount
 * namespace on a host: the mounts happen inside that namespace, the clock
 * is never stepped (it is the host's), and "power off" is exit(2); see
 * pid1_init(). Not process 1 at all (a developer running it by hand): no
 * mounts, no kill(-1), nothing system-wide.
 */
#ifndef GI_PID1_H
#define GI_PID1_H

#include <stdint.h>

#include "proto/invoke.h"

struct pid1 {
	int is_pid1;        /* getpid() == 1 (a VM, or a new PID namespace) */
	int in_vm;          /* the vsock transport: a real guest */
	int step_clock;     /* SYNC may step CLOCK_REALTIME (in_vm only) */
};

/* Decides the mode. Makes sure fds 0-2 are open (/dev/null if nothing
 * else). */
void pid1_init(struct pid1 *p, int in_vm);
/* Mounts /dev (and opens /dev/console on fds 0-2 in a VM that has none)
 * and /proc: what reading the configuration needs. Failures are logged. */
void pid1_mount_early(const struct pid1 *p);
/* Mounts /sys, /tmp, /run, /dev/shm. */
void pid1_mount_late(const struct pid1 *p);
/* Applies a SYNC: steps CLOCK_REALTIME if allowed and off by 1 ms or more,
 * mixes the entropy into the kernel's pool (credited: it comes from the
 * host) and forces a reseed of its generator. */
void pid1_sync(const struct pid1 *p, uint64_t realtime_ns,
	       const uint8_t entropy[EMBER_INV_SYNC_ENTROPY]);
/* Sends sig to every process but us (PID 1 only; nothing otherwise). */
void pid1_kill_all(const struct pid1 *p, int sig);
/* Ends the guest: in a VM sync(2) and reboot(2) (does not return); else
 * returns and the caller exits with its status. */
void pid1_poweroff(const struct pid1 *p);

#endif
