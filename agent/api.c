/*
 * api.c - the routes of emberd's HTTP API and their handlers: see api.h.
 *
 * Answers follow contract section 3: JSON bodies, errors as
 * {"error": {"code", "message"}}, names checked by the server before a
 * handler runs. An invocation's answer is the function's own bytes with
 * X-Ember-* headers; a function error (the handler answered with a
 * non-zero status) is still a 200, marked X-Ember-Function-Status: error,
 * so a client can always tell the platform's errors (4xx/5xx, JSON) from
 * the function's (200, its own body).
 */
#define LOG_MOD "api"

#include "agent/api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/meter_api.h"
#include "log.h"
#include "proto/invoke.h"

/* ---------------------------------------------------------------------
 * Helpers
 */

static void reply_db_error(struct http_req *r, int ret)
{
	http_reply_error(r, 500, "internal_error", "the database failed: %s",
			 strerror(-ret));
}

/* Checks that obj has only the keys in allowed (NULL-terminated). */
static bool only_keys(struct http_req *r, json_t *obj,
		      const char *const *allowed)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		bool ok = false;

		(void)v;
		for (const char *const *a = allowed; *a; a++)
			ok = ok || !strcmp(key, *a);
		if (!ok) {
			http_reply_error(r, 400, "bad_request",
					 "unknown field \"%.64s\"", key);
			return false;
		}
	}
	return true;
}

/* The tenant named by the route's first parameter, or a 404. */
static bool tenant_of_path(struct api *a, struct http_req *r,
			   struct db_tenant *t)
{
	int ret = db_tenant_get(a->db, http_param(r, 0), t);

	if (ret == -ENOENT)
		http_reply_error(r, 404, "tenant_not_found", "no tenant \"%s\"",
				 http_param(r, 0));
	else if (ret)
		reply_db_error(r, ret);
	return ret == 0;
}

/* The calling tenant's function named by the route's first parameter. */
static bool function_of_path(struct api *a, struct http_req *r,
			     struct db_function *f)
{
	int ret = db_function_get(a->db, http_who(r)->tenant.id,
				  http_param(r, 0), f);

	if (ret == -ENOENT)
		http_reply_error(r, 404, "function_not_found",
				 "no function \"%s\"", http_param(r, 0));
	else if (ret)
		reply_db_error(r, ret);
	return ret == 0;
}

static json_t *manifest_json(const char *text)
{
	return text ? json_loads(text, 0, NULL) : NULL;
}

/* ---------------------------------------------------------------------
 * Health and system
 */

static void health(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	bool draining = atomic_load(&a->draining);

	http_reply_json(r, draining ? 503 : 200,
			json_pack("{s:s,s:s}", "status",
				  draining ? "draining" : "ok", "version",
				  EMBERD_VERSION));
}

/* The VMM processes, for the admin: pid, state, whose. */
static json_t *vms_json(struct api *a)
{
	struct sched_vm_info *vms;
	json_t *arr;
	size_t n;

	if (sched_vms(a->sched, &vms, &n))
		return json_null();
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		json_array_append_new(
			arr, json_pack("{s:i,s:s,s:I,s:I,s:I,s:I}", "pid",
				       vms[i].pid, "state", vms[i].state,
				       "tenant_id", (json_int_t)vms[i].tenant_id,
				       "function_id", (json_int_t)vms[i].fn_id,
				       "version", (json_int_t)vms[i].version,
				       "idle_ms", (json_int_t)vms[i].idle_ms));
	free(vms);
	return arr ? arr : json_null();
}

static void system_get(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	struct sched_stats st;

	sched_stats(a->sched, &st);
	http_reply_json(
		r, 200,
		json_pack("{s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f},"
			  "s:{s:I,s:I,s:I},s:I,s:I,s:I,s:I,s:I,s:I,s:o}",
			  "pool", "ready", (json_int_t)st.pool_ready,
			  "spawning", (json_int_t)st.pool_spawning, "target",
			  (json_int_t)st.pool_target, "min",
			  (json_int_t)st.pool_min, "max",
			  (json_int_t)st.pool_max, "spawned",
			  (json_int_t)st.pool_spawned, "spawn_failures",
			  (json_int_t)st.pool_spawn_failures, "misses",
			  (json_int_t)st.pool_misses, "restores_per_s",
			  st.restores_per_s, "memory", "budget_mib",
			  (json_int_t)st.memory_budget_mib, "committed_mib",
			  (json_int_t)st.memory_committed_mib, "reclaimed",
			  (json_int_t)st.reclaimed, "instances",
			  (json_int_t)st.instances, "queued",
			  (json_int_t)st.queued, "reaped",
			  (json_int_t)st.reaped, "functions",
			  (json_int_t)st.functions, "tenants",
			  (json_int_t)st.tenants, "vmm_processes",
			  (json_int_t)st.vmm_processes, "vms", vms_json(a)));
}

