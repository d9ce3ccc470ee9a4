/*
 * cli.c - `ember`, the command line of Ember's host agent: tenants,
 * tokens, deploys, invocations, on the client library (agent/client.h).
 *
 * Only this file prints and exits. Human output goes to stdout (tables,
 * results), progress and errors to stderr; with --json stdout carries the
 * server's JSON instead. Every figure printed is measured by Ember: the
 * server's X-Ember-* headers and deploy details, or this process's clock.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/client.h"

#define EMBER_CLI_VERSION "0.5.0"
#define MAX_PAYLOAD (6u << 20)           /* the API's invoke limit */
#define MAX_ARCHIVE (1ull << 30)         /* read no more than this */

/* Exit statuses (documented in --help). */
enum {
	EX_OK = 0,
	EX_FUNCTION = 1,    /* the function reported an error; a deploy failed */
	EX_REFUSED = 2,     /* the server refused the request (4xx) */
	EX_FAILED = 3,      /* the server or the function failed (5xx) */
	EX_AUTH = 4,        /* no valid token, or not allowed (401, 403) */
	EX_USAGE = 64,
	EX_NOINPUT = 66,    /* an input file or directory cannot be read */
	EX_UNAVAILABLE = 69,/* emberd cannot be reached */
	EX_SOFTWARE = 70,
	EX_PROTOCOL = 76,   /* emberd's answer was not what the API says */
};

static const char usage_main[] =
"NAME\n"
"    ember - deploy and invoke functions on Ember's host agent (emberd)\n"
"\n"
"SYNOPSIS\n"
"    ember [OPTIONS] COMMAND [ARGS]\n"
"    ember help [COMMAND]\n"
"\n"
"DESCRIPTION\n"
"    ember talks to emberd's HTTP API (agent/openapi.yaml) over its Unix\n"
"    socket or TCP. An admin token manages tenants and their tokens; a\n"
"    tenant token deploys, lists, invokes and removes that tenant's\n"
"    functions, and sees no other tenant's.\n"
"\n"
"COMMANDS\n"
"    tenant create NAME        create a tenant (admin)\n"
"    tenant ls                 list tenants (admin)\n"
"    tenant rm NAME            delete a tenant with its functions and tokens\n"
"    token create TENANT       issue a tenant token; prints it, once (admin)\n"
"    token ls TENANT           list a tenant's tokens (admin)\n"
"    token revoke TENANT ID    revoke a token (admin)\n"
"    deploy DIR|ARCHIVE        deploy a function from a directory or a tar\n"
"                              or tar.gz archive with an ember.json\n"
"    invoke NAME               invoke a function; its result on stdout\n"
"    ls                        list functions\n"
"    info NAME                 a function: manifest, version, instances\n"
"    versions NAME             a function's versions\n"
"    rm NAME                   delete a function and its versions\n"
"    health                    check that emberd answers\n"
"    usage                     usage and what it bills: invocations, errors,\n"
"                              GB-seconds (a tenant its own; admin all)\n"
"    logs NAME                 a function's invocation logs (--follow)\n"
"    `ember COMMAND --help` describes each.\n"
"\n"
"OPTIONS\n"
"    -e, --endpoint E     emberd's address: unix:/PATH (its Unix socket) or\n"
"                         http(s)://HOST:PORT\n"
"    -t, --token T        the bearer token (admin or tenant)\n"
"        --token-file F   read the token from the first line of F\n"
"    -c, --config F       read settings from F\n"
"    -j, --json           print the server's JSON answers instead of tables\n"
"    -v, --verbose        more detail (invoke: request id, cold or warm,\n"
"                         durations, on stderr)\n"
"    -h, --help           this text;  -V, --version  the version\n"
"\n"
"ENVIRONMENT\n"
"    EMBER_ENDPOINT, EMBER_TOKEN, EMBER_TOKEN_FILE, EMBER_CONFIG\n"
"    Settings come from the options, then the environment, then the\n"
"    config file, then the default endpoint " EMBER_CLIENT_DEFAULT_ENDPOINT ".\n"
"\n"
"FILES\n"
"    $EMBER_CONFIG, else $XDG_CONFIG_HOME/ember/config (default\n"
"    ~/.config/ember/config): \"key = value\" lines, '#' comments, keys\n"
"    endpoint, token, token_file. Keep it private (chmod 600) if it holds\n"
"    a token. emberd writes its admin token to STATE/admin.token.\n"
"\n"
"EXIT STATUS\n"
"    0   success\n"
"    1   the function reported an error (invoke), or the deploy failed\n"
"    2   emberd refused the request (400, 404, 409, 413, 429: bad name, no\n"
"        such function or tenant, already exists, too large, busy)\n"
"    3   emberd or the function failed (500, 502 crashed, 503, 504 timeout)\n"
"    4   authentication: no token, a wrong or revoked one (401), or a route\n"
"        this token may not use (403)\n"
"    64  usage error      66  an input file or directory cannot be read\n"
"    69  emberd cannot be reached\n"
"    70  internal error   76  emberd's answer broke the API\n"
"\n"
"EXAMPLES\n"
"    export EMBER_ENDPOINT=unix:/run/ember/emberd.sock\n"
"    ember --token-file /var/lib/ember/admin.token tenant create acme\n"
"    export EMBER_TOKEN=$(ember --token-file /var/lib/ember/admin.token \\\n"
"        token create acme)\n"
"    ember deploy sdk/examples/functions/hash\n"
"    echo -n hello | ember invoke hash\n"
"    ember -v invoke hash --data hello\n";

static const char usage_tenant[] =
"NAME\n"
"    ember tenant - manage tenants (admin token)\n"
"\n"
"SYNOPSIS\n"
"    ember tenant create NAME\n"
"    ember tenant ls\n"
"    ember tenant rm NAME\n"
"\n"
"DESCRIPTION\n"
"    A tenant owns functions and tokens; tenants never see each other's.\n"
"    Names: 1-63 of a-z, 0-9 and '-', not starting with '-'.\n"
"    create  makes the tenant (exit 2 if it exists: HTTP 409).\n"
"    ls      lists tenants: NAME, CREATED, FUNCTIONS.\n"
"    rm      deletes the tenant and, with it, its functions, their\n"
"            instances and versions, and its tokens. There is no undo.\n";

static const char usage_token[] =
"NAME\n"
"    ember token - manage a tenant's API tokens (admin token)\n"
"\n"
"SYNOPSIS\n"
"    ember token create TENANT\n"
"    ember token ls TENANT\n"
"    ember token revoke TENANT ID\n"
"\n"
"DESCRIPTION\n"
"    create  issues a token for TENANT and prints it on stdout, alone on\n"
"            its line, so that T=$(ember token create acme) works; its id\n"
"            goes to stderr. The token is shown this once: emberd keeps\n"
"            only its hash.\n"
"    ls      lists the tenant's tokens: ID, CREATED (never the tokens).\n"
"    revoke  revokes token ID: requests with it get 401 from then on.\n";

