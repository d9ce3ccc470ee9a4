/*
 * meter_api.c - the metering routes and the scheduler's finished() hook:
 * see meter_api.h.
 */
#define LOG_MOD "api"

#include "agent/meter_api.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/api.h"
#include "agent/db.h"
#include "agent/ledger.h"
#include "agent/metrics.h"
#include "agent/util.h"
#include "log.h"

#define RECORDS_DEFAULT 1000
#define RECORDS_MAX 10000
#define LOGS_DEFAULT 100
#define LOGS_MAX 1000
/* A query waits this long at most for the ledger's pending commits. */
#define SYNC_MS 2000

/* ---------------------------------------------------------------------
 * The finished() hook
 */

enum ledger_outcome meter_api_outcome(enum sched_outcome o)
{
	switch (o) {
	case SCHED_OK: return LEDGER_OK;
	case SCHED_FN_ERROR: return LEDGER_ERROR;
	case SCHED_TIMEOUT: return LEDGER_TIMEOUT;
	case SCHED_CRASH: return LEDGER_CRASH;
	case SCHED_THROTTLED: return LEDGER_THROTTLED;
	default: return LEDGER_REJECTED; /* never ran: not billed */
	}
}

void meter_api_finished(void *ctx, const struct sched_record *rec)
{
	struct meter_inv inv = {
		.request_id = rec->request_id,
		.tenant_id = rec->tenant_id,
		.fn_id = rec->fn_id,
		.tenant = rec->tenant,
		.function = rec->function,
		.version = rec->version,
		.memory_mib = rec->memory_mib,
		.timeout_ms = rec->timeout_ms,
		.start = rec->start,
		.duration_ns = rec->duration_ns,
		.init_ns = rec->init_ns,
		.queued_ns = rec->queued_ns,
		.cold = rec->cold,
		.outcome = meter_api_outcome(rec->outcome),
		.bytes_in = rec->bytes_in,
		.bytes_out = rec->bytes_out,
		.logs = rec->logs,
		.logs_len = rec->logs_len,
		.logs_truncated = rec->logs_dropped,
	};

	meter_finished(ctx, &inv);
}

/* ---------------------------------------------------------------------
 * Parameters
 */

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The first of this month, 00:00 UTC: the default start of a report (a
 * bill is monthly). */
static int64_t month_start_us(int64_t now)
{
	time_t s = (time_t)(now / 1000000);
	struct tm tm;

	gmtime_r(&s, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	return (int64_t)timegm(&tm) * 1000000;
}

/* from= and to= into q; false after answering 400. */
static bool parse_range(struct http_req *r, struct ledger_query *q,
			int64_t now)
{
	const char *from = http_query(r, "from"), *to = http_query(r, "to");

	q->from_us = month_start_us(now);
	q->to_us = INT64_MAX;
	if (from && meter_parse_time(from, now, &q->from_us)) {
		http_reply_error(r, 400, "invalid_time",
				 "from: \"%.40s\" is not a time (2026-12-01, "
				 "2026-12-01T10:00:00Z, now, -24h, -7d)", from);
		return false;
	}
	if (to && meter_parse_time(to, now, &q->to_us)) {
		http_reply_error(r, 400, "invalid_time",
				 "to: \"%.40s\" is not a time (2026-12-01, "
				 "2026-12-01T10:00:00Z, now, -24h, -7d)", to);
		return false;
	}
	if (q->to_us <= q->from_us) {
		http_reply_error(r, 400, "invalid_range",
				 "to must be after from");
		return false;
	}
	return true;
}

/* A name-valued query argument: NULL when absent, false after a 400. */
static bool parse_name(struct http_req *r, const char *key, const char **out)
{
	const char *v = http_query(r, key);

	*out = v;
	if (v && !util_name_valid(v, strlen(v))) {
		http_reply_error(r, 400, "invalid_name",
				 "%s: not a valid name (^[a-z0-9][a-z0-9-]"
				 "{0,62}$)", key);
		return false;
	}
	return true;
}

/* A decimal in [lo, hi]; absent leaves *out alone. */
static bool parse_uint(struct http_req *r, const char *key, uint64_t lo,
		       uint64_t hi, uint64_t *out)
{
	const char *v = http_query(r, key);
	char *end;
	unsigned long long n;

	if (!v)
		return true;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (v[0] < '0' || v[0] > '9' || *end || errno || n < lo || n > hi) {
		http_reply_error(r, 400, "invalid_argument",
				 "%s: an integer from %llu to %llu", key,
				 (unsigned long long)lo, (unsigned long long)hi);
		return false;
	}
	*out = n;
	return true;
}

/* group_by=function,day|hour (commas raw or %2C). */
static bool parse_group_by(struct http_req *r, unsigned *g)
{
	const char *v = http_query(r, "group_by");
	char buf[64], *tok, *save;
	size_t o = 0;

	if (!v)
		return true;
	*g = 0;
	for (const char *p = v; *p; p++) {
		if (o + 1 >= sizeof(buf))
			goto bad;
		if (p[0] == '%' && p[1] == '2' && (p[2] == 'C' || p[2] == 'c')) {
			buf[o++] = ',';
			p += 2;
		} else {
			buf[o++] = *p;
		}
	}
	buf[o] = '\0';
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "function"))
			*g |= LEDGER_BY_FUNCTION;
		else if (!strcmp(tok, "day"))
			*g |= LEDGER_BY_DAY;
		else if (!strcmp(tok, "hour"))
			*g |= LEDGER_BY_HOUR;
		else
			goto bad;
	}
	if ((*g & LEDGER_BY_DAY) && (*g & LEDGER_BY_HOUR))
		goto bad;
	return true;