/* ---------------------------------------------------------------------
 * Tenants and tokens (admin)
 */

/* A tenant's effective limits: its own where set, else the defaults. */
static struct sched_limits limits_effective(struct api *a,
					    const struct db_limits *l)
{
	struct sched_limits d;

	sched_default_limits(a->sched, &d);
	if (l->instances >= 0)
		d.instances = (unsigned)l->instances;
	if (l->memory_mib >= 0)
		d.memory_mib = (uint64_t)l->memory_mib;
	if (l->concurrency >= 0)
		d.concurrency = (unsigned)l->concurrency;
	return d;
}

static bool limits_custom(const struct db_limits *l)
{
	return l->instances >= 0 || l->memory_mib >= 0 || l->concurrency >= 0;
}

int api_load_limits(struct api *a)
{
	struct db_tenant *ts;
	size_t n;
	int ret = db_tenant_list(a->db, &ts, &n);

	if (ret)
		return ret;
	for (size_t i = 0; !ret && i < n; i++) {
		if (limits_custom(&ts[i].limits)) {
			struct sched_limits l = limits_effective(a, &ts[i].limits);

			ret = sched_tenant_limits(a->sched, ts[i].id, &l);
		}
	}
	free(ts);
	return ret;
}

/* Parses {"instances": N|null, "memory_mib": N|null, "concurrency":
 * N|null} over *l (null: the default; 0: no limit). False with a 400. */
static bool parse_limits(struct http_req *r, json_t *obj, struct db_limits *l)
{
	static const char *const keys[] = { "instances", "memory_mib",
					    "concurrency", NULL };
	int64_t *dst[] = { &l->instances, &l->memory_mib, &l->concurrency };

	if (!json_is_object(obj)) {
		http_reply_error(r, 400, "bad_request",
				 "\"limits\" must be an object");
		return false;
	}
	if (!only_keys(r, obj, keys))
		return false;
	for (int i = 0; keys[i]; i++) {
		json_t *v = json_object_get(obj, keys[i]);

		if (!v)
			continue;
		if (json_is_null(v)) {
			*dst[i] = DB_LIMIT_DEFAULT;
		} else if (json_is_integer(v) && json_integer_value(v) >= 0 &&
			   json_integer_value(v) <= (1ll << 40)) {
			*dst[i] = json_integer_value(v);
		} else {
			http_reply_error(r, 400, "bad_request",
					 "limits.%s must be a non-negative "
					 "integer or null", keys[i]);
			return false;
		}
	}
	return true;
}

static json_t *tenant_json(struct api *a, const struct db_tenant *t)
{
	struct sched_limits eff = limits_effective(a, &t->limits);
	struct sched_tenant_stats st;

	sched_tenant_stats(a->sched, t->id, &st);
	return json_pack("{s:s,s:s,s:I,s:{s:I,s:I,s:I},s:b,s:{s:I,s:I,s:I}}",
			 "name", t->name, "created", t->created, "functions",
			 (json_int_t)t->nr_functions, "limits", "instances",
			 (json_int_t)eff.instances, "memory_mib",
			 (json_int_t)eff.memory_mib, "concurrency",
			 (json_int_t)eff.concurrency, "custom_limits",
			 limits_custom(&t->limits), "usage", "instances",
			 (json_int_t)st.used.instances, "memory_mib",
			 (json_int_t)st.used.memory_mib, "concurrency",
			 (json_int_t)st.used.concurrency);
}

/* Records limits for tenant t and hands the effective ones to the
 * scheduler. False with an error answer set. */