static const char usage_deploy[] =
"NAME\n"
"    ember deploy - deploy a function version\n"
"\n"
"SYNOPSIS\n"
"    ember deploy DIR|ARCHIVE [--name NAME] [--no-wait] [--timeout S]\n"
"\n"
"DESCRIPTION\n"
"    Sends a function to emberd, which validates it, builds its micro guest\n"
"    image, boots it to READY and snapshots it, then makes it the\n"
"    function's current version (the previous one serves until then; a\n"
"    failed deploy changes nothing). DIR is packed into a tar.gz in\n"
"    memory (symlinks kept as links; sockets, fifos and devices skipped);\n"
"    ARCHIVE (.tar, .tar.gz, .tgz) is sent as it is. Either must hold an\n"
"    ember.json manifest at its root (docs/functions.md).\n"
"\n"
"    Each step is printed on stderr as emberd completes it (receive,\n"
"    extract, manifest, image, boot, snapshot). A failure names its step\n"
"    and reason and prints the handler's own initialisation output.\n"
"\n"
"OPTIONS\n"
"    -n, --name NAME   the function's name (default: the directory's or the\n"
"                      archive's name without .tar, .tar.gz, .tgz)\n"
"        --no-wait     print the deploy's id and return once emberd has the\n"
"                      archive (HTTP 202)\n"
"        --timeout S   give up waiting after S seconds (default 600)\n"
"\n"
"EXIT STATUS\n"
"    0 deployed; 1 the deploy failed (its step and reason printed); 2-4,\n"
"    64-76 as for ember(1).\n";

static const char usage_invoke[] =
"NAME\n"
"    ember invoke - invoke a function\n"
"\n"
"SYNOPSIS\n"
"    ember [-v] invoke NAME [--data STRING | --data @FILE] [--repeat N]\n"
"\n"
"DESCRIPTION\n"
"    Sends the payload to the function (at most 6 MiB) and writes its\n"
"    result to stdout, byte for byte. Without --data the payload is read\n"
"    from stdin (empty if stdin is a terminal). With -v, stderr gets one\n"
"    line: the request id, cold or warm start, emberd's measured duration\n"
"    (INVOKE sent to RESULT), the billed milliseconds, the restore time of\n"
"    a cold start, and the round trip measured by this command.\n"
"\n"
"OPTIONS\n"
"    -d, --data STRING   the payload; @FILE reads it from FILE (@- stdin)\n"
"    -n, --repeat N      invoke N times on one connection; print the last\n"
"                        result, and on stderr the warm invocations' p50 and\n"
"                        p99 as emberd (X-Ember-Duration-Us) and this client\n"
"                        measured them (-v: a line per cold start; -vv: a\n"
"                        line per invocation)\n"
"\n"
"EXIT STATUS\n"
"    0 the function succeeded; 1 it reported an error (its description\n"
"    is still printed on stdout); 3 it crashed (502) or timed out (504);\n"
"    2 not deployed (409) or too large (413) or busy (429); 4 auth.\n";

static const char usage_ls[] =
"NAME\n"
"    ember ls - list the tenant's functions\n"
"\n"
"SYNOPSIS\n"
"    ember ls\n"
"\n"
"DESCRIPTION\n"
"    One line per function: NAME, VERSION (the one serving; \"-\" before\n"
"    the first deploy succeeds), RUNTIME, MEMORY_MIB, TIMEOUT_MS, UPDATED.\n"
"    --json prints emberd's answer.\n";

static const char usage_info[] =
"NAME\n"
"    ember info - show a function\n"
"\n"
"SYNOPSIS\n"
"    ember info NAME\n"
"\n"
"DESCRIPTION\n"
"    Prints what emberd knows of the function: its current version, its\n"
"    manifest (runtime, handler, memory, timeout, concurrency,\n"
"    environment) and its instances, one \"key: value\" per line.\n";

static const char usage_versions[] =
"NAME\n"
"    ember versions - list a function's versions\n"
"\n"
"SYNOPSIS\n"
"    ember versions NAME\n"
"\n"
"DESCRIPTION\n"
"    One line per version: VERSION, CREATED, CURRENT (\"yes\" for the one\n"
"    serving), RUNTIME, HANDLER.\n";

static const char usage_rm[] =
"NAME\n"
"    ember rm - delete a function\n"
"\n"
"SYNOPSIS\n"
"    ember rm NAME\n"
"\n"
"DESCRIPTION\n"
"    Stops the function's instances and deletes it with all its versions.\n"
"    There is no undo.\n";

static const char usage_usage[] =
"NAME\n"
"    ember usage - what functions used and what it bills\n"
"\n"
"SYNOPSIS\n"
"    ember usage [--from T] [--to T] [--function NAME] [--tenant NAME]\n"
"                [--by function|day|hour|function,day|function,hour] [--csv]\n"
"\n"
"DESCRIPTION\n"
"    Sums over emberd's ledger (one row per invocation request): REQUESTS,\n"
"    ERRORS (function errors, timeouts, crashes), THROTTLED, COLD starts,\n"
"    BILLED_MS (each invocation's duration rounded up to 1 ms; a timeout\n"
"    bills its full timeout; throttled and refused requests nothing) and\n"
"    GB_S (memory in GiB times billed seconds), then a TOTAL line. A\n"
"    tenant token sees its own functions; the admin token every tenant's,\n"
"    and a summary per tenant. docs/metering.md has the rules.\n"
"\n"
"OPTIONS\n"
"    --from T, --to T   the range [from, to): 2026-12-01,\n"
"                       2026-12-01T10:00:00Z (UTC), now, or before now:\n"
"                       -90m, -24h, -7d (default: this month until now)\n"
"    --function NAME    one function\n"
"    --tenant NAME      one tenant (admin)\n"
"    --by KEYS          rows per function (default), day, hour, or per\n"
"                       function and day or hour\n"
"    --csv              the rows as CSV, for a spreadsheet (every column)\n"
"\n"
"EXAMPLES\n"
"    ember usage --from -7d --by day\n"
"    ember usage --from 2026-11-01 --to 2026-12-01 --csv > november.csv\n";

static const char usage_logs[] =
"NAME\n"
"    ember logs - a function's invocation logs\n"
"\n"
"SYNOPSIS\n"
"    ember logs NAME [--request-id ID | --since T | --tail N] [--follow]\n"
"\n"
"DESCRIPTION\n"
"    Prints what the function's handler wrote (stdout and stderr) during\n"
"    its invocations, one line per line of output, each prefixed with the\n"
"    invocation's start time and request id (X-Ember-Request-Id). Output\n"
"    over the per-invocation bound ends with \"[truncated]\". By default\n"
"    the last 100 invocations' logs.\n"
"\n"
"OPTIONS\n"
"    -r, --request-id ID  one invocation's log\n"
"        --since T        invocations since T (-10m, 2026-12-01T10:00Z)\n"
"    -n, --tail N         the last N invocations' logs (1..1000)\n"
"    -f, --follow         then wait for new ones, every second, until\n"
"                         interrupted\n";