bad:
	http_reply_error(r, 400, "invalid_argument",
			 "group_by: function, day or hour, or function "
			 "with one of day and hour (e.g. function,day)");
	return false;
}

static bool wants_csv(struct http_req *r)
{
	const char *a = http_header(r, "Accept");
	const char *f = http_query(r, "format");

	return (a && strstr(a, "text/csv")) || (f && !strcmp(f, "csv"));
}

static struct ledger *ledger_of(void *ctx)
{
	return meter_ledger(((struct api *)ctx)->meter);
}

/* emberd --no-meter serves the routes but has nothing behind them. */
static bool metering_on(void *ctx, struct http_req *r)
{
	if (((struct api *)ctx)->meter)
		return true;
	http_reply_error(r, 503, "unavailable",
			 "metering is off (emberd --no-meter)");
	return false;
}

/* The caller's scope: a tenant only ever its own rows. */
static void scope(struct http_req *r, struct ledger_query *q, bool *admin)
{
	const struct auth_who *who = http_who(r);

	*admin = who->kind == AUTH_ADMIN;
	if (!*admin)
		q->tenant_id = who->tenant.id;
}

/* ---------------------------------------------------------------------
 * GET /v1/usage
 */

static json_t *usage_json(const struct ledger_usage *u)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,"
			 "s:f,s:f,s:I,s:I}",
			 "requests", (json_int_t)u->requests,
			 "invocations", (json_int_t)u->invocations,
			 "errors", (json_int_t)ledger_usage_errors(u),
			 "ok", (json_int_t)u->by_outcome[LEDGER_OK],
			 "error", (json_int_t)u->by_outcome[LEDGER_ERROR],
			 "timeout", (json_int_t)u->by_outcome[LEDGER_TIMEOUT],
			 "crash", (json_int_t)u->by_outcome[LEDGER_CRASH],
			 "throttled",
			 (json_int_t)u->by_outcome[LEDGER_THROTTLED],
			 "rejected", (json_int_t)u->by_outcome[LEDGER_REJECTED],
			 "cold_starts", (json_int_t)u->cold_starts,
			 "billed_ms", (json_int_t)u->billed_ms,
			 "gb_seconds", ledger_usage_gb_s(u),
			 "duration_ms", (double)u->duration_ns / 1e6,
			 "init_ms", (double)u->init_ns / 1e6,
			 "bytes_in", (json_int_t)u->bytes_in,
			 "bytes_out", (json_int_t)u->bytes_out);
}

static const char usage_csv_cols[] =
	"requests,invocations,errors,ok,error,timeout,crash,throttled,"
	"rejected,cold_starts,billed_ms,gb_seconds,duration_ms,init_ms,"
	"bytes_in,bytes_out";

