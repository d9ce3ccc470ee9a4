/*
 * deploy.h - one function version built from one archive: the archive
 * validated and extracted, the manifest checked against the tree, the micro
 * guest image built, the function booted to READY and snapshotted.
 *
 * Owns: the pipeline and the layout of the directory it builds. Pure work:
 * no HTTP, no SQLite, no global state. The agent owns everything around it
 * (the deploy record and its progress, version numbers, renaming out_dir
 * into place, cleaning up half-built directories after a crash).
 *
 * The directory deploy_build() builds (docs/functions.md):
 *   out_dir/tree/        the archive's files, as extracted
 *   out_dir/image        the micro guest's EMFS image of tree/; for guest
 *                        "linux" the ext4 root disk (guest-init, its
 *                        init.conf and tree/), from tools->linux_image
 *   out_dir/init.log     the guest console during the boot: the handler's
 *                        initialisation output (stderr) and the guest's
 *   out_dir/snapshot/    state + memory, taken at READY
 * The VMM runs with out_dir as its working directory and every path it is
 * given is relative ("image", "v.sock"), so the paths the snapshot records
 * stay right after the agent renames out_dir: restore from inside the
 * version directory, or pass the disk and vsock explicitly as a pool does.
 *
 * Thread: any; deploy_build() runs for seconds (a VM boots), so call it from
 * a worker thread. It spawns ember-vmm with posix_spawn (no fork of the
 * caller's threads) with only fds 0-3 open in the child.
 */
#ifndef EMBER_AGENT_DEPLOY_H
#define EMBER_AGENT_DEPLOY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/manifest.h"

#define DEPLOY_MAX_ARCHIVE_BYTES (64ull << 20)
#define DEPLOY_MAX_FILES 4096ull
#define DEPLOY_MAX_TREE_BYTES (256ull << 20)
#define DEPLOY_BOOT_TIMEOUT_MS 30000u
/* The boot's sockets in out_dir, removed once it ended: the guest's vsock
 * and the VMM's control socket (both guests). */
#define DEPLOY_VSOCK "v.sock"
#define DEPLOY_CONTROL "ctl.sock"
#define DEPLOY_OUTPUT_MAX (16u << 10)   /* bytes of init output kept */
#define DEPLOY_LINUX_BOOT_TIMEOUT_MS 120000u
#define DEPLOY_IMAGE_TIMEOUT_MS 300000u /* the ext4 image tool */

/* The binaries (and the Python runtime's library) deploys use. python_*
 * may be NULL on a host without the Python runtime: deploying runtime
 * "python" then fails at step "manifest", the other runtimes work. */
struct deploy_tools {
	const char *vmm, *micro, *lua_handler;
	const char *python_handler;  /* build/handlers/python (mk/python.mk) */
	const char *python_home;     /* build/runtimes/python: grafted into
					the image at /.ember/python */
	/* Guest "linux" (docs/linux-guest.md); NULL or missing files make
	 * such a deploy fail at step "manifest" saying which. */
	const char *linux_kernel;    /* vmlinux (build/vmlinux: make kernel) */
	const char *guest_init;      /* build/guest-init */
	const char *linux_image;     /* build/linux-image (scripts/linux-image.sh) */
	/* The boot VMM (micro guests) loads ember-vmm's per-thread seccomp
	 * filters (docs/seccomp.md): it runs the tenant's initialisation. */
	bool seccomp;
};

struct deploy_request {
	int archive_fd;                  /* tar or tar.gz, read with libarchive */
	const char *out_dir;             /* created by deploy_build; must not exist */
	const struct deploy_tools *tools;
	/* 0 = the DEPLOY_MAX_* default */
	uint64_t max_archive_bytes, max_files, max_tree_bytes;
	/* Called as each step completes, with a one-line summary (e.g.
	 * "extract", "12 files, 40960 bytes, gzip"). From the calling thread. */
	void (*progress)(void *ctx, const char *step, const char *detail);
	void *ctx;
	uint32_t boot_timeout_ms;        /* boot to READY; 0 = 30 s */
	/* Called (when not NULL, from the calling thread, with ctx) with the
	 * ember-vmm child's pid right after it started (running = true) and
	 * once it has been reaped (running = false), so that the agent can
	 * record it and a restarted emberd can end one a crash left behind. */
	void (*vmm_child)(void *ctx, pid_t pid, bool running);
	/* Guest "linux" only: boot to READY; 0 = DEPLOY_LINUX_BOOT_TIMEOUT_MS
	 * (a Linux kernel boots in ~1 s on hardware virtualization, far
	 * longer on a loaded host). */
	uint32_t linux_boot_timeout_ms;
};

struct deploy_result {
	struct fn_manifest manifest;     /* on success */
	char step[32];                   /* on failure: which step failed */
	char message[512];               /* on failure: why, one line */
	char *output;                    /* on failure: handler's init output, or NULL */
};

/* Steps, in order. */
#define DEPLOY_STEP_RECEIVE "receive"
#define DEPLOY_STEP_EXTRACT "extract"
#define DEPLOY_STEP_MANIFEST "manifest"
#define DEPLOY_STEP_IMAGE "image"
#define DEPLOY_STEP_BOOT "boot"
#define DEPLOY_STEP_SNAPSHOT "snapshot"

/*
 * Validates and extracts the archive into out_dir/tree, parses the manifest,
 * builds out_dir/image (micro guest file-tree image), boots the function to
 * READY and snapshots it into out_dir/snapshot. On failure removes out_dir
 * and returns -errno with res->step/message/output filled:
 *   -EEXIST out_dir exists; -EINVAL a refused archive, manifest or handler;
 *   -EFBIG a limit; -ENOEXEC the handler is not a static x86-64 executable;
 *   -EOPNOTSUPP guest "linux" on a kvm-pvm host (or with another runtime
 *   than "static"); -ENOENT a tool guest "linux" needs is missing;
 *   -ECANCELED the handler failed its
 *   initialisation (res->output has its output); -ETIMEDOUT no READY in
 *   time; -EIO the VMM failed; other errnos from the file system.
 * res need not be initialised; release it with deploy_result_free() either
 * way.
 */
int deploy_build(const struct deploy_request *rq, struct deploy_result *res);
void deploy_result_free(struct deploy_result *res);

/*
 * Checks that the file open at `fd` is a static x86-64 Linux executable the
 * micro guest can load: ELF64, little-endian, x86-64, ET_EXEC or static-pie
 * (ET_DYN with no PT_INTERP and no DT_NEEDED). Scripts and dynamically
 * linked executables are refused saying so. Returns 0 or -ENOEXEC with the
 * reason (a phrase: "is a script (#!/bin/sh)") in why[whylen].
 */
int deploy_check_static_elf(int fd, char *why, size_t whylen);

#endif