static bool apply_limits(struct api *a, struct http_req *r,
			 struct db_tenant *t, const struct db_limits *l)
{
	struct sched_limits eff = limits_effective(a, l);
	int ret = db_tenant_set_limits(a->db, t->id, l);

	if (ret) {
		reply_db_error(r, ret);
		return false;
	}
	t->limits = *l;
	sched_tenant_limits(a->sched, t->id, limits_custom(l) ? &eff : NULL);
	return true;
}

static void tenant_create(void *ctx, struct http_req *r)
{
	static const char *const keys[] = { "name", "limits", NULL };
	struct api *a = ctx;
	json_t *body = http_json(r), *name = json_object_get(body, "name");
	json_t *limits = json_object_get(body, "limits");
	struct db_limits l = { DB_LIMIT_DEFAULT, DB_LIMIT_DEFAULT,
			       DB_LIMIT_DEFAULT };
	struct db_tenant t;
	char loc[96];
	int ret;

	if (!only_keys(r, body, keys))
		return;
	if (limits && !parse_limits(r, limits, &l))
		return;
	if (!json_is_string(name))
		return http_reply_error(r, 400, "bad_request",
					"\"name\" (a string) is required");
	if (!util_name_valid(json_string_value(name), json_string_length(name)))
		return http_reply_error(r, 400, "invalid_name",
					"names are 1 to 63 characters of a-z, "
					"0-9 and '-', starting with a letter "
					"or digit");
	ret = db_tenant_create(a->db, json_string_value(name), &t);
	if (ret == -EEXIST)
		return http_reply_error(r, 409, "tenant_exists",
					"tenant \"%s\" exists",
					json_string_value(name));
	if (ret)
		return reply_db_error(r, ret);
	if (limits_custom(&l) && !apply_limits(a, r, &t, &l))
		return;
	log_info("tenant %s created", t.name);
	http_reply_json(r, 201, tenant_json(a, &t));
	snprintf(loc, sizeof(loc), "/v1/tenants/%s", t.name);
	http_add_header(r, "Location", loc);
}

static void tenant_list(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	struct db_tenant *ts;
	json_t *arr;
	size_t n;
	int ret;

	ret = db_tenant_list(a->db, &ts, &n);
	if (ret)
		return reply_db_error(r, ret);
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		json_array_append_new(arr, tenant_json(a, &ts[i]));
	free(ts);
	http_reply_json(r, 200, json_pack("{s:o}", "tenants", arr));
}

static void tenant_update(void *ctx, struct http_req *r)
{
	static const char *const keys[] = { "limits", NULL };
	struct api *a = ctx;
	json_t *body = http_json(r), *limits = json_object_get(body, "limits");
	struct db_tenant t;
	struct db_limits l;

	if (!only_keys(r, body, keys) || !tenant_of_path(a, r, &t))
		return;
	if (!limits)
		return http_reply_error(r, 400, "bad_request",
					"\"limits\" is required");
	l = t.limits;
	if (!parse_limits(r, limits, &l) || !apply_limits(a, r, &t, &l))
		return;
	log_info("tenant %s: limits changed", t.name);
	http_reply_json(r, 200, tenant_json(a, &t));
}

static void tenant_delete(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	struct db_tenant t;
	int ret;

	if (!tenant_of_path(a, r, &t))
		return;
	ret = fns_delete_tenant(a->fns, &t);
	if (ret == -ENOENT)
		return http_reply_error(r, 404, "tenant_not_found",
					"no tenant \"%s\"", t.name);
	if (ret)
		return reply_db_error(r, ret);
	log_info("tenant %s deleted", t.name);
	http_reply_empty(r, 204);
}

static void token_create(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	char token[AUTH_TOKEN_LEN + 1], id[DB_ID_MAX];
	uint8_t hash[DB_HASH_LEN];
	struct db_tenant t;
	struct db_token tk;
	int ret;

	if (!tenant_of_path(a, r, &t))
		return;
	ret = auth_token_new(token, hash);
	if (!ret)
		ret = util_random_id("tk_", id, sizeof(id));
	if (ret)
		return http_reply_error(r, 500, "internal_error",
					"no randomness: %s", strerror(-ret));
	ret = db_token_create(a->db, t.id, id, hash, &tk);
	if (ret == -ENOENT)
		return http_reply_error(r, 404, "tenant_not_found",
					"no tenant \"%s\"", t.name);
	if (ret)
		return reply_db_error(r, ret);
	http_reply_json(r, 201,
			json_pack("{s:s,s:s,s:s,s:s}", "id", tk.id, "token",
				  token, "tenant", t.name, "created",
				  tk.created));
	memset(token, 0, sizeof(token));
}