static const char usage_health[] =
"NAME\n"
"    ember health - check that emberd answers\n"
"\n"
"SYNOPSIS\n"
"    ember health\n"
"\n"
"DESCRIPTION\n"
"    GET /v1/health (needs no token); prints emberd's status and version.\n";

struct cli {
	const char *endpoint, *token, *token_file, *config;
	bool json;
	int verbose;
	char *token_buf;             /* a token read from a file */
	struct ember_client *c;
};

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("ember: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(see ember --help)\n", stderr);
	exit(EX_USAGE);
}

static int errorf(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int errorf(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("ember: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

/* A failed call: the server's code and message, and the exit status. */
static int api_error(struct cli *cli, const char *what, int ret)
{
	const struct ember_client_error *e = ember_client_error(cli->c);
	int status;

	switch (ret) {
	case -EPROTO:
		if (e->http_status == 401 || e->http_status == 403)
			status = EX_AUTH;
		else if (e->http_status >= 400 && e->http_status < 500)
			status = EX_REFUSED;
		else
			status = EX_FAILED;
		return errorf(status, "%s: %s (%s, HTTP %ld)", what, e->message,
			      e->code, e->http_status);
	case -ECONNREFUSED:
	case -ETIMEDOUT:
	case -EIO:
		return errorf(EX_UNAVAILABLE, "%s: %s", what, e->message);
	case -EBADMSG:
		return errorf(EX_PROTOCOL, "%s: %s", what, e->message);
	default:
		return errorf(EX_SOFTWARE, "%s: %s", what,
			      e->message[0] ? e->message : strerror(-ret));
	}
}

/* ---- settings: options, environment, config file ---- */

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
			 e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static char *read_token_file(const char *path)
{
	char line[512], *t;
	FILE *f = fopen(path, "re");

	if (!f) {
		errorf(0, "token file %s: %s", path, strerror(errno));
		exit(EX_NOINPUT);
	}
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	t = trim(line);
	if (!*t) {
		errorf(0, "token file %s is empty", path);
		exit(EX_NOINPUT);
	}
	t = strdup(t);
	memset(line, 0, sizeof(line));
	if (!t)
		exit(errorf(EX_SOFTWARE, "out of memory"));
	return t;
}

/* Reads the config file into *endpoint, *token, *token_file where they are
 * still unset. A missing default file is fine; a named one must exist. */
static void load_config(struct cli *cli, const char **endpoint,
			const char **token, const char **token_file)
{
	static char ep[512], tok[512], tf[512];
	char path[1024], line[1024];
	const char *named = cli->config ? cli->config : getenv("EMBER_CONFIG");
	FILE *f;
	int n = 0;

	if (named) {
		snprintf(path, sizeof(path), "%s", named);
	} else if (getenv("XDG_CONFIG_HOME") && getenv("XDG_CONFIG_HOME")[0]) {
		snprintf(path, sizeof(path), "%s/ember/config",
			 getenv("XDG_CONFIG_HOME"));
	} else if (getenv("HOME")) {
		snprintf(path, sizeof(path), "%s/.config/ember/config",
			 getenv("HOME"));
	} else {
		return;
	}
	f = fopen(path, "re");
	if (!f) {
		if (named || errno != ENOENT)
			exit(errorf(EX_NOINPUT, "config %s: %s", path,
				    strerror(errno)));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		char *l = trim(line), *eq, *key, *val;

		n++;
		if (!*l || *l == '#')
			continue;
		eq = strchr(l, '=');
		if (!eq)
			exit(errorf(EX_USAGE, "%s:%d: expected key = value", path, n));
		*eq = '\0';
		key = trim(l);
		val = trim(eq + 1);
		if (!strcmp(key, "endpoint")) {
			snprintf(ep, sizeof(ep), "%s", val);
			if (!*endpoint)
				*endpoint = ep;
		} else if (!strcmp(key, "token")) {
			snprintf(tok, sizeof(tok), "%s", val);
			if (!*token && !*token_file)
				*token = tok;
		} else if (!strcmp(key, "token_file") || !strcmp(key, "token-file")) {
			snprintf(tf, sizeof(tf), "%s", val);
			if (!*token && !*token_file)
				*token_file = tf;
		} else {
			exit(errorf(EX_USAGE, "%s:%d: unknown key \"%s\" (endpoint, "
				    "token, token_file)", path, n, key));
		}
	}
	fclose(f);
}

static void connect_client(struct cli *cli)
{
	const char *endpoint = cli->endpoint, *token = cli->token;
	const char *token_file = cli->token_file;
	char err[256];

	if (token && token_file)
		die_usage("--token and --token-file: give one");
	if (!endpoint)
		endpoint = getenv("EMBER_ENDPOINT");
	if (!token && !token_file) {
		token = getenv("EMBER_TOKEN");
		if (token && !*token)
			token = NULL;
		if (!token)
			token_file = getenv("EMBER_TOKEN_FILE");
	}
	load_config(cli, &endpoint, &token, &token_file);
	if (!token && token_file)
		token = cli->token_buf = read_token_file(token_file);
	cli->c = ember_client_new(endpoint, token, err, sizeof(err));
	if (!cli->c)
		exit(errorf(EX_USAGE, "%s", err));
}

/* An option's value: a whole number in 1..max. */
static unsigned long number_arg(const char *s, unsigned long max,
				const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || !v || v > max || s[0] == '-')
		die_usage("%s takes a number in 1..%lu, not \"%s\"", what, max, s);
	return v;
}

/* ---- output helpers ---- */

static void print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s) {
		puts(s);
		free(s);
	}
}

/* A JSON value as a short string for a table cell (buf[cap]). */
static const char *cell(const json_t *v, char *buf, size_t cap)
{
	char *s;

	if (!v || json_is_null(v))
		return "-";
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
		return buf;
	}
	if (json_is_true(v))
		return "yes";
	if (json_is_false(v))
		return "no";
	s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	snprintf(buf, cap, "%s", s ? s : "?");
	free(s);
	return buf;
}

#define TABLE_COLS 8
struct table {
	const char *head[TABLE_COLS];
	size_t ncols, nrows, width[TABLE_COLS];
	char *(*rows)[TABLE_COLS];
};

static void table_row(struct table *t, const char *const *v)
{
	char *(*rows)[TABLE_COLS] = realloc(t->rows, (t->nrows + 1) *
							     sizeof(*t->rows));

	if (!rows)
		exit(errorf(EX_SOFTWARE, "out of memory"));
	t->rows = rows;
	for (size_t i = 0; i < t->ncols; i++) {
		t->rows[t->nrows][i] = strdup(v[i]);
		if (!t->rows[t->nrows][i])
			exit(errorf(EX_SOFTWARE, "out of memory"));
	}
	t->nrows++;
}

