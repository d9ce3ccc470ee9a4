/*
 * meter.c - pay-per-use metering: see meter.h.
 */
#define LOG_MOD "meter"

#include "agent/meter.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/elog.h"
#include "log.h"

#define DEFAULT_LOG_INVOCATION (64 * 1024)
#define DEFAULT_LOGS_PER_FUNCTION (16ull << 20)
#define DEFAULT_RETENTION_S (7u * 24 * 3600)
#define NS_PER_MS 1000000ull

struct meter {
	struct meter_config cfg;
	struct ledger *ledger;
	struct metrics *metrics;
	uint64_t id_seed;
	_Atomic uint64_t id_count;
	_Atomic uint64_t invalid;
};

uint32_t meter_billed_ms(enum ledger_outcome o, uint64_t duration_ns,
			 uint64_t init_ns, uint32_t timeout_ms, bool bill_init)
{
	uint64_t ns, ms;

	switch (o) {
	case LEDGER_OK:
	case LEDGER_ERROR:
	case LEDGER_CRASH:
		ns = duration_ns;
		break;
	case LEDGER_TIMEOUT:
		/* The full timeout, not the time it took to notice. */
		ns = timeout_ms ? (uint64_t)timeout_ms * NS_PER_MS : duration_ns;
		break;
	default:
		return 0; /* throttled, rejected: the code never ran */
	}
	if (bill_init)
		ns += init_ns;
	ms = (ns + NS_PER_MS - 1) / NS_PER_MS;
	if (ms == 0)
		ms = 1; /* what ran is billed at least 1 ms */
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

struct meter *meter_create(const struct meter_config *cfg, size_t *replayed,
			   char *err, size_t errlen)
{
	struct meter *m = calloc(1, sizeof(*m));
	struct ledger_config lc;

	if (!m) {
		errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	m->cfg = *cfg;
	if (!m->cfg.log_invocation_bytes)
		m->cfg.log_invocation_bytes = DEFAULT_LOG_INVOCATION;
	if (!m->cfg.logs_per_function)
		m->cfg.logs_per_function = DEFAULT_LOGS_PER_FUNCTION;
	if (!m->cfg.logs_retention_s)
		m->cfg.logs_retention_s = DEFAULT_RETENTION_S;
	m->cfg.db_path = m->cfg.journal_path = NULL; /* not kept */
	if (util_random(&m->id_seed, sizeof(m->id_seed))) {
		errbuf_fail(err, errlen, -EIO, "getrandom failed");
		goto err_free;
	}
	m->metrics = metrics_create(cfg->metrics_max_series);
	if (!m->metrics) {
		errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		goto err_free;
	}
	lc = (struct ledger_config){
		.db_path = cfg->db_path,
		.journal_path = cfg->journal_path,
		.batch_ms = cfg->batch_ms,
		.logs_per_function = m->cfg.logs_per_function,
		.logs_retention_s = m->cfg.logs_retention_s,
	};
	m->ledger = ledger_open(&lc, replayed, err, errlen);
	if (!m->ledger)
		goto err_metrics;
	return m;

err_metrics:
	metrics_destroy(m->metrics);
err_free:
	free(m);
	return NULL;
}

void meter_destroy(struct meter *m)
{
	if (!m)
		return;
	ledger_close(m->ledger);
	metrics_destroy(m->metrics);
	free(m);
}

struct ledger *meter_ledger(struct meter *m)
{
	return m ? m->ledger : NULL;
}

struct metrics *meter_metrics(struct meter *m)
{
	return m ? m->metrics : NULL;
}

const struct meter_config *meter_config(const struct meter *m)
{
	return &m->cfg;
}

/* Per-invocation events: timeouts, crashes, throttles and cold starts,
 * with the request id, at most 20 a second of each kind (the metrics
 * count them all). */
static void invocation_event(const struct meter_inv *inv,
			     const struct ledger_rec *r)
{
	static struct log_ratelimit rl[LEDGER_NR_OUTCOMES], rl_cold;
	struct elog_who who = { r->request_id, r->tenant, r->function };

	switch (inv->outcome) {
	case LEDGER_TIMEOUT:
		if (log_ratelimit_ok(&rl[LEDGER_TIMEOUT], 20))
			elog_event("meter", "timeout", &who,
				   "v%u ran past its timeout of %u ms "
				   "(stopped after %llu us)", r->version,
				   inv->timeout_ms,
				   (unsigned long long)(r->duration_ns / 1000));
		return;
	case LEDGER_CRASH:
		if (log_ratelimit_ok(&rl[LEDGER_CRASH], 20))
			elog_event("meter", "crash", &who,
				   "v%u: the handler or its VM died %llu us "
				   "into the invocation", r->version,
				   (unsigned long long)(r->duration_ns / 1000));
		return;
	case LEDGER_THROTTLED:
		if (log_ratelimit_ok(&rl[LEDGER_THROTTLED], 20))
			elog_event("meter", "throttle", &who,
				   "refused after waiting %llu us",
				   (unsigned long long)(r->queued_ns / 1000));
		return;
	default:
		break;
	}
	if (r->cold && log_ratelimit_ok(&rl_cold, 20))
		elog_event("meter", "cold_start", &who,
			   "v%u restored in %llu us", r->version,
			   (unsigned long long)(r->init_ns / 1000));
}

static bool name_ok(const char *s)
{
	return s && util_name_valid(s, strlen(s));
}

void meter_finished(struct meter *m, const struct meter_inv *inv)
{
	struct ledger_rec r;
	size_t len;

	if (!inv->request_id || inv->tenant_id <= 0 || inv->fn_id <= 0 ||
	    !name_ok(inv->tenant) || !name_ok(inv->function) ||
	    (unsigned)inv->outcome >= LEDGER_NR_OUTCOMES) {
		atomic_fetch_add(&m->invalid, 1);
		log_warn_rl("invocation %016llx: incomplete record (tenant %lld, "
			    "function %lld); not metered",
			    (unsigned long long)inv->request_id,
			    (long long)inv->tenant_id, (long long)inv->fn_id);
		return;
	}
	memset(&r, 0, sizeof(r));
	r.request_id = inv->request_id;
	r.tenant_id = inv->tenant_id;
	r.fn_id = inv->fn_id;
	r.start_us = (int64_t)inv->start.tv_sec * 1000000 +
		     inv->start.tv_nsec / 1000;
	r.duration_ns = inv->duration_ns;
	r.init_ns = inv->cold ? inv->init_ns : 0;
	r.queued_ns = inv->queued_ns;
	r.bytes_in = inv->bytes_in;
	r.bytes_out = inv->bytes_out;
	r.version = inv->version;
	r.memory_mib = inv->memory_mib;
	r.outcome = (uint8_t)inv->outcome;
	r.cold = inv->cold && ledger_outcome_ran(inv->outcome);
	r.billed_ms = meter_billed_ms(inv->outcome, inv->duration_ns,
				      r.init_ns, inv->timeout_ms,
				      m->cfg.bill_init);
	util_copy(r.tenant, sizeof(r.tenant), inv->tenant);
	util_copy(r.function, sizeof(r.function), inv->function);

	/* Durable first: the caller hands the answer over after this. */
	ledger_add(m->ledger, &r);
	metrics_observe(m->metrics, &r);
	invocation_event(inv, &r);
	len = inv->logs_len;
	if (inv->logs && len) {
		bool cut = len > m->cfg.log_invocation_bytes;

		if (cut)
			len = m->cfg.log_invocation_bytes;
		ledger_add_log(m->ledger, &r, inv->logs, len,
			       cut || inv->logs_truncated);
	}
}

uint64_t meter_refused(struct meter *m, const struct meter_inv *inv)
{
	struct meter_inv copy = *inv;
	uint64_t z;

	/* splitmix64 over a random seed, as the scheduler makes its ids: no
	 * repeats within a run, nothing learnt about others' traffic. */
	do {
		z = m->id_seed + (atomic_fetch_add(&m->id_count, 1) + 1) *
					 0x9e3779b97f4a7c15ull;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
	} while (!z);
	copy.request_id = z;
	copy.duration_ns = 0;
	copy.cold = false;
	meter_finished(m, &copy);
	return z;
}

void meter_format_time(int64_t us, char out[32])
{
	time_t s = (time_t)(us / 1000000);
	struct tm tm;
	size_t n;

	gmtime_r(&s, &tm);
	n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%06dZ", (int)(us % 1000000));
}

/* n digits at s into *v; false unless all are digits. */
static bool digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

int meter_parse_time(const char *s, int64_t now_us, int64_t *us)
{
	struct tm tm = { 0 };
	int y, mo, d, h = 0, mi = 0, sec = 0;
	int64_t frac = 0, scale = 100000;
	const char *p;
	time_t t;

	if (!s || !*s)
		return -EINVAL;
	if (!strcmp(s, "now")) {
		*us = now_us;
		return 0;
	}
	if (s[0] == '-') {
		char *end;
		unsigned long long n;
		int64_t unit;

		if (s[1] < '0' || s[1] > '9')
			return -EINVAL;
		errno = 0;
		n = strtoull(s + 1, &end, 10);
		if (errno || end[0] == '\0' || end[1] != '\0')
			return -EINVAL;
		switch (end[0]) {
		case 's': unit = 1000000LL; break;
		case 'm': unit = 60 * 1000000LL; break;
		case 'h': unit = 3600 * 1000000LL; break;
		case 'd': unit = 86400 * 1000000LL; break;
		default: return -EINVAL;
		}
		if (n > (unsigned long long)(now_us / unit))
			return -EINVAL; /* before the epoch */
		*us = now_us - (int64_t)n * unit;
		return 0;
	}
	if (strlen(s) < 10 || !digits(s, 4, &y) || s[4] != '-' ||
	    !digits(s + 5, 2, &mo) || s[7] != '-' || !digits(s + 8, 2, &d))
		return -EINVAL;
	p = s + 10;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		if (!digits(p + 1, 2, &h) || p[3] != ':' ||
		    !digits(p + 4, 2, &mi))
			return -EINVAL;
		p += 6;
		if (*p == ':') {
			if (!digits(p + 1, 2, &sec))
				return -EINVAL;
			p += 3;
			if (*p == '.') {
				p++;
				if (*p < '0' || *p > '9')
					return -EINVAL;
				for (; *p >= '0' && *p <= '9'; p++) {
					frac += (*p - '0') * scale;
					scale /= 10;
				}
			}
		}
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	if (*p || y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 ||
	    d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	/* timegm normalizes Feb 30 into March: refuse what moved. */
	if (t == (time_t)-1 || tm.tm_mday != d || tm.tm_mon != mo - 1)
		return -EINVAL;
	*us = (int64_t)t * 1000000 + frac;
	return 0;
}