static void token_list(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	struct db_token *tks;
	struct db_tenant t;
	json_t *arr;
	size_t n;
	int ret;

	if (!tenant_of_path(a, r, &t))
		return;
	ret = db_token_list(a->db, t.id, &tks, &n);
	if (ret)
		return reply_db_error(r, ret);
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		json_array_append_new(arr, json_pack("{s:s,s:s}", "id",
						     tks[i].id, "created",
						     tks[i].created));
	free(tks);
	http_reply_json(r, 200, json_pack("{s:o}", "tokens", arr));
}

static void token_delete(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	struct db_tenant t;
	int ret;

	if (!tenant_of_path(a, r, &t))
		return;
	ret = db_token_delete(a->db, t.id, http_param(r, 1));
	if (ret == -ENOENT)
		return http_reply_error(r, 404, "token_not_found",
					"tenant \"%s\" has no token \"%s\"",
					t.name, http_param(r, 1));
	if (ret)
		return reply_db_error(r, ret);
	http_reply_empty(r, 204);
}

/* ---------------------------------------------------------------------
 * Functions and deploys (tenants)
 */

static json_t *function_summary(const struct db_function *f)
{
	json_t *m = manifest_json(f->manifest);
	json_t *o = json_pack("{s:s,s:s,s:b}", "name", f->name, "created",
			      f->created, "deploying", f->deploying);

	if (!o) {
		json_decref(m);
		return NULL;
	}
	if (f->version) {
		const char *keys[] = { "runtime", "memory_mib", "timeout_ms",
				       "max_concurrency" };

		json_object_set_new(o, "version", json_integer(f->version));
		json_object_set_new(o, "updated",
				    json_string(f->version_created));
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			json_t *v = json_object_get(m, keys[i]);

			if (v)
				json_object_set(o, keys[i], v);
		}
	} else {
		json_object_set_new(o, "version", json_null());
	}
	json_decref(m);
	return o;
}

static void function_list(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	struct db_function *fs;
	json_t *arr;
	size_t n;
	int ret;

	ret = db_function_list(a->db, http_who(r)->tenant.id, &fs, &n);
	if (ret)
		return reply_db_error(r, ret);
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		json_array_append_new(arr, function_summary(&fs[i]));
	db_function_free_array(fs, n);
	http_reply_json(r, 200, json_pack("{s:o}", "functions", arr));
}

static void function_get(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	struct sched_fn_stats st;
	struct db_function f;
	json_t *o;

	if (!function_of_path(a, r, &f))
		return;
	o = function_summary(&f);
	if (o) {
		json_t *m = manifest_json(f.manifest);

		json_object_set_new(o, "manifest", m ? m : json_null());
		memset(&st, 0, sizeof(st));
		sched_fn_stats(a->sched, f.id, &st);
		json_object_set_new(
			o, "instances",
			json_pack("{s:I,s:I,s:I}", "idle", (json_int_t)st.idle,
				  "busy", (json_int_t)st.busy, "starting",
				  (json_int_t)st.starting));
		json_object_set_new(o, "queued", json_integer(st.queued));
		json_object_set_new(
			o, "scaling",
			json_pack("{s:I,s:f,s:b}", "min_instances",
				  (json_int_t)f.min_instances, "idle_ttl_s",
				  (f.idle_ttl_ms >= 0 ?
					   (double)f.idle_ttl_ms :
					   (double)st.idle_ttl_ms) / 1000.0,
				  "idle_ttl_default", f.idle_ttl_ms < 0));
		json_object_set_new(
			o, "invocations",
			json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "cold",
				  (json_int_t)st.cold, "warm",
				  (json_int_t)st.warm, "errors",
				  (json_int_t)st.errors, "timeouts",
				  (json_int_t)st.timeouts, "crashes",
				  (json_int_t)st.crashes, "throttled",
				  (json_int_t)st.throttled));
	}
	db_function_free(&f);
	http_reply_json(r, 200, o);
}