static void table_print(struct table *t)
{
	for (size_t c = 0; c < t->ncols; c++) {
		t->width[c] = strlen(t->head[c]);
		for (size_t r = 0; r < t->nrows; r++)
			if (strlen(t->rows[r][c]) > t->width[c])
				t->width[c] = strlen(t->rows[r][c]);
	}
	for (size_t r = 0; r <= t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *v = r ? t->rows[r - 1][c] : t->head[c];

			if (c + 1 < t->ncols)
				printf("%-*s  ", (int)t->width[c], v);
			else
				printf("%s\n", v);
		}
	}
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++)
			free(t->rows[r][c]);
	free(t->rows);
	t->rows = NULL;
	t->nrows = 0;
}

/* A listing's column: its heading and the key of each row's object that
 * fills it ("a.b" looks into a nested object). */
struct column {
	const char *head, *key;
};

static json_t *lookup(json_t *o, const char *path)
{
	char key[64];
	const char *dot;

	while ((dot = strchr(path, '.'))) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		o = json_object_get(o, key);
		path = dot + 1;
	}
	return json_object_get(o, path);
}

/* The answer of a list route (`ret` and `j` from the call): the rows of
 * the array `array` as a table, or the JSON with --json. */
static int print_list(struct cli *cli, const char *what, int ret, json_t *j,
		      const char *array, const struct column *cols,
		      size_t ncols)
{
	struct table t = { .ncols = ncols };
	char b[TABLE_COLS][256];
	const char *row[TABLE_COLS];
	json_t *v;
	size_t i;

	if (ret)
		return api_error(cli, what, ret);
	if (cli->json) {
		print_json(j);
		json_decref(j);
		return EX_OK;
	}
	for (size_t c = 0; c < ncols; c++)
		t.head[c] = cols[c].head;
	json_array_foreach(json_object_get(j, array), i, v) {
		for (size_t c = 0; c < ncols; c++)
			row[c] = cell(lookup(v, cols[c].key), b[c], sizeof(b[c]));
		table_row(&t, row);
	}
	table_print(&t);
	json_decref(j);
	return EX_OK;
}

/* ---- commands ---- */

/* Parses the options of a command that takes none but --help and exactly
 * `nargs` arguments; returns argv + optind. */
static char **plain_args(int argc, char **argv, int nargs, const char *usage)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	optind = 0; /* 0: glibc rescans from scratch (and permutes) */
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'h') {
			fputs(usage, stdout);
			exit(EX_OK);
		}
		fputs(usage, stderr);
		exit(EX_USAGE);
	}
	if (argc - optind != nargs) {
		fputs(usage, stderr);
		die_usage("%s: expected %d argument%s, got %d", argv[0], nargs,
			  nargs == 1 ? "" : "s", argc - optind);
	}
	return argv + optind;
}

static int cmd_health(struct cli *cli, int argc, char **argv)
{
	json_t *j;
	int ret;

	plain_args(argc, argv, 0, usage_health);
	connect_client(cli);
	ret = ember_client_health(cli->c, &j);
	if (ret)
		return api_error(cli, "health", ret);
	if (cli->json)
		print_json(j);
	else
		printf("emberd at %s: %s, version %s\n",
		       ember_client_endpoint(cli->c),
		       json_string_value(json_object_get(j, "status")) ?: "?",
		       json_string_value(json_object_get(j, "version")) ?: "?");
	json_decref(j);
	return EX_OK;
}

static int cmd_tenant(struct cli *cli, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;
	char what[128];
	json_t *j = NULL;
	int ret;

	if (!sub || !strcmp(sub, "--help") || !strcmp(sub, "-h") ||
	    !strcmp(sub, "help")) {
		fputs(usage_tenant, sub ? stdout : stderr);
		return sub ? EX_OK : EX_USAGE;
	}
	if (!strcmp(sub, "create") || !strcmp(sub, "rm")) {
		char **a = plain_args(argc - 1, argv + 1, 1, usage_tenant);

		connect_client(cli);
		snprintf(what, sizeof(what), "tenant %s %.63s", sub, a[0]);
		if (!strcmp(sub, "create"))
			ret = ember_client_tenant_create(cli->c, a[0], &j);
		else
			ret = ember_client_tenant_delete(cli->c, a[0]);
		if (ret)
			return api_error(cli, what, ret);
		if (cli->json && j)
			print_json(j);
		else if (!strcmp(sub, "create"))
			printf("tenant %s created\n", a[0]);
		else
			printf("tenant %s deleted, with its functions and tokens\n",
			       a[0]);
		json_decref(j);
		return EX_OK;
	}
	if (!strcmp(sub, "ls")) {
		static const struct column cols[] = {
			{ "NAME", "name" }, { "CREATED", "created" },
			{ "FUNCTIONS", "functions" },
		};

		plain_args(argc - 1, argv + 1, 0, usage_tenant);
		connect_client(cli);
		ret = ember_client_tenant_list(cli->c, &j);
		return print_list(cli, "tenant ls", ret, j, "tenants", cols, 3);
	}
	fputs(usage_tenant, stderr);
	die_usage("tenant: unknown command \"%s\" (create, ls, rm)", sub);
}

static int cmd_token(struct cli *cli, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;
	char what[160], b[2][64];
	json_t *j = NULL;
	int ret;

	if (!sub || !strcmp(sub, "--help") || !strcmp(sub, "-h") ||
	    !strcmp(sub, "help")) {
		fputs(usage_token, sub ? stdout : stderr);
		return sub ? EX_OK : EX_USAGE;
	}
	if (!strcmp(sub, "create")) {
		char **a = plain_args(argc - 1, argv + 1, 1, usage_token);
		const char *tok, *id;

		connect_client(cli);
		snprintf(what, sizeof(what), "token create %.63s", a[0]);
		ret = ember_client_token_create(cli->c, a[0], &j);
		if (ret)
			return api_error(cli, what, ret);
		if (cli->json) {
			print_json(j);
			json_decref(j);
			return EX_OK;
		}
		tok = json_string_value(json_object_get(j, "token"));
		id = cell(json_object_get(j, "id"), b[0], sizeof(b[0]));
		if (!tok) {
			json_decref(j);
			return errorf(EX_PROTOCOL, "%s: the answer has no token", what);
		}
		printf("%s\n", tok);
		fprintf(stderr, "ember: token %s for tenant %s: shown once, keep it "
			"now\n", id, a[0]);
		json_decref(j);
		return EX_OK;
	}
	if (!strcmp(sub, "ls")) {
		static const struct column cols[] = {
			{ "ID", "id" }, { "CREATED", "created" },
		};
		char **a = plain_args(argc - 1, argv + 1, 1, usage_token);

		connect_client(cli);
		snprintf(what, sizeof(what), "token ls %.63s", a[0]);
		ret = ember_client_token_list(cli->c, a[0], &j);
		return print_list(cli, what, ret, j, "tokens", cols, 2);
	}
	if (!strcmp(sub, "revoke")) {
		char **a = plain_args(argc - 1, argv + 1, 2, usage_token);

		connect_client(cli);
		snprintf(what, sizeof(what), "token revoke %.63s %.63s", a[0], a[1]);
		ret = ember_client_token_revoke(cli->c, a[0], a[1]);
		if (ret)
			return api_error(cli, what, ret);
		printf("token %s of tenant %s revoked\n", a[1], a[0]);
		return EX_OK;
	}
	fputs(usage_token, stderr);
	die_usage("token: unknown command \"%s\" (create, ls, revoke)", sub);
}