static void usage_csv_row(struct mbuf *b, const struct ledger_usage *u)
{
	mbuf_printf(b,
		    "%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
		    ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
		    ",%" PRIu64 ",%.6f,%.3f,%.3f,%" PRIu64 ",%" PRIu64 "\r\n",
		    u->requests, u->invocations, ledger_usage_errors(u),
		    u->by_outcome[LEDGER_OK], u->by_outcome[LEDGER_ERROR],
		    u->by_outcome[LEDGER_TIMEOUT], u->by_outcome[LEDGER_CRASH],
		    u->by_outcome[LEDGER_THROTTLED],
		    u->by_outcome[LEDGER_REJECTED], u->cold_starts, u->billed_ms,
		    ledger_usage_gb_s(u), (double)u->duration_ns / 1e6,
		    (double)u->init_ns / 1e6, u->bytes_in, u->bytes_out);
}

static void reply_csv(struct http_req *r, struct mbuf *b, const char *name)
{
	char disp[96];

	if (b->oom) {
		mbuf_free(b);
		return http_reply_error(r, 500, "internal_error",
					"out of memory");
	}
	http_reply_bytes(r, 200, b->p, b->len, "text/csv; charset=utf-8");
	snprintf(disp, sizeof(disp), "attachment; filename=\"%s.csv\"", name);
	http_add_header(r, "Content-Disposition", disp);
}

void meter_api_usage(void *ctx, struct http_req *r)
{
	struct ledger *l = ledger_of(ctx);
	struct ledger_query q = { 0 };
	struct ledger_usage *rows = NULL, *tenants = NULL, total = { 0 };
	size_t n = 0, nt = 0;
	int64_t now = now_us();
	char from[32], to[32];
	bool admin;
	int ret;

	if (!metering_on(ctx, r))
		return;

	scope(r, &q, &admin);
	q.group_by = LEDGER_BY_FUNCTION;
	if (!parse_range(r, &q, now) || !parse_group_by(r, &q.group_by) ||
	    !parse_name(r, "function", &q.function) ||
	    (admin && !parse_name(r, "tenant", &q.tenant)))
		return;
	if (!admin && http_query(r, "tenant"))
		return http_reply_error(r, 400, "invalid_argument",
					"tenant: only the admin may choose "
					"a tenant");
	if (admin && (q.group_by & LEDGER_BY_FUNCTION))
		q.group_by |= LEDGER_BY_TENANT;
	ledger_sync(l, SYNC_MS); /* read your own invocations */
	ret = ledger_usage(l, &q, &rows, &n);
	if (!ret && admin) {
		struct ledger_query tq = q;

		tq.group_by = LEDGER_BY_TENANT;
		ret = ledger_usage(l, &tq, &tenants, &nt);
	}
	if (ret) {
		free(rows);
		return http_reply_error(r, 500, "internal_error",
					"the ledger could not be read");
	}
	for (size_t i = 0; i < n; i++)
		ledger_usage_add(&total, &rows[i]);
	meter_format_time(q.from_us, from);
	meter_format_time(q.to_us == INT64_MAX ? now : q.to_us, to);

	if (wants_csv(r)) {
		struct mbuf b = { 0 };

		mbuf_printf(&b, "%s%s%s%s\r\n",
			    (q.group_by & LEDGER_BY_TENANT) ? "tenant," : "",
			    (q.group_by & LEDGER_BY_FUNCTION) ? "function," : "",
			    (q.group_by & (LEDGER_BY_DAY | LEDGER_BY_HOUR)) ?
				    "period," : "",
			    usage_csv_cols);
		for (size_t i = 0; i < n; i++) {
			char period[32];

			if (q.group_by & LEDGER_BY_TENANT)
				mbuf_printf(&b, "%s,", rows[i].tenant);
			if (q.group_by & LEDGER_BY_FUNCTION)
				mbuf_printf(&b, "%s,", rows[i].function);
			if (q.group_by & (LEDGER_BY_DAY | LEDGER_BY_HOUR)) {
				meter_format_time(rows[i].period_us, period);
				mbuf_printf(&b, "%s,", period);
			}
			usage_csv_row(&b, &rows[i]);
		}
		free(rows);
		free(tenants);
		return reply_csv(r, &b, "usage");
	}

	{
		json_t *o = json_object(), *arr = json_array(), *g = json_array();

		if (q.group_by & LEDGER_BY_TENANT)
			json_array_append_new(g, json_string("tenant"));
		if (q.group_by & LEDGER_BY_FUNCTION)
			json_array_append_new(g, json_string("function"));
		if (q.group_by & LEDGER_BY_DAY)
			json_array_append_new(g, json_string("day"));
		if (q.group_by & LEDGER_BY_HOUR)
			json_array_append_new(g, json_string("hour"));
		for (size_t i = 0; i < n; i++) {
			json_t *e = usage_json(&rows[i]);
			char period[32];

			if (q.group_by & LEDGER_BY_TENANT)
				json_object_set_new(e, "tenant",
						    json_string(rows[i].tenant));
			if (q.group_by & LEDGER_BY_FUNCTION)
				json_object_set_new(
					e, "function",
					json_string(rows[i].function));
			if (q.group_by & (LEDGER_BY_DAY | LEDGER_BY_HOUR)) {
				meter_format_time(rows[i].period_us, period);
				json_object_set_new(e, "period",
						    json_string(period));
			}
			json_array_append_new(arr, e);
		}
		json_object_set_new(o, "from", json_string(from));
		json_object_set_new(o, "to", json_string(to));
		json_object_set_new(o, "group_by", g);
		if (!admin)
			json_object_set_new(
				o, "tenant",
				json_string(http_who(r)->tenant.name));
		json_object_set_new(o, "usage", arr);
		json_object_set_new(o, "total", usage_json(&total));
		if (admin) {
			json_t *ts = json_array();

			for (size_t i = 0; i < nt; i++) {
				json_t *e = usage_json(&tenants[i]);

				json_object_set_new(
					e, "tenant",
					json_string(tenants[i].tenant));
				json_array_append_new(ts, e);
			}
			json_object_set_new(o, "tenants", ts);
		}
		free(rows);
		free(tenants);
		http_reply_json(r, 200, o);
	}
}