static void function_versions(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	struct db_version *vs;
	struct db_function f;
	json_t *arr;
	size_t n;
	int ret;

	if (!function_of_path(a, r, &f))
		return;
	ret = db_version_list(a->db, f.id, &vs, &n);
	db_function_free(&f);
	if (ret)
		return reply_db_error(r, ret);
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		json_t *m = manifest_json(vs[i].manifest);

		json_array_append_new(arr,
				      json_pack("{s:I,s:s,s:b,s:o}", "version",
						(json_int_t)vs[i].version,
						"created", vs[i].created,
						"current", vs[i].current,
						"manifest",
						m ? m : json_null()));
	}
	db_version_free_array(vs, n);
	http_reply_json(r, 200, json_pack("{s:o}", "versions", arr));
}

static void function_delete(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	int ret = fns_delete(a->fns, http_who(r)->tenant.id, http_param(r, 0));

	if (ret == -ENOENT)
		return http_reply_error(r, 404, "function_not_found",
					"no function \"%s\"", http_param(r, 0));
	if (ret == -EBUSY)
		return http_reply_error(r, 409, "deploy_in_progress",
					"a deploy of \"%s\" is running; delete "
					"it when the deploy has finished",
					http_param(r, 0));
	if (ret)
		return reply_db_error(r, ret);
	log_info("%s/%s deleted", http_who(r)->tenant.name, http_param(r, 0));
	http_reply_empty(r, 204);
}

static void function_stop_instances(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	struct db_function f;
	int n;

	if (!function_of_path(a, r, &f))
		return;
	db_function_free(&f);
	n = sched_fn_stop_idle(a->sched, f.id);
	http_reply_json(r, 200, json_pack("{s:i}", "stopped", n > 0 ? n : 0));
}

static void function_scaling(void *ctx, struct http_req *r)
{
	static const char *const keys[] = { "min_instances", "idle_ttl_s",
					    NULL };
	struct api *a = ctx;
	json_t *body = http_json(r);
	json_t *mi = json_object_get(body, "min_instances");
	json_t *ttl = json_object_get(body, "idle_ttl_s");
	struct db_function f;
	uint32_t min_instances;
	int64_t ttl_ms;
	int ret;

	if (!only_keys(r, body, keys) || !function_of_path(a, r, &f))
		return;
	min_instances = f.min_instances;
	ttl_ms = f.idle_ttl_ms;
	db_function_free(&f);
	if (mi) {
		if (!json_is_integer(mi) || json_integer_value(mi) < 0 ||
		    json_integer_value(mi) > 1000)
			return http_reply_error(r, 400, "bad_request",
						"min_instances must be 0..1000");
		min_instances = (uint32_t)json_integer_value(mi);
	}
	if (ttl) {
		if (json_is_null(ttl)) {
			ttl_ms = DB_LIMIT_DEFAULT;
		} else if (json_is_number(ttl) && json_number_value(ttl) >= 0.001 &&
			   json_number_value(ttl) <= 86400) {
			ttl_ms = (int64_t)(json_number_value(ttl) * 1000 + 0.5);
		} else {
			return http_reply_error(r, 400, "bad_request",
						"idle_ttl_s must be 0.001..86400 "
						"seconds, or null for the "
						"default");
		}
	}
	ret = db_function_set_scaling(a->db, f.id, min_instances, ttl_ms);
	if (ret)
		return reply_db_error(r, ret);
	/* A function without a version yet gets them with its first one. */
	sched_fn_scaling(a->sched, f.id, min_instances,
			 ttl_ms > 0 ? (uint32_t)ttl_ms : 0);
	function_get(ctx, r);
}