/* ---- deploy ---- */

struct membuf {
	unsigned char *p;
	size_t len, cap;
};

static la_ssize_t mem_write(struct archive *a, void *opaque, const void *buf,
			    size_t n)
{
	struct membuf *m = opaque;

	if (m->len + n > m->cap) {
		size_t cap = (m->len + n) * 2 + (64 << 10);
		unsigned char *p = realloc(m->p, cap);

		if (!p) {
			archive_set_error(a, ENOMEM, "out of memory");
			return -1;
		}
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->len, buf, n);
	m->len += n;
	return (la_ssize_t)n;
}

/* Packs the directory `dir` into a tar.gz in memory: paths relative to
 * it, owners dropped, symlinks as links, hard links as copies. */
static int pack_dir(const char *dir, struct membuf *out, unsigned *nfiles)
{
	struct archive *disk = archive_read_disk_new();
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	size_t dl = strlen(dir);
	int r, ret = EX_OK;
	char buf[64 << 10];

	*nfiles = 0;
	if (!disk || !a || !e)
		exit(errorf(EX_SOFTWARE, "out of memory"));
	archive_read_disk_set_symlink_physical(disk);
	archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_XATTR |
						     ARCHIVE_READDISK_NO_ACL |
						     ARCHIVE_READDISK_NO_FFLAGS);
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
	    archive_write_open(a, out, NULL, mem_write, NULL) != ARCHIVE_OK) {
		ret = errorf(EX_SOFTWARE, "packing %s: %s", dir,
			     archive_error_string(a));
		goto out;
	}
	if (archive_read_disk_open(disk, dir) != ARCHIVE_OK) {
		ret = errorf(EX_NOINPUT, "%s: %s", dir, archive_error_string(disk));
		goto out;
	}
	for (;;) {
		const char *path, *rel;
		mode_t type;

		archive_entry_clear(e);
		r = archive_read_next_header2(disk, e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			ret = errorf(EX_NOINPUT, "%s: %s", dir,
				     archive_error_string(disk));
			goto out;
		}
		type = archive_entry_filetype(e);
		if (type == AE_IFDIR)
			archive_read_disk_descend(disk);
		path = archive_entry_pathname(e);
		if (!path || strncmp(path, dir, dl) || (path[dl] && path[dl] != '/'))
			continue; /* not below dir: never happens */
		rel = path + dl;
		while (*rel == '/')
			rel++;
		if (!*rel)
			continue; /* the directory itself */
		if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
			fprintf(stderr, "ember: deploy: skipping %s (not a file, "
				"directory or symlink)\n", path);
			continue;
		}
		{
			char *copy = strdup(rel);

			if (!copy)
				exit(errorf(EX_SOFTWARE, "out of memory"));
			archive_entry_set_pathname(e, copy);
			free(copy);
		}
		archive_entry_set_uid(e, 0);
		archive_entry_set_gid(e, 0);
		archive_entry_set_uname(e, NULL);
		archive_entry_set_gname(e, NULL);
		archive_entry_set_nlink(e, 1);
		archive_entry_set_hardlink(e, NULL);
		if (archive_write_header(a, e) != ARCHIVE_OK) {
			ret = errorf(EX_SOFTWARE, "packing %s: %s", path,
				     archive_error_string(a));
			goto out;
		}
		(*nfiles)++;
		if (type != AE_IFREG)
			continue;
		for (;;) {
			la_ssize_t n = archive_read_data(disk, buf, sizeof(buf));

			if (n == 0)
				break;
			if (n < 0) {
				ret = errorf(EX_NOINPUT, "%s: %s", path,
					     archive_error_string(disk));
				goto out;
			}
			if (archive_write_data(a, buf, (size_t)n) != n) {
				ret = errorf(EX_SOFTWARE, "packing %s: %s", path,
					     archive_error_string(a));
				goto out;
			}
		}
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		ret = errorf(EX_SOFTWARE, "packing %s: %s", dir,
			     archive_error_string(a));
out:
	archive_entry_free(e);
	archive_read_free(disk);
	archive_write_free(a);
	return ret;
}

static int read_file(const char *path, struct membuf *out, size_t max)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
	ssize_t n;

	if (fd < 0)
		return errorf(EX_NOINPUT, "%s: %s", path, strerror(errno));
	for (;;) {
		if (out->len == out->cap) {
			size_t cap = out->cap ? out->cap * 2 : 64 << 10;
			unsigned char *p = realloc(out->p, cap + 1);

			if (!p)
				exit(errorf(EX_SOFTWARE, "out of memory"));
			out->p = p;
			out->cap = cap;
		}
		n = read(fd, out->p + out->len, out->cap - out->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			if (fd)
				close(fd);
			return errorf(EX_NOINPUT, "%s: %s", path, strerror(e));
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		if (out->len > max)
			break; /* the server refuses it; no need for more */
	}
	if (fd)
		close(fd);
	return EX_OK;
}

/* The default function name: the last path component, without a
 * .tar/.tar.gz/.tgz suffix for archives. */
static char *default_name(const char *path, bool is_dir)
{
	char *abs = realpath(path, NULL), *base, *name;
	static const char *const sfx[] = { ".tar.gz", ".tgz", ".tar" };

	if (!abs)
		return NULL;
	base = strrchr(abs, '/');
	base = base ? base + 1 : abs;
	name = strdup(base);
	free(abs);
	if (!name || is_dir)
		return name;
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		size_t n = strlen(name), s = strlen(sfx[i]);

		if (n > s && !strcmp(name + n - s, sfx[i])) {
			name[n - s] = '\0';
			break;
		}
	}
	return name;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void on_step(void *ctx, const json_t *step)
{
	(void)ctx;
	fprintf(stderr, "  %-9s %s\n",
		json_string_value(json_object_get(step, "step")) ?: "?",
		json_string_value(json_object_get(step, "detail")) ?: "");
}

static void print_output(const char *out)
{
	const char *p = out;

	fputs("handler output:\n", stderr);
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);

		fprintf(stderr, "  | %.*s\n", (int)n, p);
		p += n + (nl ? 1 : 0);
	}
}

