/*
 * functions.c - deploys, deletes and crash recovery of function versions:
 * see functions.h.
 *
 * Why a deploy cannot half-happen: deploy_build() writes only inside
 * STATE/staging/DEPLOY_ID. On success that directory is renamed to
 * STATE/functions/FN_ID/vN (one rename on one file system), then one
 * transaction records version N, its snapshot, the deploy's success and N
 * as the current version. A crash before the commit leaves either a
 * staging directory or a vN directory that no row names: both are removed
 * at the next start, the deploy is marked failed ("interrupted") and the
 * previous version, still current in the database, keeps serving.
 */
#define LOG_MOD "functions"

#include "agent/functions.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/elog.h"
#include "agent/list.h"
#include "agent/manifest.h"
#include "agent/vmmproc.h"
#include "log.h"

struct job {
	struct list_node node;
	char id[DB_ID_MAX];
	int64_t tenant_id, fn_id;
	char tenant[UTIL_NAME_MAX + 1];
	char function[UTIL_NAME_MAX + 1];
	int fd;
	struct fns *f;
};

struct path_job {
	struct list_node node;
	char path[];
};

struct fns {
	struct fns_config cfg;
	char *state_dir, *runtime_dir, *vmm, *micro, *lua, *py, *py_home;
	char *linux_kernel, *guest_init, *linux_image;
	struct db *db;
	struct sched *sched;
	pthread_mutex_t lock;
	pthread_cond_t cond, jcond;
	struct list_node jobs;       /* deploys waiting for a worker */
	unsigned nr_jobs;
	struct list_node trash;      /* paths for the janitor */
	pthread_t *workers;
	unsigned nr_workers;
	pthread_t janitor;
	bool janitor_started;
	bool stopping;
};

/* ---------------------------------------------------------------------
 * The janitor: removes directories off every request's path.
 */

static void trash_path(struct fns *f, const char *rel)
{
	size_t n = strlen(f->state_dir) + strlen(rel) + 2;
	struct path_job *pj = malloc(sizeof(*pj) + n);

	if (!pj) {
		log_warn("cannot queue %s for removal (out of memory); the "
			 "next start removes it", rel);
		return;
	}
	snprintf(pj->path, n, "%s/%s", f->state_dir, rel);
	pthread_mutex_lock(&f->lock);
	list_append(&f->trash, &pj->node);
	pthread_cond_signal(&f->jcond);
	pthread_mutex_unlock(&f->lock);
}

