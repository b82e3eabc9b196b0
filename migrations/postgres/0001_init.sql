-- atoll schema, PostgreSQL dialect (keep in step with ../sqlite/0001_init.sql).
-- Times are Unix milliseconds (BIGINT); JSON documents are TEXT; ids come from the
-- application. Never edit this file once released: add a new migration instead.

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE apps (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    -- Lets child rows reference (app, org) together so an app's rows cannot name
    -- another org.
    CONSTRAINT apps_id_org_key UNIQUE (id, org_id)
);
CREATE INDEX apps_org_created_idx ON apps (org_id, created_at, id);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    app_id      TEXT,
    kind        TEXT NOT NULL CHECK (kind IN ('org', 'app')),
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    hash        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    CONSTRAINT api_keys_hash_key UNIQUE (hash),
    CONSTRAINT api_keys_app_fkey FOREIGN KEY (app_id, org_id) REFERENCES apps (id, org_id)
);
CREATE INDEX api_keys_org_created_idx ON api_keys (org_id, created_at, id);

CREATE TABLE end_users (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps (id),
    external_id TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT end_users_app_external_key UNIQUE (app_id, external_id)
);

CREATE TABLE agents (
    app_id      TEXT NOT NULL REFERENCES apps (id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);
CREATE INDEX agents_app_created_idx ON agents (app_id, created_at, name);

CREATE TABLE agent_versions (
    app_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    files       TEXT NOT NULL,
    digest      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, name, version),
    FOREIGN KEY (app_id, name) REFERENCES agents (app_id, name)
);

CREATE TABLE runs (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL,
    app_id               TEXT NOT NULL,
    agent                TEXT NOT NULL,
    version              TEXT NOT NULL,
    end_user             TEXT,
    trigger              TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN
                             ('queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled')),
    input                TEXT NOT NULL,
    output               TEXT,
    error                TEXT,
    metadata             TEXT,
    usage                TEXT,
    -- Copied out of `usage` when written, so usage totals are plain SUMs.
    usage_cpu_ms         DOUBLE PRECISION NOT NULL DEFAULT 0,
    usage_llm_tokens_in  BIGINT NOT NULL DEFAULT 0,
    usage_llm_tokens_out BIGINT NOT NULL DEFAULT 0,
    usage_fetches        BIGINT NOT NULL DEFAULT 0,
    attempt              BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    started_at           BIGINT,
    finished_at          BIGINT,
    lease_owner          TEXT,
    lease_expires_at     BIGINT,
    FOREIGN KEY (app_id, org_id) REFERENCES apps (id, org_id)
);
-- Listing an app's runs, newest first.
CREATE INDEX runs_app_created_idx ON runs (app_id, created_at, id);
-- Claiming: the queue, oldest first.
CREATE INDEX runs_queued_idx ON runs (created_at, id) WHERE status = 'queued';
-- Finding expired leases.
CREATE INDEX runs_lease_idx ON runs (lease_expires_at) WHERE status = 'running';
-- Runs held by a node.
CREATE INDEX runs_owner_idx ON runs (lease_owner) WHERE lease_owner IS NOT NULL;
-- Usage totals per org (and app) over a period.
CREATE INDEX runs_org_finished_idx ON runs (org_id, finished_at) WHERE finished_at IS NOT NULL;

-- Read in order by (run_id, seq > n): the primary key is the index.
CREATE TABLE run_events (
    run_id      TEXT NOT NULL REFERENCES runs (id),
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- One namespace is (org_id, app_id, scope, end_user); app_id is '' for org scope and
-- end_user '' outside the end_user scope. Keys sort bytewise (as in SQLite).
CREATE TABLE memory (
    org_id      TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    scope       TEXT NOT NULL,
    end_user    TEXT NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    value       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, app_id, scope, end_user, key)
);

CREATE TABLE agent_state (
    app_id      TEXT NOT NULL,
    agent       TEXT NOT NULL,
    end_user    TEXT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, agent, end_user)
);

CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    app_id      TEXT,
    key_id      TEXT,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX audit_org_created_idx ON audit_events (org_id, created_at, id);
CREATE INDEX audit_app_created_idx ON audit_events (app_id, created_at, id) WHERE app_id IS NOT NULL;

CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    -- NULL while the request is in progress.
    status_code  BIGINT,
    body         TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_created_idx ON idempotency_keys (created_at);