static int cmd_deploy(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "no-wait", no_argument, NULL, 'W' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *path, *id, *state;
	bool wait = true, is_dir;
	unsigned timeout_s = 600, nfiles = 0;
	struct membuf ar = { 0 };
	char *auto_name = NULL, what[128];
	json_t *d = NULL, *fin = NULL;
	struct stat sb;
	uint64_t t0;
	int o, ret;

	optind = 0; /* 0: glibc rescans from scratch (and permutes) */
	while ((o = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (o) {
		case 'n': name = optarg; break;
		case 'W': wait = false; break;
		case 'T':
			timeout_s = (unsigned)number_arg(optarg, 86400,
							 "deploy --timeout");
			break;
		case 'h': fputs(usage_deploy, stdout); return EX_OK;
		default: fputs(usage_deploy, stderr); return EX_USAGE;
		}
	}
	if (argc - optind != 1) {
		fputs(usage_deploy, stderr);
		die_usage("deploy: expected one DIR or ARCHIVE");
	}
	path = argv[optind];
	if (stat(path, &sb))
		return errorf(EX_NOINPUT, "deploy: %s: %s", path, strerror(errno));
	is_dir = S_ISDIR(sb.st_mode);
	if (!name) {
		name = auto_name = default_name(path, is_dir);
		if (!name || !ember_client_name_ok(name))
			die_usage("deploy: \"%s\" is not a function name "
				  "(a-z, 0-9, '-'; 1-63): give --name",
				  name ? name : path);
	}
	if (!ember_client_name_ok(name))
		die_usage("deploy: \"%s\" is not a function name (a-z, 0-9, '-', "
			  "at most 63, not starting with '-')", name);
	ret = is_dir ? pack_dir(path, &ar, &nfiles) :
		       read_file(path, &ar, MAX_ARCHIVE);
	if (ret)
		goto out;
	connect_client(cli);
	snprintf(what, sizeof(what), "deploy %s", name);
	if (is_dir)
		fprintf(stderr, "deploying %s: %u entries of %s, %zu bytes as "
			"tar.gz\n", name, nfiles, path, ar.len);
	else
		fprintf(stderr, "deploying %s: %s, %zu bytes\n", name, path, ar.len);
	t0 = now_us();
	ret = ember_client_deploy(cli->c, name, ar.p, ar.len, &d);
	if (ret) {
		ret = api_error(cli, what, ret);
		goto out;
	}
	id = json_string_value(json_object_get(d, "id"));
	if (!wait) {
		if (cli->json)
			print_json(d);
		else
			printf("%s\n", id);
		ret = EX_OK;
		goto out;
	}
	ret = ember_client_deploy_wait(cli->c, id, 25, timeout_s * 1000u,
				       on_step, NULL, &fin);
	if (ret) {
		ret = api_error(cli, what, ret);
		goto out;
	}
	state = json_string_value(json_object_get(fin, "state"));
	if (cli->json)
		print_json(fin);
	if (state && !strcmp(state, "succeeded")) {
		if (!cli->json)
			printf("deployed %s version %s in %.2f s\n", name,
			       cell(json_object_get(fin, "version"), what,
				    sizeof(what)),
			       (double)(now_us() - t0) / 1e6);
		ret = EX_OK;
	} else {
		json_t *err = json_object_get(fin, "error");
		const char *out = json_string_value(json_object_get(err, "output"));

		errorf(0, "deploy %s failed at step %s: %s", name,
		       json_string_value(json_object_get(err, "step")) ?: "?",
		       json_string_value(json_object_get(err, "message")) ?:
			       "(no reason given)");
		if (out && *out)
			print_output(out);
		ret = EX_FUNCTION;
	}
out:
	json_decref(d);
	json_decref(fin);
	free(ar.p);
	free(auto_name);
	return ret;
}

/* ---- invoke ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n sorted values. */
static uint64_t pct(const uint64_t *v, size_t n, unsigned p)
{
	size_t k = (n * p + 99) / 100;

	return v[k ? k - 1 : 0];
}

static void print_invoke_line(const struct ember_invoke_result *r)
{
	char init[48] = "";

	if (r->init_us >= 0)
		snprintf(init, sizeof(init), "  init %lld us",
			 (long long)r->init_us);
	fprintf(stderr, "request %s  %s  duration %lld us  billed %lld ms%s"
		"  client %.3f ms%s\n", r->request_id[0] ? r->request_id : "-",
		r->cold ? "cold" : "warm", (long long)r->duration_us,
		(long long)r->billed_ms, init, (double)r->client_us / 1000.0,
		r->function_error ? "  function error" : "");
}

/* --repeat: the warm invocations' figures, as emberd and this client
 * measured them. */
static void print_stats(uint64_t *client, uint64_t *server, size_t n,
			size_t cold)
{
	if (!n) {
		fprintf(stderr, "%zu cold, no warm invocations\n", cold);
		return;
	}
	qsort(client, n, sizeof(*client), cmp_u64);
	qsort(server, n, sizeof(*server), cmp_u64);
	fprintf(stderr, "%zu warm invocations (%zu cold not counted): "
		"emberd duration p50 %llu us p99 %llu us; round trip (this "
		"client) p50 %llu us p99 %llu us\n", n, cold,
		(unsigned long long)pct(server, n, 50),
		(unsigned long long)pct(server, n, 99),
		(unsigned long long)pct(client, n, 50),
		(unsigned long long)pct(client, n, 99));
}

static int cmd_invoke(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "repeat", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *data = NULL, *name;
	struct membuf in = { 0 };
	struct ember_invoke_result res = { 0 };
	uint64_t *client = NULL, *server = NULL;
	unsigned long repeat = 1;
	size_t warm = 0, cold = 0;
	const void *payload;
	size_t len;
	char what[128];
	int o, ret = EX_OK;

	optind = 0; /* 0: glibc rescans from scratch (and permutes) */
	while ((o = getopt_long(argc, argv, "d:n:vh", opts, NULL)) != -1) {
		switch (o) {
		case 'd': data = optarg; break;
		case 'n':
			repeat = number_arg(optarg, 1000000, "invoke --repeat");
			break;
		case 'v': cli->verbose++; break;
		case 'h': fputs(usage_invoke, stdout); return EX_OK;
		default: fputs(usage_invoke, stderr); return EX_USAGE;
		}
	}
	if (argc - optind != 1) {
		fputs(usage_invoke, stderr);
		die_usage("invoke: expected one function NAME");
	}
	name = argv[optind];
	if (data && data[0] == '@')
		ret = read_file(data + 1, &in, MAX_PAYLOAD);
	else if (!data && !isatty(0))
		ret = read_file("-", &in, MAX_PAYLOAD);
	/* else: --data STRING, or nothing piped in (an empty payload) */
	if (ret)
		return ret;
	payload = data && data[0] != '@' ? data : (const void *)in.p;
	len = data && data[0] != '@' ? strlen(data) : in.len;
	client = calloc(repeat, sizeof(*client));
	server = calloc(repeat, sizeof(*server));
	if (!client || !server)
		exit(errorf(EX_SOFTWARE, "out of memory"));
	connect_client(cli);
	snprintf(what, sizeof(what), "invoke %.63s", name);
	for (unsigned long i = 0; i < repeat; i++) {
		ember_invoke_result_free(&res);
		ret = ember_client_invoke(cli->c, name, payload, len, &res);
		if (ret) {
			ret = api_error(cli, what, ret);
			goto out;
		}
		if (cli->verbose && (repeat == 1 || cli->verbose > 1 || res.cold))
			print_invoke_line(&res);
		if (res.cold) {
			cold++;
		} else {
			client[warm] = res.client_us;
			server[warm++] = res.duration_us > 0 ?
						 (uint64_t)res.duration_us : 0;
		}
		if (res.function_error)
			break; /* its description is the result */
	}
	if (fwrite(res.body, 1, res.len, stdout) != res.len || fflush(stdout))
		ret = errorf(EX_SOFTWARE, "invoke: writing the result: %s",
			     strerror(errno));
	if (repeat > 1)
		print_stats(client, server, warm, cold);
	if (!ret && res.function_error)
		ret = errorf(EX_FUNCTION, "invoke %s: the function reported an "
			     "error", name);
out:
	ember_invoke_result_free(&res);
	free(client);
	free(server);
	free(in.p);
	return ret;
}

/* ---- functions ---- */

static int cmd_ls(struct cli *cli, int argc, char **argv)
{
	static const struct column cols[] = {
		{ "NAME", "name" }, { "VERSION", "version" },
		{ "RUNTIME", "runtime" }, { "MEMORY_MIB", "memory_mib" },
		{ "TIMEOUT_MS", "timeout_ms" }, { "UPDATED", "updated" },
	};
	json_t *j;
	int ret;

	plain_args(argc, argv, 0, usage_ls);
	connect_client(cli);
	ret = ember_client_function_list(cli->c, &j);
	return print_list(cli, "ls", ret, j, "functions", cols, 6);
}

static void print_fields(const char *prefix, json_t *o)
{
	const char *k;
	json_t *v;
	char b[1024];

	json_object_foreach(o, k, v) {
		if (json_is_object(v) && json_object_size(v) &&
		    strcmp(k, "env")) {
			char p[128];

			snprintf(p, sizeof(p), "%s%s.", prefix, k);
			print_fields(p, v);
			continue;
		}
		printf("%s%s: %s\n", prefix, k, cell(v, b, sizeof(b)));
	}
}

static int cmd_info(struct cli *cli, int argc, char **argv)
{
	char **a = plain_args(argc, argv, 1, usage_info), what[128];
	json_t *j;
	int ret;

	connect_client(cli);
	snprintf(what, sizeof(what), "info %.63s", a[0]);
	ret = ember_client_function_get(cli->c, a[0], &j);
	if (ret)
		return api_error(cli, what, ret);
	if (cli->json)
		print_json(j);
	else
		print_fields("", j);
	json_decref(j);
	return EX_OK;
}

static int cmd_versions(struct cli *cli, int argc, char **argv)
{
	static const struct column cols[] = {
		{ "VERSION", "version" }, { "CREATED", "created" },
		{ "CURRENT", "current" }, { "RUNTIME", "manifest.runtime" },
		{ "HANDLER", "manifest.handler" },
	};
	char **a = plain_args(argc, argv, 1, usage_versions), what[128];
	json_t *j;
	int ret;

	connect_client(cli);
	snprintf(what, sizeof(what), "versions %.63s", a[0]);
	ret = ember_client_function_versions(cli->c, a[0], &j);
	return print_list(cli, what, ret, j, "versions", cols, 5);
}

static int cmd_rm(struct cli *cli, int argc, char **argv)
{
	char **a = plain_args(argc, argv, 1, usage_rm), what[128];
	int ret;

	connect_client(cli);
	snprintf(what, sizeof(what), "rm %.63s", a[0]);
	ret = ember_client_function_delete(cli->c, a[0]);
	if (ret)
		return api_error(cli, what, ret);
	printf("function %s deleted\n", a[0]);
	return EX_OK;
}

/* ---- usage and logs ---- */

/* One row of `ember usage`: the key columns (tenant, function, period:
 * the bits of keys) from u, or, for a total, `label` then blanks; then the
 * figures. */
static void usage_row(struct table *t, json_t *u, unsigned keys,
		      const char *label)
{
	static const char *const keyname[] = { "tenant", "function", "period" };
	static const char *const counts[] = { "requests", "errors",
					      "throttled", "cold_starts",
					      "billed_ms" };
	char b[TABLE_COLS][64];
	const char *row[TABLE_COLS];
	size_t c = 0;

	for (unsigned k = 0; k < 3; k++) {
		if (!(keys & (1u << k)))
			continue;
		row[c] = label ? (c ? "" : label) :
				 cell(json_object_get(u, keyname[k]), b[c],
				      sizeof(b[c]));
		c++;
	}
	if (!keys)
		row[c++] = label ? label : "";
	for (size_t i = 0; i < 5; i++, c++)
		row[c] = cell(json_object_get(u, counts[i]), b[c], sizeof(b[c]));
	snprintf(b[c], sizeof(b[c]), "%.6f",
		 json_number_value(json_object_get(u, "gb_seconds")));
	row[c] = b[c];
	table_row(t, row);
}

static int cmd_usage(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'F' },
		{ "to", required_argument, NULL, 'T' },
		{ "function", required_argument, NULL, 'f' },
		{ "tenant", required_argument, NULL, 't' },
		{ "by", required_argument, NULL, 'b' },
		{ "csv", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ember_usage_query q = { 0 };
	bool csv = false;
	json_t *j, *v, *g;
	unsigned keys = 0;
	size_t i;
	int o, ret;

	optind = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'F': q.from = optarg; break;
		case 'T': q.to = optarg; break;
		case 'f': q.function = optarg; break;
		case 't': q.tenant = optarg; break;
		case 'b': q.group_by = optarg; break;
		case 'c': csv = true; break;
		case 'h': fputs(usage_usage, stdout); return EX_OK;
		default: fputs(usage_usage, stderr); return EX_USAGE;
		}
	}
	if (optind != argc)
		die_usage("usage: unexpected argument \"%s\"", argv[optind]);
	connect_client(cli);
	if (csv) {
		char *text;
		size_t len;

		ret = ember_client_usage_csv(cli->c, &q, &text, &len);
		if (ret)
			return api_error(cli, "usage", ret);
		fwrite(text, 1, len, stdout);
		free(text);
		return EX_OK;
	}
	ret = ember_client_usage(cli->c, &q, &j);
	if (ret)
		return api_error(cli, "usage", ret);
	if (cli->json) {
		print_json(j);
		json_decref(j);
		return EX_OK;
	}
	json_array_foreach(json_object_get(j, "group_by"), i, g) {
		const char *k = json_string_value(g);

		keys |= !strcmp(k, "tenant") ? 1 : !strcmp(k, "function") ? 2 :
			4;
	}
	{
		struct table t = { .ncols = 0 };

		if (keys & 1)
			t.head[t.ncols++] = "TENANT";
		if (keys & 2)
			t.head[t.ncols++] = "FUNCTION";
		if (keys & 4)
			t.head[t.ncols++] = "PERIOD";
		if (!keys)
			t.head[t.ncols++] = "";
		t.head[t.ncols++] = "REQUESTS";
		t.head[t.ncols++] = "ERRORS";
		t.head[t.ncols++] = "THROTTLED";
		t.head[t.ncols++] = "COLD";
		t.head[t.ncols++] = "BILLED_MS";
		t.head[t.ncols++] = "GB_S";
		json_array_foreach(json_object_get(j, "usage"), i, v)
			usage_row(&t, v, keys, NULL);
		usage_row(&t, json_object_get(j, "total"), keys, "TOTAL");
		printf("usage from %s to %s\n",
		       json_string_value(json_object_get(j, "from")),
		       json_string_value(json_object_get(j, "to")));
		table_print(&t);
		if (json_array_size(json_object_get(j, "tenants"))) {
			struct table pt = { .ncols = 7 };
			static const char *const heads[] = {
				"TENANT", "REQUESTS", "ERRORS", "THROTTLED",
				"COLD", "BILLED_MS", "GB_S",
			};

			memcpy(pt.head, heads, sizeof(heads));
			json_array_foreach(json_object_get(j, "tenants"), i, v)
				usage_row(&pt, v, 1, NULL);
			printf("\nper tenant\n");
			table_print(&pt);
		}
	}
	json_decref(j);
	return EX_OK;
}

