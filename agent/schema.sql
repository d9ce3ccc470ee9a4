-- schema.sql - emberd's SQLite schema, the only one (built into emberd).
--
-- Each "-- migration N: what" line starts migration N. At open, emberd runs
-- every migration above the database's PRAGMA user_version, in order, each
-- in its own transaction that also sets user_version = N. A migration, once
-- released, is never edited: a change to the schema is a new migration at
-- the end. A database whose user_version is above the last migration here
-- was written by a newer emberd and is refused.
--
-- Times are ISO 8601 UTC text ("2026-11-27T12:34:56.789Z"). Names follow
-- ^[a-z0-9][a-z0-9-]{0,62}$ (checked by emberd before any statement).
-- Paths are relative to the state directory and built from ids, never from
-- names.

-- migration 1: tenants, tokens, functions, versions, snapshots, deploys
CREATE TABLE settings (
	key TEXT PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;

-- Ids of tenants and functions are never reused (AUTOINCREMENT): records
-- that outlive a delete (the usage ledger) name them by id.
CREATE TABLE tenants (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	name TEXT NOT NULL UNIQUE,
	created TEXT NOT NULL
) STRICT;

-- API tokens of tenants. Only SHA-256(token) is stored; the token itself
-- is shown once, when it is created. The admin token's hash lives in
-- settings ('admin_token_sha256').
CREATE TABLE tokens (
	id TEXT PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	hash BLOB NOT NULL UNIQUE,
	created TEXT NOT NULL
) STRICT;
CREATE INDEX tokens_by_tenant ON tokens(tenant_id);

-- A function exists from its first deploy on; current_version is NULL
-- until a deploy has succeeded (invoke answers 409 not_deployed).
CREATE TABLE functions (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	created TEXT NOT NULL,
	current_version INTEGER,
	UNIQUE (tenant_id, name)
) STRICT;

-- One row per successful deploy. dir holds the version's files
-- (tree/, image, snapshot/), e.g. "functions/12/v3".
CREATE TABLE versions (
	function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
	version INTEGER NOT NULL,
	created TEXT NOT NULL,
	manifest TEXT NOT NULL,
	dir TEXT NOT NULL,
	deploy_id TEXT NOT NULL,
	PRIMARY KEY (function_id, version)
) STRICT;

-- The snapshot each version is restored from (dir relative to the state
-- directory); workingset_at is set once a working set has been recorded.
CREATE TABLE snapshots (
	function_id INTEGER NOT NULL,
	version INTEGER NOT NULL,
	dir TEXT NOT NULL,
	memory_mib INTEGER NOT NULL,
	created TEXT NOT NULL,
	workingset_at TEXT,
	PRIMARY KEY (function_id, version),
	FOREIGN KEY (function_id, version)
		REFERENCES versions(function_id, version) ON DELETE CASCADE
) STRICT;

-- Deploys name their function by (tenant, name), not by id: a failed first
-- deploy removes the function it created, and its record must stay
-- readable.
CREATE TABLE deploys (
	id TEXT PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	function TEXT NOT NULL,
	state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
	version INTEGER,
	error_step TEXT,
	error_message TEXT,
	error_output TEXT,
	created TEXT NOT NULL,
	finished TEXT
) STRICT;
CREATE INDEX deploys_by_function ON deploys(tenant_id, function);

CREATE TABLE deploy_steps (
	deploy_id TEXT NOT NULL REFERENCES deploys(id) ON DELETE CASCADE,
	seq INTEGER NOT NULL,
	step TEXT NOT NULL,
	detail TEXT NOT NULL,
	at TEXT NOT NULL,
	PRIMARY KEY (deploy_id, seq)
) STRICT;

-- migration 2: the usage ledger and the invocation logs (agent/ledger.c)
-- One row per finished invocation, written once and kept when its function or tenant is deleted: billing needs it, so
-- the names are copied into the row. Rows are scoped by tenant_id and
-- function_id, which is safe because those ids are never reused. Times
-- here are integers, microseconds since the epoch (UTC), because ranges
-- and grouping by hour or day are arithmetic on them; the API prints them
-- as ISO 8601. id is the row's sequence number in the write-ahead journal
-- (STATE/ledger.journal), so a record replayed from the journal after a
-- crash has the id it was committed under, if it was, and is ignored: no
-- row is ever there twice. (A unique index on the random request id would
-- cost a random B-tree insert per row; the sequence number is an append.)
-- request_id is the 64-bit id of X-Ember-Request-Id stored as its
-- two's-complement signed twin.
CREATE TABLE invocations (
	id INTEGER PRIMARY KEY,
	request_id INTEGER NOT NULL,
	tenant_id INTEGER NOT NULL,
	tenant TEXT NOT NULL,
	function_id INTEGER NOT NULL,
	function TEXT NOT NULL,
	version INTEGER NOT NULL,
	start_us INTEGER NOT NULL,
	duration_ns INTEGER NOT NULL,
	billed_ms INTEGER NOT NULL,
	memory_mib INTEGER NOT NULL,
	cold INTEGER NOT NULL CHECK (cold IN (0, 1)),
	init_ns INTEGER NOT NULL,
	queued_ns INTEGER NOT NULL,
	outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'error', 'timeout',
		'crash', 'throttled', 'rejected')),
	bytes_in INTEGER NOT NULL,
	bytes_out INTEGER NOT NULL
) STRICT;
CREATE INDEX invocations_by_time ON invocations(start_us);
CREATE INDEX invocations_by_tenant ON invocations(tenant_id, start_us);

-- How far the write-ahead journal (STATE/ledger.journal) is committed:
-- updated in the transaction that inserts the journal's rows.
CREATE TABLE ledger_state (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	journal_seq INTEGER NOT NULL
) STRICT;
INSERT INTO ledger_state(id, journal_seq) VALUES (1, 0);

-- Each invocation's handler output (LOG frames), bounded per invocation
-- (cut, truncated = 1), per function (log_usage.bytes; the oldest go
-- first) and in age.
CREATE TABLE logs (
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL,
	function_id INTEGER NOT NULL,
	request_id INTEGER NOT NULL,
	at_us INTEGER NOT NULL,
	truncated INTEGER NOT NULL CHECK (truncated IN (0, 1)),
	text TEXT NOT NULL
) STRICT;
CREATE INDEX logs_by_function ON logs(function_id, id);
CREATE INDEX logs_by_request ON logs(request_id);
CREATE INDEX logs_by_age ON logs(at_us);

CREATE TABLE log_usage (
	function_id INTEGER PRIMARY KEY,
	bytes INTEGER NOT NULL
) STRICT;
-- migration 3: per-tenant limits (NULL: emberd's --tenant-* default; 0: none)
-- and per-function scaling: instances kept warm, idle time before a stop
-- (NULL: emberd's --idle-ttl)
ALTER TABLE tenants ADD COLUMN max_instances INTEGER;
ALTER TABLE tenants ADD COLUMN max_memory_mib INTEGER;
ALTER TABLE tenants ADD COLUMN max_concurrency INTEGER;
ALTER TABLE functions ADD COLUMN min_instances INTEGER NOT NULL DEFAULT 0;
ALTER TABLE functions ADD COLUMN idle_ttl_ms INTEGER;