static void function_deploy(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	char id[DB_ID_MAX], busy[DB_ID_MAX] = "", url[96];
	uint64_t len;
	int fd = http_take_fd(r, &len), ret;

	if (fd < 0 || len == 0) {
		if (fd >= 0)
			close(fd);
		return http_reply_error(r, 400, "bad_request",
					"the body must be the function's archive "
					"(tar or tar.gz with ember.json)");
	}
	ret = fns_deploy(a->fns, &http_who(r)->tenant, http_param(r, 0), fd,
			 len, id, busy);
	if (ret == -EBUSY)
		return http_reply_error(r, 409, "deploy_in_progress",
					"deploy %s of \"%s\" is still running",
					busy, http_param(r, 0));
	if (ret == -EAGAIN) {
		http_reply_error(r, 429, "too_many_deploys",
				 "too many deploys are waiting; retry later");
		http_add_header(r, "Retry-After", "5");
		return;
	}
	if (ret)
		return http_reply_error(r, 500, "internal_error",
					"the deploy could not start: %s",
					strerror(-ret));
	snprintf(url, sizeof(url), "/v1/deploys/%s", id);
	http_reply_json(r, 202,
			json_pack("{s:{s:s,s:s,s:s,s:s}}", "deploy", "id", id,
				  "function", http_param(r, 0), "state",
				  "running", "url", url));
	http_add_header(r, "Location", url);
}

static void deploy_get(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	struct db_deploy d;
	json_t *o, *steps;
	int ret;

	ret = db_deploy_get(a->db, http_who(r)->tenant.id, http_param(r, 0), &d);
	if (ret == -ENOENT)
		return http_reply_error(r, 404, "deploy_not_found",
					"no deploy \"%s\"", http_param(r, 0));
	if (ret)
		return reply_db_error(r, ret);
	steps = json_array();
	for (size_t i = 0; steps && i < d.nr_steps; i++)
		json_array_append_new(steps,
				      json_pack("{s:s,s:s,s:s}", "step",
						d.steps[i].step, "detail",
						d.steps[i].detail ?
							d.steps[i].detail : "",
						"at", d.steps[i].at));
	o = json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", d.id, "function",
		      d.function, "state", d.state, "created", d.created,
		      "steps", steps);
	if (o && d.finished[0])
		json_object_set_new(o, "finished", json_string(d.finished));
	if (o && d.version)
		json_object_set_new(o, "version", json_integer(d.version));
	if (o && !strcmp(d.state, "failed"))
		json_object_set_new(
			o, "error",
			json_pack("{s:s,s:s,s:s?}", "step",
				  d.error_step ? d.error_step : "",
				  "message",
				  d.error_message ? d.error_message : "",
				  "output", d.error_output));
	db_deploy_free(&d);
	http_reply_json(r, 200, o);
}

/* ---------------------------------------------------------------------
 * Invoke
 */

struct invocation {
	struct http_req *r;
	uint32_t version;
	bool bill_init;  /* the meter bills restores too (--bill-init) */
};

static void set_header_u64(struct http_req *r, const char *name, uint64_t v,
			   bool hex)
{
	char buf[32];

	snprintf(buf, sizeof(buf), hex ? "%016" PRIx64 : "%" PRIu64, v);
	http_add_header(r, name, buf);
}

/* Builds the invocation's answer (on the scheduler's event thread; the
 * request is suspended) and resumes the request. */
static void on_invoke_done(void *ctx, struct sched_result *res)
{
	struct invocation *iv = ctx;
	struct http_req *r = iv->r;
	char ra[16];

	switch (res->outcome) {
	case SCHED_OK:
	case SCHED_FN_ERROR:
		http_reply_bytes(r, 200, res->payload, res->len,
				 "application/octet-stream");
		res->payload = NULL;
		http_add_header(r, "X-Ember-Function-Status",
				res->outcome == SCHED_OK ? "ok" : "error");
		http_add_header(r, "X-Ember-Start", res->cold ? "cold" : "warm");
		set_header_u64(r, "X-Ember-Duration-Us", res->duration_ns / 1000,
			       false);
		/* The ledger's own rule (docs/metering.md), so that the
		 * header and the bill agree. */
		set_header_u64(r, "X-Ember-Billed-Ms",
			       meter_billed_ms(meter_api_outcome(res->outcome),
					       res->duration_ns,
					       res->cold ? res->init_ns : 0, 0,
					       iv->bill_init),
			       false);
		if (res->cold)
			set_header_u64(r, "X-Ember-Init-Us",
				       res->init_ns / 1000, false);
		break;
	case SCHED_TIMEOUT:
		http_reply_error(r, 504, "function_timeout", "%s",
				 res->message);
		break;
	case SCHED_CRASH:
		http_reply_error(r, 502, "function_crashed", "%s",
				 res->message);
		break;
	case SCHED_THROTTLED:
		http_reply_error(r, 429, "too_many_requests", "%s",
				 res->message);
		snprintf(ra, sizeof(ra), "%u", res->retry_after_s);
		http_add_header(r, "Retry-After", ra);
		break;
	case SCHED_UNAVAILABLE:
		http_reply_error(r, 503, "unavailable", "%s", res->message);
		break;
	case SCHED_GONE:
		http_reply_error(r, 404, "function_not_found",
				 "the function was deleted");
		break;
	case SCHED_INTERNAL:
	default:
		http_reply_error(r, 500, "internal_error", "%s", res->message);
		break;
	}
	free(res->payload);
	res->payload = NULL;
	set_header_u64(r, "X-Ember-Request-Id", res->request_id, true);
	free(iv);
	http_resume(r);
}