/* ---------------------------------------------------------------------
 * GET /v1/invocations
 */

void meter_api_invocations(void *ctx, struct http_req *r)
{
	struct ledger *l = ledger_of(ctx);
	struct ledger_query q = { 0 };
	struct ledger_rec *recs;
	int64_t *ids, now = now_us();
	uint64_t limit = RECORDS_DEFAULT, after = 0;
	size_t n;
	bool admin, csv = wants_csv(r);

	if (!metering_on(ctx, r))
		return;

	scope(r, &q, &admin);
	if (!parse_range(r, &q, now) ||
	    !parse_name(r, "function", &q.function) ||
	    (admin && !parse_name(r, "tenant", &q.tenant)) ||
	    !parse_uint(r, "limit", 1, RECORDS_MAX, &limit) ||
	    !parse_uint(r, "after", 0, INT64_MAX, &after))
		return;
	if (!admin && http_query(r, "tenant"))
		return http_reply_error(r, 400, "invalid_argument",
					"tenant: only the admin may choose "
					"a tenant");
	ledger_sync(l, SYNC_MS);
	if (ledger_records(l, &q, (int64_t)after, limit, &recs, &ids, &n))
		return http_reply_error(r, 500, "internal_error",
					"the ledger could not be read");
	if (csv) {
		struct mbuf b = { 0 };

		mbuf_printf(&b, "request_id,tenant,function,version,start,"
				"duration_us,billed_ms,memory_mib,start_kind,"
				"init_us,queued_us,outcome,bytes_in,bytes_out"
				"\r\n");
		for (size_t i = 0; i < n; i++) {
			const struct ledger_rec *e = &recs[i];
			char start[32];

			meter_format_time(e->start_us, start);
			mbuf_printf(&b,
				    "%016" PRIx64 ",%s,%s,%u,%s,%" PRIu64
				    ",%u,%u,%s,%" PRIu64 ",%" PRIu64
				    ",%s,%" PRIu64 ",%" PRIu64 "\r\n",
				    e->request_id, e->tenant, e->function,
				    e->version, start, e->duration_ns / 1000,
				    e->billed_ms, e->memory_mib,
				    !ledger_outcome_ran(e->outcome) ? "" :
				    e->cold ? "cold" : "warm",
				    e->init_ns / 1000, e->queued_ns / 1000,
				    ledger_outcome_name(e->outcome),
				    e->bytes_in, e->bytes_out);
		}
		free(recs);
		free(ids);
		return reply_csv(r, &b, "invocations");
	}
	{
		json_t *o = json_object(), *arr = json_array();

		for (size_t i = 0; i < n; i++) {
			const struct ledger_rec *e = &recs[i];
			char id[17], start[32];
			json_t *j;

			snprintf(id, sizeof(id), "%016" PRIx64, e->request_id);
			meter_format_time(e->start_us, start);
			j = json_pack("{s:s,s:s,s:s,s:I,s:s,s:I,s:I,s:I,s:I,"
				      "s:s,s:I,s:I,s:I,s:I}",
				      "request_id", id, "tenant", e->tenant,
				      "function", e->function,
				      "version", (json_int_t)e->version,
				      "start", start,
				      "duration_us",
				      (json_int_t)(e->duration_ns / 1000),
				      "duration_ns", (json_int_t)e->duration_ns,
				      "billed_ms", (json_int_t)e->billed_ms,
				      "memory_mib", (json_int_t)e->memory_mib,
				      "outcome", ledger_outcome_name(e->outcome),
				      "queued_us",
				      (json_int_t)(e->queued_ns / 1000),
				      "bytes_in", (json_int_t)e->bytes_in,
				      "bytes_out", (json_int_t)e->bytes_out,
				      "cursor", (json_int_t)ids[i]);
			if (ledger_outcome_ran(e->outcome))
				json_object_set_new(
					j, "start_kind",
					json_string(e->cold ? "cold" : "warm"));
			if (e->cold)
				json_object_set_new(
					j, "init_us",
					json_integer((json_int_t)(e->init_ns /
								  1000)));
			json_array_append_new(arr, j);
		}
		json_object_set_new(o, "invocations", arr);
		/* A full page may have more behind it: the cursor to ask
		 * for next, else null. */
		json_object_set_new(o, "next",
				    n == limit ? json_integer(ids[n - 1]) :
						 json_null());
		free(recs);
		free(ids);
		http_reply_json(r, 200, o);
	}
}