static void *janitor_main(void *arg)
{
	struct fns *f = arg;

	pthread_mutex_lock(&f->lock);
	for (;;) {
		struct list_node *n = list_first(&f->trash);
		struct path_job *pj;
		int ret;

		if (!n) {
			if (f->stopping)
				break;
			pthread_cond_wait(&f->jcond, &f->lock);
			continue;
		}
		list_del(n);
		pthread_mutex_unlock(&f->lock);
		pj = container_of(n, struct path_job, node);
		ret = util_rm_tree(AT_FDCWD, pj->path);
		if (ret)
			log_warn("removing %s: %s", pj->path, strerror(-ret));
		free(pj);
		pthread_mutex_lock(&f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

/* ---------------------------------------------------------------------
 * Deploys
 */

static void on_progress(void *ctx, const char *step, const char *detail)
{
	struct job *j = ctx;
	int ret = db_deploy_step(j->f->db, j->id, step, detail);

	if (ret && ret != -ENOENT)
		log_warn("deploy %s: recording step %s: %s", j->id, step,
			 strerror(-ret));
}

/* The scheduler's view of version `version` of a function whose files are
 * in STATE/rel_dir. */
static void spec_fill(struct fns *f, struct sched_fn_spec *spec,
		      const struct db_function *row, uint32_t version,
		      const struct fn_manifest *m, const char *rel_dir,
		      char *snap, char *disk, size_t cap)
{
	struct stat st;

	memset(spec, 0, sizeof(*spec));
	spec->min_instances = row->min_instances;
	spec->idle_ttl_ms = row->idle_ttl_ms > 0 ? (uint32_t)row->idle_ttl_ms : 0;
	spec->fn_id = row->id;
	spec->tenant_id = row->tenant_id;
	spec->version = version;
	util_copy(spec->name, sizeof(spec->name), row->name);
	util_copy(spec->tenant, sizeof(spec->tenant), row->tenant);
	spec->memory_mib = m->memory_mib;
	spec->timeout_ms = m->timeout_ms;
	spec->max_concurrency = m->max_concurrency;
	/* A Linux guest's VM has an in-kernel irqchip; its shells too. */
	spec->irqchip = !strcmp(m->guest, "linux");
	snprintf(snap, cap, "%s/%s/snapshot", f->state_dir, rel_dir);
	snprintf(disk, cap, "%s/%s/image", f->state_dir, rel_dir);
	spec->snapshot_dir = snap;
	spec->disk = stat(disk, &st) == 0 ? disk : NULL;
}

int fns_spec(struct fns *f, const struct db_function *row,
	     struct sched_fn_spec *spec, char *snap, char *disk, size_t cap)
{
	struct fn_manifest m;
	char err[256];
	int ret;

	if (!row->version || !row->manifest || !row->dir)
		return -ENOENT;
	ret = manifest_parse(row->manifest, strlen(row->manifest), &m, err,
			     sizeof(err));
	if (ret) {
		log_err("function %lld v%u: stored manifest: %s",
			(long long)row->id, row->version, err);
		return ret;
	}
	spec_fill(f, spec, row, row->version, &m, row->dir, snap, disk, cap);
	manifest_free(&m);
	return 0;
}

/* Puts the function's current version (per the database) back into the
 * scheduler, or takes it out if there is none: the undo of a switch the
 * database did not take. */
static void sched_restore_current(struct fns *f, int64_t fn_id)
{
	char snap[4096], disk[4096];
	struct sched_fn_spec spec;
	struct db_function row;

	if (db_function_get_by_id(f->db, fn_id, &row)) {
		sched_fn_remove(f->sched, fn_id);
		return;
	}
	if (row.version && !fns_spec(f, &row, &spec, snap, disk, sizeof(snap)))
		sched_fn_set(f->sched, &spec);
	else
		sched_fn_remove(f->sched, fn_id);
	db_function_free(&row);
}

/* Moves a built version into place and makes it current: the scheduler
 * first, then the database, so that once the deploy reads "succeeded" every
 * new invocation already goes to the new version. */
static int deploy_activate(struct fns *f, struct job *j,
			   const struct deploy_result *res, const char *staging)
{
	char rel[128], rel_snap[160], final[4096], parent[4096];
	char snap[4096], disk[4096];
	struct sched_fn_spec spec;
	struct db_function row;
	uint32_t version;
	char *manifest;
	json_t *mj;
	int ret, sret;

	ret = db_deploy_next_version(f->db, j->fn_id, &version);
	if (!ret)
		ret = db_function_get_by_id(f->db, j->fn_id, &row);
	if (ret)
		return ret;
	db_function_free(&row); /* only its scaling settings are used */
	snprintf(rel, sizeof(rel), "functions/%lld/v%u", (long long)j->fn_id,
		 version);
	snprintf(rel_snap, sizeof(rel_snap), "%s/snapshot", rel);
	snprintf(parent, sizeof(parent), "%s/functions/%lld", f->state_dir,
		 (long long)j->fn_id);
	snprintf(final, sizeof(final), "%s/%s", f->state_dir, rel);
	mj = manifest_to_json(&res->manifest);
	manifest = mj ? json_dumps(mj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(mj);
	if (!manifest)
		return -ENOMEM;
	ret = util_mkdir_p(parent, 0700);
	if (!ret && rename(staging, final) < 0)
		ret = -errno;
	if (ret) {
		free(manifest);
		return ret;
	}
	/* The rename is durable before the row that names it. */
	util_fsync_dir(parent);
	spec_fill(f, &spec, &row, version, &res->manifest, rel, snap, disk,
		  sizeof(snap));
	sret = sched_fn_set(f->sched, &spec);
	ret = db_deploy_succeed(f->db, j->id, j->fn_id, version, manifest, rel,
				rel_snap, res->manifest.memory_mib);
	free(manifest);
	if (ret) {
		sched_restore_current(f, j->fn_id);
		util_rm_tree(AT_FDCWD, final);
		return ret;
	}
	if (sret)
		log_err("deploy %s: version %u is recorded but the scheduler "
			"could not take it: %s (a restart will)", j->id,
			version, strerror(-sret));
	{
		struct elog_who who = { 0, j->tenant, j->function };

		elog_event(LOG_MOD, "deploy", &who, "version %u deployed (%s)",
			   version, j->id);
	}
	return 0;
}

/* The deploy's boot VM is recorded like the shells, so that a restart
 * after a crash ends it if it outlived emberd. */
static void on_vmm_child(void *ctx, pid_t pid, bool running)
{
	struct job *j = ctx;

	if (running)
		vmmproc_record(j->f->runtime_dir, pid);
	else
		vmmproc_forget(j->f->runtime_dir, pid);
}

static void deploy_run(struct fns *f, struct job *j)
{
	struct deploy_request rq = {
		.archive_fd = j->fd,
		.tools = &f->cfg.tools,
		.max_archive_bytes = f->cfg.max_archive_bytes,
		.max_files = f->cfg.max_files,
		.max_tree_bytes = f->cfg.max_tree_bytes,
		.progress = on_progress,
		.vmm_child = on_vmm_child,
		.ctx = j,
	};
	struct deploy_result res;
	char staging[4096];
	int ret;

	snprintf(staging, sizeof(staging), "%s/staging/%s", f->state_dir,
		 j->id);
	rq.out_dir = staging;
	ret = deploy_build(&rq, &res);
	close(j->fd);
	j->fd = -1;
	if (ret) {
		struct elog_who who = { 0, j->tenant, j->function };

		elog_event(LOG_MOD, "deploy", &who, "deploy %s failed at %s: %s",
			   j->id, res.step, res.message);
		ret = db_deploy_fail(f->db, j->id, res.step, res.message,
				     res.output);
		if (ret && ret != -ENOENT)
			log_err("deploy %s: recording the failure: %s", j->id,
				strerror(-ret));
		util_rm_tree(AT_FDCWD, staging);
		deploy_result_free(&res);
		return;
	}
	ret = deploy_activate(f, j, &res, staging);
	if (ret) {
		char msg[256];

		snprintf(msg, sizeof(msg), "the new version could not be "
			 "recorded: %s", strerror(-ret));
		if (ret != -ENOENT)
			log_err("deploy %s: %s", j->id, msg);
		db_deploy_fail(f->db, j->id, "activate", msg, NULL);
		util_rm_tree(AT_FDCWD, staging);
	}
	deploy_result_free(&res);
}

static void *worker_main(void *arg)
{
	struct fns *f = arg;

	pthread_mutex_lock(&f->lock);
	for (;;) {
		struct list_node *n = list_first(&f->jobs);
		struct job *j;

		if (!n) {
			if (f->stopping)
				break;
			pthread_cond_wait(&f->cond, &f->lock);
			continue;
		}
		list_del(n);
		f->nr_jobs--;
		pthread_mutex_unlock(&f->lock);
		j = container_of(n, struct job, node);
		deploy_run(f, j);
		free(j);
		pthread_mutex_lock(&f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

int fns_deploy(struct fns *f, const struct db_tenant *t, const char *name,
	       int fd, uint64_t bytes, char id[DB_ID_MAX],
	       char busy_id[DB_ID_MAX])
{
	char detail[96];
	struct job *j;
	bool created;
	int ret;

	pthread_mutex_lock(&f->lock);
	ret = f->nr_jobs >= f->cfg.queue_max ? -EAGAIN : 0;
	pthread_mutex_unlock(&f->lock);
	j = ret ? NULL : calloc(1, sizeof(*j));
	if (!ret && !j)
		ret = -ENOMEM;
	if (!ret)
		ret = util_random_id("dp_", id, DB_ID_MAX);
	if (!ret)
		ret = db_deploy_begin(f->db, t->id, name, id, &j->fn_id,
				      &created, busy_id);
	if (ret) {
		close(fd);
		free(j);
		return ret;
	}
	j->f = f;
	j->fd = fd;
	j->tenant_id = t->id;
	snprintf(j->id, sizeof(j->id), "%s", id);
	snprintf(j->tenant, sizeof(j->tenant), "%s", t->name);
	snprintf(j->function, sizeof(j->function), "%s", name);
	snprintf(detail, sizeof(detail), "%llu bytes received%s",
		 (unsigned long long)bytes, created ? ", new function" : "");
	on_progress(j, "queued", detail);
	pthread_mutex_lock(&f->lock);
	list_append(&f->jobs, &j->node);
	f->nr_jobs++;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/* ---------------------------------------------------------------------
 * Deletes
 */

static void trash_function(struct fns *f, int64_t fn_id)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "functions/%lld", (long long)fn_id);
	trash_path(f, rel);
}

int fns_delete(struct fns *f, int64_t tenant_id, const char *name)
{
	struct db_function row;
	int ret;

	ret = db_function_get(f->db, tenant_id, name, &row);
	if (ret)
		return ret;
	db_function_free(&row);
	ret = db_function_delete(f->db, row.id);
	if (ret)
		return ret;
	sched_fn_remove(f->sched, row.id);
	trash_function(f, row.id);
	return 0;
}

int fns_delete_tenant(struct fns *f, const struct db_tenant *t)
{
	struct db_function *rows = NULL;
	size_t n = 0;
	int ret;

	ret = db_function_list(f->db, t->id, &rows, &n);
	if (ret)
		return ret;
	ret = db_tenant_delete(f->db, t->id);
	if (!ret) {
		for (size_t i = 0; i < n; i++) {
			sched_fn_remove(f->sched, rows[i].id);
			trash_function(f, rows[i].id);
		}
	}
	db_function_free_array(rows, n);
	return ret;
}

/* ---------------------------------------------------------------------
 * Recovery at start
 */

static bool dir_known(char **dirs, size_t n, const char *rel)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(dirs[i], rel))
			return true;
	return false;
}

/* Removes STATE/functions/ID/vN directories that no version row names, and
 * function directories left empty. */
static void remove_unknown_versions(struct fns *f, char **dirs, size_t n)
{
	char top[4096];
	struct dirent *e;
	DIR *d;

	snprintf(top, sizeof(top), "%s/functions", f->state_dir);
	d = opendir(top);
	if (!d)
		return;
	while ((e = readdir(d))) {
		char fdir[4096 + 256];
		struct dirent *v;
		unsigned kept = 0;
		DIR *vd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(fdir, sizeof(fdir), "%s/%s", top, e->d_name);
		vd = opendir(fdir);
		if (!vd) {
			util_rm_tree(AT_FDCWD, fdir);
			continue;
		}
		while ((v = readdir(vd))) {
			char rel[600];

			if (v->d_name[0] == '.')
				continue;
			snprintf(rel, sizeof(rel), "functions/%s/%s", e->d_name,
				 v->d_name);
			if (dir_known(dirs, n, rel)) {
				kept++;
				continue;
			}
			log_warn("removing %s: no version row names it (a "
				 "deploy or delete that did not finish)", rel);
			util_rm_tree(dirfd(vd), v->d_name);
		}
		closedir(vd);
		if (!kept)
			rmdir(fdir);
	}
	closedir(d);
}

int fns_recover(struct fns *f, char *err, size_t errlen)
{
	struct db_function *rows = NULL;
	char path[4096], **dirs = NULL;
	size_t n = 0, ndirs = 0, failed;
	int ret;

	/* Half-built versions. */
	snprintf(path, sizeof(path), "%s/staging", f->state_dir);
	ret = util_rm_tree(AT_FDCWD, path);
	if (!ret)
		ret = util_mkdir_p(path, 0700);
	if (ret)
		return errbuf_fail(err, errlen, ret, "%s: %s", path,
				   strerror(-ret));
	ret = db_deploy_fail_interrupted(f->db, &failed);
	if (ret)
		return errbuf_fail(err, errlen, ret,
				   "marking interrupted deploys: %s",
				   strerror(-ret));
	if (failed)
		log_warn("%zu deploys were interrupted by the previous emberd's "
			 "end; marked failed, nothing changed", failed);
	ret = db_version_dirs(f->db, &dirs, &ndirs);
	if (ret)
		return errbuf_fail(err, errlen, ret, "listing versions: %s",
				   strerror(-ret));
	remove_unknown_versions(f, dirs, ndirs);
	db_strings_free(dirs, ndirs);

	ret = db_function_list(f->db, 0, &rows, &n);
	if (ret)
		return errbuf_fail(err, errlen, ret, "listing functions: %s",
				   strerror(-ret));
	for (size_t i = 0; i < n; i++) {
		char snap[4096], disk[4096];
		struct sched_fn_spec spec;

		if (!rows[i].version)
			continue;
		ret = fns_spec(f, &rows[i], &spec, snap, disk, sizeof(snap));
		if (!ret)
			ret = sched_fn_set(f->sched, &spec);
		if (ret)
			log_err("function %s (id %lld) v%u cannot be served: %s",
				rows[i].name, (long long)rows[i].id,
				rows[i].version, strerror(-ret));
	}
	db_function_free_array(rows, n);
	return 0;
}

/* ---------------------------------------------------------------------
 * Life
 */

struct fns *fns_create(const struct fns_config *cfg, struct db *db,
		       struct sched *sched, char *err, size_t errlen)
{
	struct fns *f = calloc(1, sizeof(*f));
	int ret;

	if (!f) {
		errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	f->cfg = *cfg;
	f->db = db;
	f->sched = sched;
	f->state_dir = strdup(cfg->state_dir);
	f->runtime_dir = strdup(cfg->runtime_dir);
	f->vmm = strdup(cfg->tools.vmm);
	f->micro = strdup(cfg->tools.micro);
	f->lua = strdup(cfg->tools.lua_handler);
	f->py = cfg->tools.python_handler ? strdup(cfg->tools.python_handler) :
					    NULL;
	f->py_home = cfg->tools.python_home ? strdup(cfg->tools.python_home) :
					      NULL;
	/* Guest "linux": NULL when not configured (deploys say so). */
	f->linux_kernel = cfg->tools.linux_kernel ?
				  strdup(cfg->tools.linux_kernel) : NULL;
	f->guest_init = cfg->tools.guest_init ? strdup(cfg->tools.guest_init) :
						NULL;
	f->linux_image = cfg->tools.linux_image ?
				 strdup(cfg->tools.linux_image) : NULL;
	f->cfg.state_dir = f->state_dir;
	f->cfg.runtime_dir = f->runtime_dir;
	f->cfg.tools = (struct deploy_tools){
		.vmm = f->vmm,
		.micro = f->micro,
		.lua_handler = f->lua,
		.python_handler = f->py,
		.python_home = f->py_home,
		.linux_kernel = f->linux_kernel,
		.guest_init = f->guest_init,
		.linux_image = f->linux_image,
		.seccomp = cfg->tools.seccomp,
	};
	if (!f->cfg.workers)
		f->cfg.workers = 1;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	pthread_cond_init(&f->jcond, NULL);
	list_init(&f->jobs);
	list_init(&f->trash);
	f->workers = calloc(f->cfg.workers, sizeof(*f->workers));
	if (!f->state_dir || !f->runtime_dir || !f->vmm || !f->micro ||
	    !f->lua || !f->workers) {
		errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		fns_destroy(f);
		return NULL;
	}
	ret = pthread_create(&f->janitor, NULL, janitor_main, f);
	if (!ret)
		f->janitor_started = true;
	for (unsigned i = 0; !ret && i < f->cfg.workers; i++) {
		ret = pthread_create(&f->workers[i], NULL, worker_main, f);
		if (!ret)
			f->nr_workers++;
	}
	if (ret) {
		errbuf_fail(err, errlen, -ret, "pthread_create: %s",
			    strerror(ret));
		fns_destroy(f);
		return NULL;
	}
	return f;
}

void fns_destroy(struct fns *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stopping = true;
	/* Deploys that never reached a worker fail now, changing nothing. */
	while (!list_empty(&f->jobs)) {
		struct job *j = container_of(list_first(&f->jobs), struct job,
					     node);

		list_del(&j->node);
		db_deploy_fail(f->db, j->id, "interrupted",
			       "emberd stopped before the deploy started; "
			       "nothing was changed", NULL);
		close(j->fd);
		free(j);
	}
	pthread_cond_broadcast(&f->cond);
	pthread_cond_broadcast(&f->jcond);
	pthread_mutex_unlock(&f->lock);
	for (unsigned i = 0; i < f->nr_workers; i++)
		pthread_join(f->workers[i], NULL);
	if (f->janitor_started)
		pthread_join(f->janitor, NULL);
	free(f->workers);
	free(f->state_dir);
	free(f->runtime_dir);
	free(f->vmm);
	free(f->micro);
	free(f->lua);
	free(f->py);
	free(f->py_home);
	free(f->linux_kernel);
	free(f->guest_init);
	free(f->linux_image);
	pthread_cond_destroy(&f->cond);
	pthread_cond_destroy(&f->jcond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}
