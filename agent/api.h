/*
 * api.h - the routes of emberd's HTTP API (agent/openapi.yaml, contract
 * section 3) and their handlers.
 *
 * Owns: what each route does: tenants and tokens (admin), functions,
 * deploys and invocations (tenants), health and the system view. Every
 * object a tenant reaches is looked up by (tenant, name) or (tenant, id),
 * so another tenant's object is simply not found (404, never 403).
 *
 * Does not: parse HTTP (server.c), store anything (db.c), run VMs
 * (sched.c) or build versions (functions.c).
 *
 * Threads: handlers run on the HTTP threads; invocation answers are built
 * on the scheduler's event thread.
 */
#ifndef EMBER_AGENT_API_H
#define EMBER_AGENT_API_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "agent/auth.h"
#include "agent/db.h"
#include "agent/functions.h"
#include "agent/meter.h"
#include "agent/sched.h"
#include "agent/server.h"

#define EMBERD_VERSION "0.5.0"

struct api {
	struct db *db;
	struct sched *sched;
	struct fns *fns;
	struct meter *meter;  /* NULL: metering off (emberd --no-meter) */
	atomic_bool draining; /* SIGTERM: health says so, invokes get 503 */
};

/* The route table (static; handlers take a struct api * as ctx). */
const struct http_route *api_routes(size_t *n);

/* At start: every tenant's own limits (from the database) to the
 * scheduler. 0 or -errno. */
int api_load_limits(struct api *a);

#endif