/* ---------------------------------------------------------------------
 * GET /v1/functions/{name}/logs
 */

void meter_api_logs(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	struct ledger *l = ledger_of(ctx);
	struct ledger_log_query q = { 0 };
	struct db_function f;
	struct ledger_log *logs;
	const char *rid = http_query(r, "request_id");
	const char *since = http_query(r, "since");
	uint64_t tail = 0, after = 0, limit = LOGS_DEFAULT;
	int64_t cursor;
	size_t n;
	int ret;

	if (!metering_on(ctx, r))
		return;

	if (!parse_uint(r, "tail", 1, LOGS_MAX, &tail) ||
	    !parse_uint(r, "after", 0, INT64_MAX, &after) ||
	    !parse_uint(r, "limit", 1, LOGS_MAX, &limit))
		return;
	if (rid) {
		char *end;

		errno = 0;
		q.request_id = strtoull(rid, &end, 16);
		if (strlen(rid) != 16 || *end || errno || !q.request_id)
			return http_reply_error(r, 400, "invalid_argument",
						"request_id: 16 hex digits "
						"(X-Ember-Request-Id)");
	}
	if (since && meter_parse_time(since, now_us(), &q.since_us))
		return http_reply_error(r, 400, "invalid_time",
					"since: \"%.40s\" is not a time "
					"(2026-12-01T10:00:00Z, -10m, -1h)",
					since);
	ret = db_function_get(a->db, http_who(r)->tenant.id, http_param(r, 0),
			      &f);
	if (ret == -ENOENT)
		return http_reply_error(r, 404, "function_not_found",
					"no function \"%s\"", http_param(r, 0));
	if (ret)
		return http_reply_error(r, 500, "internal_error",
					"the database could not be read");
	q.tenant_id = f.tenant_id;
	q.fn_id = f.id;
	db_function_free(&f);
	q.after = (int64_t)after;
	q.tail = (size_t)tail;
	q.limit = (size_t)limit;
	if (!rid && !since && !after && !tail)
		q.tail = LOGS_DEFAULT; /* by default the newest */
	ledger_sync(l, SYNC_MS);
	if (ledger_logs(l, &q, &logs, &n))
		return http_reply_error(r, 500, "internal_error",
					"the logs could not be read");
	cursor = n ? logs[n - 1].id : (int64_t)after;
	{
		json_t *o = json_object(), *arr = json_array();

		for (size_t i = 0; i < n; i++) {
			char id[17], at[32];

			snprintf(id, sizeof(id), "%016" PRIx64,
				 logs[i].request_id);
			meter_format_time(logs[i].at_us, at);
			json_array_append_new(
				arr, json_pack("{s:s,s:s,s:b,s:s%,s:I}",
					       "request_id", id, "at", at,
					       "truncated", logs[i].truncated,
					       "text", logs[i].text, logs[i].len,
					       "cursor", (json_int_t)logs[i].id));
		}
		json_object_set_new(o, "function",
				    json_string(http_param(r, 0)));
		json_object_set_new(o, "logs", arr);
		json_object_set_new(o, "cursor", json_integer(cursor));
		ledger_logs_free(logs, n);
		http_reply_json(r, 200, o);
	}
}