/* An invocation refused before the scheduler took it still gets its
 * ledger row (nothing billed) and a request id on the answer (call after
 * the http_reply_*). */
static void invoke_refused(struct api *a, struct http_req *r,
			   const struct db_fn_ref *f, size_t len,
			   const struct timespec *start)
{
	const struct auth_who *who = http_who(r);
	struct meter_inv inv = {
		.tenant_id = who->tenant.id,
		.tenant = who->tenant.name,
		.fn_id = f->id,
		.function = http_param(r, 0),
		.version = f->version,
		.start = *start,
		.outcome = LEDGER_REJECTED,
		.bytes_in = len,
	};

	if (a->meter)
		set_header_u64(r, "X-Ember-Request-Id",
			       meter_refused(a->meter, &inv), true);
}

static void function_invoke(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	const char *name = http_param(r, 0);
	struct invocation *iv;
	struct db_fn_ref f;
	struct timespec start;
	unsigned max_wait = 0;
	void *payload;
	size_t len;
	int ret;

	ret = db_function_lookup(a->db, http_who(r)->tenant.id, name, &f);
	if (ret == -ENOENT)
		return http_reply_error(r, 404, "function_not_found",
					"no function \"%s\"", name);
	if (ret)
		return reply_db_error(r, ret);
	clock_gettime(CLOCK_REALTIME, &start);
	if (!f.version) {
		http_reply_error(r, 409, "not_deployed",
				 "\"%s\" has no version yet%s", name,
				 f.deploying ? " (its first deploy is "
					       "running)" : "");
		http_body(r, &len);
		return invoke_refused(a, r, &f, len, &start);
	}
	iv = calloc(1, sizeof(*iv));
	if (!iv)
		return http_reply_error(r, 500, "internal_error",
					"out of memory");
	iv->r = r;
	iv->bill_init = a->meter && meter_config(a->meter)->bill_init;
	iv->version = f.version;
	clock_gettime(CLOCK_REALTIME, &start);
	{
		/* A client may ask to wait less for an instance than the
		 * configured --queue-wait-ms (never more). */
		const char *h = http_header(r, "X-Ember-Max-Wait-Ms");
		char *end;

		if (h) {
			unsigned long v = strtoul(h, &end, 10);

			if (end == h || *end || v == 0 || v > 900000) {
				free(iv);
				return http_reply_error(r, 400, "bad_request",
							"X-Ember-Max-Wait-Ms "
							"must be 1..900000");
			}
			max_wait = (unsigned)v;
		}
	}
	payload = http_take_body(r, &len);
	/* Suspended before the scheduler can possibly answer. */
	http_suspend(r);
	ret = sched_invoke(a->sched, f.id, payload, len, &start, max_wait,
			   on_invoke_done, iv);
	if (ret) {
		free(iv);
		if (ret == -ESHUTDOWN)
			http_reply_error(r, 503, "unavailable",
					 "emberd is shutting down");
		else if (ret == -ENOENT)
			http_reply_error(r, 503, "unavailable",
					 "\"%s\" v%u is not loaded (see "
					 "emberd's log)", name, f.version);
		else
			http_reply_error(r, 500, "internal_error", "%s",
					 strerror(-ret));
		invoke_refused(a, r, &f, len, &start);
		http_resume(r);
	}
}

