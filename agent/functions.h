/*
 * functions.h - functions and their versions on disk: deploys, deletes,
 * and the recovery after a crash.
 *
 * Owns: the deploy orchestration around deploy_build() (agent/deploy.h):
 * the deploy record and its progress in the database, a bounded queue and
 * worker threads, the staging directory a version is built in
 * (STATE/staging/DEPLOY_ID), its move into place (STATE/functions/FN_ID/vN)
 * and the switch of the current version in one transaction (a failed or
 * interrupted deploy changes nothing); removing a function's or a tenant's
 * files; at start, the clean-up of what a crash left (half-built staging
 * directories, deploys still marked running, version directories no row
 * names) and telling the scheduler about every function's current version.
 *
 * Paths are built from ids, never from names.
 *
 * Threads: the public calls may come from any thread; deploys run on the
 * workers, file removal on a janitor thread (removing a snapshot's memory
 * file can take seconds on a file system mounted with discard).
 */
#ifndef EMBER_AGENT_FUNCTIONS_H
#define EMBER_AGENT_FUNCTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "agent/db.h"
#include "agent/deploy.h"
#include "agent/sched.h"

struct fns_config {
	const char *state_dir;
	const char *runtime_dir;  /* pid files of the deploys' boot VMs */
	struct deploy_tools tools;
	uint64_t max_archive_bytes, max_files, max_tree_bytes;
	unsigned workers;    /* deploys built at once */
	unsigned queue_max;  /* deploys waiting for a worker */
};

struct fns;

/* Starts the workers and the janitor. NULL with a reason in err. */
struct fns *fns_create(const struct fns_config *cfg, struct db *db,
		       struct sched *sched, char *err, size_t errlen);

/* The clean-up at start (see above), then every function's current
 * version installed in the scheduler. 0 or -errno with a reason. */
int fns_recover(struct fns *f, char *err, size_t errlen);

/* Starts a deploy of the archive open at fd (consumed in every case) as
 * the tenant's function `name`. id receives the deploy's id. -EBUSY: a
 * deploy of that function is running (its id in busy_id); -EAGAIN: the
 * deploy queue is full; -EIO. */
int fns_deploy(struct fns *f, const struct db_tenant *t, const char *name,
	       int fd, uint64_t bytes, char id[DB_ID_MAX],
	       char busy_id[DB_ID_MAX]);

/* Deletes the tenant's function: the database first, then its instances
 * and files. -ENOENT, -EBUSY (a deploy of it is running). */
int fns_delete(struct fns *f, int64_t tenant_id, const char *name);

/* Deletes a tenant with its tokens, functions, instances and files. */
int fns_delete_tenant(struct fns *f, const struct db_tenant *t);

/* The scheduler's view of a function version (paths into the state dir):
 * fills spec from the row, its manifest parsed. 0 or -errno. */
int fns_spec(struct fns *f, const struct db_function *row,
	     struct sched_fn_spec *spec, char *snap, char *disk, size_t cap);

/* Waits for the running deploys, stops the threads, frees. */
void fns_destroy(struct fns *f);

#endif