/* Prints a page of log entries; returns the answer's cursor. */
static int64_t print_logs(struct cli *cli, json_t *j)
{
	json_t *v;
	size_t i;

	if (cli->json) {
		print_json(j);
	} else {
		json_array_foreach(json_object_get(j, "logs"), i, v) {
			const char *at = json_string_value(json_object_get(v, "at"));
			const char *id = json_string_value(
				json_object_get(v, "request_id"));
			const char *text = json_string_value(
				json_object_get(v, "text"));
			const char *p = text ? text : "";

			/* One output line per line of the text (the server
			 * has replaced control characters already). */
			while (*p) {
				const char *nl = strchr(p, '\n');
				int n = nl ? (int)(nl - p) : (int)strlen(p);

				printf("%s %s %.*s\n", at ? at : "-",
				       id ? id : "-", n, p);
				p += n + (nl != NULL);
			}
			if (json_is_true(json_object_get(v, "truncated")))
				printf("%s %s [truncated]\n", at ? at : "-",
				       id ? id : "-");
		}
	}
	fflush(stdout);
	return json_integer_value(json_object_get(j, "cursor"));
}

static int cmd_logs(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "request-id", required_argument, NULL, 'r' },
		{ "since", required_argument, NULL, 's' },
		{ "tail", required_argument, NULL, 'n' },
		{ "follow", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ember_logs_query q = { .after = -1 };
	bool follow = false;
	char what[128];
	json_t *j;
	int o, ret;

	optind = 0;
	while ((o = getopt_long(argc, argv, "r:n:fh", opts, NULL)) != -1) {
		switch (o) {
		case 'r': q.request_id = optarg; break;
		case 's': q.since = optarg; break;
		case 'n': q.tail = (unsigned)number_arg(optarg, 1000, "--tail");
			  break;
		case 'f': follow = true; break;
		case 'h': fputs(usage_logs, stdout); return EX_OK;
		default: fputs(usage_logs, stderr); return EX_USAGE;
		}
	}
	if (argc - optind != 1) {
		fputs(usage_logs, stderr);
		die_usage("logs: expected a function name");
	}
	connect_client(cli);
	snprintf(what, sizeof(what), "logs %.63s", argv[optind]);
	ret = ember_client_logs(cli->c, argv[optind], &q, &j);
	if (ret)
		return api_error(cli, what, ret);
	q.after = print_logs(cli, j);
	json_decref(j);
	/* --follow: what came after the last cursor, once a second. */
	q.request_id = q.since = NULL;
	q.tail = 0;
	while (follow) {
		sleep(1);
		ret = ember_client_logs(cli->c, argv[optind], &q, &j);
		if (ret)
			return api_error(cli, what, ret);
		q.after = print_logs(cli, j);
		json_decref(j);
	}
	return EX_OK;
}