/* ---------------------------------------------------------------------
 * GET /metrics
 */

struct alive_set {
	int64_t *ids;
	size_t n;
};

static int id_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static bool fn_alive(void *ctx, int64_t fn_id)
{
	const struct alive_set *s = ctx;

	return bsearch(&fn_id, s->ids, s->n, sizeof(*s->ids), id_cmp) != NULL;
}

static const char *tenant_name(const struct db_tenant *t, size_t nt,
			       int64_t id)
{
	for (size_t i = 0; i < nt; i++)
		if (t[i].id == id)
			return t[i].name;
	return "_unknown";
}

/* A version's memory_mib, from its stored manifest (0 if unreadable). */
static uint32_t manifest_memory(const char *manifest)
{
	json_t *m = manifest ? json_loads(manifest, 0, NULL) : NULL;
	json_int_t v = m ? json_integer_value(json_object_get(m, "memory_mib")) :
			   0;

	json_decref(m);
	return v > 0 ? (uint32_t)v : 0;
}

/* The scheduler's and the ledger's gauges and counters. */
static void render_platform(struct api *a, struct mbuf *b)
{
	struct sched_stats ss;
	struct ledger_stats ls;
	struct db_function *fns = NULL;
	struct db_tenant *ts = NULL;
	size_t nf = 0, nt = 0, shown = 0;
	unsigned idle = 0, busy = 0, starting = 0, queued = 0;
	uint64_t committed_mib = 0;
	unsigned max = meter_config(a->meter)->metrics_max_series;
	struct alive_set alive = { 0 };

	if (!max)
		max = 1000;
	sched_stats(a->sched, &ss);
	if (db_function_list(a->db, 0, &fns, &nf) ||
	    db_tenant_list(a->db, &ts, &nt)) {
		nf = 0;
		log_warn_rl("metrics: the database could not be read");
	}
	alive.ids = malloc(sizeof(*alive.ids) * (nf + 1));

	metrics_family(b, "ember_function_instances", "gauge",
		       "Instances of a function by state (idle, busy, "
		       "starting).");
	for (size_t i = 0; i < nf; i++) {
		struct sched_fn_stats st;
		const char *tn = tenant_name(ts, nt, fns[i].tenant_id);

		if (alive.ids)
			alive.ids[alive.n++] = fns[i].id;
		if (sched_fn_stats(a->sched, fns[i].id, &st))
			continue; /* not installed (no version yet) */
		idle += st.idle;
		busy += st.busy;
		starting += st.starting;
		queued += st.queued;
		committed_mib += (uint64_t)(st.idle + st.busy + st.starting) *
				 manifest_memory(fns[i].manifest);
		if (shown++ >= max)
			continue; /* the totals below still count it */
		{
			const char *li[] = { "tenant", tn, "function",
					     fns[i].name, "state", "idle", NULL };
			const char *lb[] = { "tenant", tn, "function",
					     fns[i].name, "state", "busy", NULL };
			const char *ls_[] = { "tenant", tn, "function",
					      fns[i].name, "state", "starting",
					      NULL };

			metrics_sample(b, "ember_function_instances", st.idle,
				       li);
			metrics_sample(b, "ember_function_instances", st.busy,
				       lb);
			metrics_sample(b, "ember_function_instances",
				       st.starting, ls_);
		}
	}
	metrics_family(b, "ember_function_queue_depth", "gauge",
		       "Invocations of a function waiting for an instance.");
	shown = 0;
	for (size_t i = 0; i < nf; i++) {
		struct sched_fn_stats st;
		const char *l[] = { "tenant", tenant_name(ts, nt, fns[i].tenant_id),
				    "function", fns[i].name, NULL };

		if (sched_fn_stats(a->sched, fns[i].id, &st) || shown++ >= max)
			continue;
		metrics_sample(b, "ember_function_queue_depth", st.queued, l);
	}
	metrics_family(b, "ember_instances", "gauge",
		       "Function instances on this machine by state.");
	{
		const char *li[] = { "state", "idle", NULL };
		const char *lb[] = { "state", "busy", NULL };
		const char *lst[] = { "state", "starting", NULL };

		metrics_sample(b, "ember_instances", idle, li);
		metrics_sample(b, "ember_instances", busy, lb);
		metrics_sample(b, "ember_instances", starting, lst);
	}
	metrics_single(b, "ember_queue_depth", "gauge",
		       "Invocations waiting for an instance, all functions.",
		       queued);
	metrics_single(b, "ember_memory_committed_bytes", "gauge",
		       "Guest memory of every live instance (the manifests' "
		       "memory_mib).",
		       (double)committed_mib * 1048576.0);
	metrics_family(b, "ember_shell_pool", "gauge",
		       "Pre-spawned VM shells by state (ready, spawning).");
	{
		const char *lr[] = { "state", "ready", NULL };
		const char *ls2[] = { "state", "spawning", NULL };

		metrics_sample(b, "ember_shell_pool", ss.pool_ready, lr);
		metrics_sample(b, "ember_shell_pool", ss.pool_spawning, ls2);
	}
	metrics_single(b, "ember_shell_pool_target", "gauge",
		       "VM shells the pool keeps ready.", ss.pool_target);
	metrics_single(b, "ember_shell_spawns_total", "counter",
		       "VM shells spawned.", (double)ss.pool_spawned);
	metrics_single(b, "ember_shell_spawn_failures_total", "counter",
		       "VM shells that failed to start.",
		       (double)ss.pool_spawn_failures);
	metrics_single(b, "ember_vmm_processes", "gauge",
		       "ember-vmm processes alive (pooled shells and "
		       "instances).",
		       (double)ss.vmm_processes);
	metrics_single(b, "ember_functions", "gauge",
		       "Functions with a version installed in the scheduler.",
		       ss.functions);

	ledger_stats(meter_ledger(a->meter), &ls);
	metrics_single(b, "ember_ledger_rows_total", "counter",
		       "Ledger rows committed to the database.",
		       (double)ls.rows);
	metrics_single(b, "ember_ledger_pending_rows", "gauge",
		       "Ledger rows in the journal, not yet committed.",
		       (double)(ls.appended - ls.committed));
	metrics_single(b, "ember_ledger_commits_total", "counter",
		       "Ledger batch transactions committed.",
		       (double)ls.commits);
	metrics_single(b, "ember_ledger_commit_errors_total", "counter",
		       "Ledger batches SQLite refused (retried).",
		       (double)ls.commit_errors);
	metrics_single(b, "ember_ledger_commit_seconds_total", "counter",
		       "Time spent committing ledger batches.",
		       (double)ls.commit_ns_total / 1e9);
	metrics_single(b, "ember_ledger_journal_stalls_total", "counter",
		       "Invocations that waited for room in a full journal.",
		       (double)ls.stalls);
	metrics_single(b, "ember_ledger_replayed_rows", "gauge",
		       "Rows replayed from the journal at start (an unclean "
		       "stop before).",
		       (double)ls.replayed);
	metrics_single(b, "ember_logs_dropped_total", "counter",
		       "Invocation logs dropped because the queue was full.",
		       (double)ls.logs_dropped);
	metrics_family(b, "ember_build_info", "gauge",
		       "emberd's version (the value is 1).");
	{
		const char *l[] = { "version", EMBERD_VERSION, NULL };

		metrics_sample(b, "ember_build_info", 1, l);
	}

	/* Functions deleted since the last scrape lose their series. */
	if (alive.ids && nf) {
		qsort(alive.ids, alive.n, sizeof(*alive.ids), id_cmp);
		metrics_prune(meter_metrics(a->meter), fn_alive, &alive);
	}
	free(alive.ids);
	db_function_free_array(fns, nf);
	free(ts);
}

void meter_api_metrics(void *ctx, struct http_req *r)
{
	struct api *a = ctx;
	struct mbuf b = { 0 };

	if (!metering_on(ctx, r))
		return;

	metrics_render(meter_metrics(a->meter), &b);
	render_platform(a, &b);
	metrics_render_process(&b);
	if (b.oom) {
		mbuf_free(&b);
		return http_reply_error(r, 500, "internal_error",
					"out of memory");
	}
	http_reply_bytes(r, 200, b.p, b.len,
			 "text/plain; version=0.0.4; charset=utf-8");
}