/* ---------------------------------------------------------------------
 * The table
 */

static const struct http_route routes[] = {
	{ "GET", "/v1/health", HTTP_ANYONE, HTTP_BODY_NONE, 0, health,
	  "liveness and version" },
	{ "GET", "/v1/system", HTTP_ADMIN, HTTP_BODY_NONE, 0, system_get,
	  "the VM shell pool and instance counts" },
	{ "POST", "/v1/tenants", HTTP_ADMIN, HTTP_BODY_JSON, 0, tenant_create,
	  "create a tenant" },
	{ "GET", "/v1/tenants", HTTP_ADMIN, HTTP_BODY_NONE, 0, tenant_list,
	  "list tenants" },
	{ "PATCH", "/v1/tenants/{tenant}", HTTP_ADMIN, HTTP_BODY_JSON, 0,
	  tenant_update, "change a tenant's limits" },
	{ "DELETE", "/v1/tenants/{tenant}", HTTP_ADMIN, HTTP_BODY_NONE, 0,
	  tenant_delete, "delete a tenant with everything it owns" },
	{ "POST", "/v1/tenants/{tenant}/tokens", HTTP_ADMIN, HTTP_BODY_NONE, 0,
	  token_create, "issue a tenant token (shown once)" },
	{ "GET", "/v1/tenants/{tenant}/tokens", HTTP_ADMIN, HTTP_BODY_NONE, 0,
	  token_list, "list a tenant's tokens" },
	{ "DELETE", "/v1/tenants/{tenant}/tokens/{id}", HTTP_ADMIN,
	  HTTP_BODY_NONE, 0, token_delete, "revoke a token" },
	{ "GET", "/v1/functions", HTTP_TENANT, HTTP_BODY_NONE, 0,
	  function_list, "list the tenant's functions" },
	{ "PUT", "/v1/functions/{name}", HTTP_TENANT, HTTP_BODY_FILE, -1,
	  function_deploy, "deploy a new version from an archive" },
	{ "GET", "/v1/functions/{name}", HTTP_TENANT, HTTP_BODY_NONE, 0,
	  function_get, "a function: manifest, version, instances" },
	{ "DELETE", "/v1/functions/{name}", HTTP_TENANT, HTTP_BODY_NONE, 0,
	  function_delete, "delete a function, its instances and files" },
	{ "GET", "/v1/functions/{name}/versions", HTTP_TENANT, HTTP_BODY_NONE,
	  0, function_versions, "list a function's versions" },
	{ "PUT", "/v1/functions/{name}/scaling", HTTP_TENANT, HTTP_BODY_JSON,
	  0, function_scaling,
	  "instances kept warm and idle time before a stop" },
	{ "DELETE", "/v1/functions/{name}/instances", HTTP_TENANT,
	  HTTP_BODY_NONE, 0, function_stop_instances,
	  "stop the function's idle instances (the next invoke is cold)" },
	{ "POST", "/v1/functions/{name}/invoke", HTTP_TENANT, HTTP_BODY_MEMORY,
	  (int)EMBER_INV_MAX_PAYLOAD, function_invoke,
	  "invoke: the body is the payload, the answer the result" },
	{ "GET", "/v1/deploys/{id}", HTTP_TENANT, HTTP_BODY_NONE, 0, deploy_get,
	  "a deploy's state, steps and error" },
	{ "GET", "/v1/functions/{name}/logs", HTTP_TENANT, HTTP_BODY_NONE, 0,
	  meter_api_logs, "a function's invocation logs" },
	{ "GET", "/v1/usage", HTTP_TOKEN, HTTP_BODY_NONE, 0, meter_api_usage,
	  "usage totals (a tenant its own; the admin all, per tenant)" },
	{ "GET", "/v1/invocations", HTTP_TOKEN, HTTP_BODY_NONE, 0,
	  meter_api_invocations, "the ledger's rows, oldest first, paged" },
	{ "GET", "/metrics", HTTP_ADMIN, HTTP_BODY_NONE, 0, meter_api_metrics,
	  "Prometheus metrics" },
};

const struct http_route *api_routes(size_t *n)
{
	*n = sizeof(routes) / sizeof(routes[0]);
	return routes;
}