static const struct command {
	const char *name;
	int (*run)(struct cli *cli, int argc, char **argv);
	const char *usage;
} commands[] = {
	{ "tenant", cmd_tenant, usage_tenant },
	{ "token", cmd_token, usage_token },
	{ "deploy", cmd_deploy, usage_deploy },
	{ "invoke", cmd_invoke, usage_invoke },
	{ "ls", cmd_ls, usage_ls },
	{ "info", cmd_info, usage_info },
	{ "versions", cmd_versions, usage_versions },
	{ "rm", cmd_rm, usage_rm },
	{ "health", cmd_health, usage_health },
	{ "usage", cmd_usage, usage_usage },
	{ "logs", cmd_logs, usage_logs },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "endpoint", required_argument, NULL, 'e' },
		{ "token", required_argument, NULL, 't' },
		{ "token-file", required_argument, NULL, 'F' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli cli = { 0 };
	const struct command *cmd;
	int o, ret;

	while ((o = getopt_long(argc, argv, "+e:t:c:jvhV", opts, NULL)) != -1) {
		switch (o) {
		case 'e': cli.endpoint = optarg; break;
		case 't': cli.token = optarg; break;
		case 'F': cli.token_file = optarg; break;
		case 'c': cli.config = optarg; break;
		case 'j': cli.json = true; break;
		case 'v': cli.verbose++; break;
		case 'h': fputs(usage_main, stdout); return EX_OK;
		case 'V': printf("ember %s\n", EMBER_CLI_VERSION); return EX_OK;
		default: die_usage("unknown option");
		}
	}
	if (optind >= argc) {
		fputs(usage_main, stderr);
		return EX_USAGE;
	}
	if (!strcmp(argv[optind], "help")) {
		if (optind + 1 >= argc) {
			fputs(usage_main, stdout);
			return EX_OK;
		}
		cmd = find_command(argv[optind + 1]);
		if (!cmd)
			die_usage("help: unknown command \"%s\"", argv[optind + 1]);
		fputs(cmd->usage, stdout);
		return EX_OK;
	}
	cmd = find_command(argv[optind]);
	if (!cmd)
		die_usage("unknown command \"%s\"", argv[optind]);
	ret = cmd->run(&cli, argc - optind, argv + optind);
	ember_client_free(cli.c);
	if (cli.token_buf) {
		memset(cli.token_buf, 0, strlen(cli.token_buf));
		free(cli.token_buf);
	}
	return ret;
}
