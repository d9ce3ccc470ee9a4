/*
 * meter_api.h - the metering routes of emberd's API (agent/openapi.yaml):
 *
 *   GET /v1/usage                      usage totals (tenant: its own;
 *                                      admin: everyone's, per tenant too)
 *   GET /v1/invocations                the ledger's rows, paged
 *   GET /v1/functions/{name}/logs      a function's invocation logs
 *   GET /metrics                       Prometheus text (admin)
 *
 * and the glue between the scheduler and the meter: the finished() hook
 * that turns a struct sched_record into a ledger row before its answer
 * is handed over.
 *
 * Owns: the query parameters (times, grouping, cursors) and their errors,
 * the JSON and CSV shapes (CSV when the request says Accept: text/csv),
 * and who sees what: a tenant's queries are always restricted to its own
 * tenant id, whatever it asks for.
 *
 * Threads: the handlers run on the HTTP threads (ctx: struct api *); the
 * hook on the scheduler's event thread.
 */
#ifndef EMBER_AGENT_METER_API_H
#define EMBER_AGENT_METER_API_H

#include <stdint.h>

#include "agent/meter.h"
#include "agent/sched.h"
#include "agent/server.h"

void meter_api_usage(void *ctx, struct http_req *r);
void meter_api_invocations(void *ctx, struct http_req *r);
void meter_api_logs(void *ctx, struct http_req *r);
void meter_api_metrics(void *ctx, struct http_req *r);

/* struct sched_hooks.finished, with ctx the struct meter *. */
void meter_api_finished(void *ctx, const struct sched_record *rec);

/* The scheduler's outcome as the ledger's. */
enum ledger_outcome meter_api_outcome(enum sched_outcome o);

#endif
