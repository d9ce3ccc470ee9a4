/*
 * deploy_linux.h - the parts of the deploy pipeline (deploy.h) that are
 * particular to guest "linux" (docs/linux-guest.md): the root disk built
 * by the image tool (scripts/linux-image.sh: ext4 with mkfs.ext4 -d under
 * fakeroot, no mount, no root), and the snapshot at READY, which a Linux
 * guest reports over vsock (guest-init's READY frame) rather than with the
 * micro guest's READY hypercall, so the deploy connects, waits for it and
 * snapshots the paused VM through its control socket. The micro guest's
 * deploy takes its snapshot the same way (deploy_snapshot_at_ready()), to
 * keep the connection in it.
 *
 * Owns: the image tool's command line, running it, the READY wait and the
 * pause/snapshot/stop exchange. Does not own: the pipeline's steps, the
 * boot's command line or its failure messages (deploy.c).
 *
 * Thread: any (no global state). Every path is relative to a directory fd
 * (the version directory), reached as /proc/self/fd/N/NAME so that Unix
 * socket paths stay short whatever the state directory.
 */
#ifndef EMBER_AGENT_DEPLOY_LINUX_H
#define EMBER_AGENT_DEPLOY_LINUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/deploy.h"
#include "agent/manifest.h"

/* The kernel command line of the boot: the root disk read-only (every
 * clone restored from the snapshot shares it), guest-init as init. */
#define DEPLOY_LINUX_CMDLINE "console=ttyS0 reboot=k panic=-1 quiet " \
	"root=/dev/vda ro rootfstype=ext4 init=/ember/init"

/* Who the handler runs as (guest-init's default user, not root). */
#define DEPLOY_LINUX_UID "1000"
/* The image tool's arguments: fixed ones plus --env KEY=VALUE pairs. */
#define DEPLOY_LINUX_ARGV_MAX (16 + 2 * MANIFEST_ENV_MAX)

/*
 * The image tool's argv for manifest m: `tool --init INIT --tree TREE
 * --handler /HANDLER [--env KEY=VALUE]... --uid 1000 --epoch 1 --out OUT`
 * (the epoch fixed so that the image does not depend on emberd's
 * environment). argv has room for DEPLOY_LINUX_ARGV_MAX entries, the final
 * NULL included; its strings point into the arguments, m and buf[buflen]
 * (which receives "/HANDLER"). Returns the argc, or -E2BIG.
 */
int deploy_linux_image_argv(const char *tool, const char *init,
			    const struct fn_manifest *m, const char *tree,
			    const char *out, char *buf, size_t buflen,
			    char **argv);

/*
 * Runs the image tool `argv` in the directory dir_fd (stdin and stdout
 * /dev/null, its temporary files under tmp_dir), for at most timeout_ms.
 * Returns 0, or -errno with a one-line reason in why[whylen]: the tool's
 * own "error: ..." line when it gave one.
 */
int deploy_linux_run_image(int dir_fd, const char *tmp_dir, char *const *argv,
			   uint32_t timeout_ms, char *why, size_t whylen);

/*
 * With the VMM `pid` (our child, not reaped here) booting in dir_fd:
 * connects to its vsock socket (retrying while the guest does not listen
 * yet), waits for READY until deadline_us (CLOCK_MONOTONIC), then pauses
 * the VM, writes its snapshot into dir_fd/snapshot and stops it through
 * the control socket. Returns 0; -ETIMEDOUT (no READY in time), -EPIPE
 * (the VM or its guest ended first), -EIO (the control exchange failed),
 * with the reason in why[whylen]; *ready says whether READY came, and
 * *ready_us when (CLOCK_MONOTONIC).
 *
 * Both guests' deploys use it. With `carry` (the micro guest) the
 * connection stays open, idle after READY, until the snapshot is written,
 * so the snapshot carries it (docs/snapshots.md): a restore handed a
 * socket for it skips the handshake and READY. Without (guest "linux",
 * whose READY asks for SYNC, the clock and entropy each clone must get) it
 * is closed before the pause.
 */
int deploy_snapshot_at_ready(int dir_fd, pid_t pid, uint64_t deadline_us,
			     bool carry, bool *ready, uint64_t *ready_us,
			     char *why, size_t whylen);

#endif
