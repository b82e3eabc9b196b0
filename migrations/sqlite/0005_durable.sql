-- SQLite dialect of ../postgres/0005_durable.sql. SQLite cannot change a CHECK
-- constraint, so `runs` is rebuilt, inside the migration's transaction where foreign
-- keys stay on: `runs` and `run_events` (which refers to it) are renamed away, made
-- again, copied, and the old tables dropped child first, then the indexes made again.
ALTER TABLE run_events RENAME TO run_events_old;
ALTER TABLE runs RENAME TO runs_old;
CREATE TABLE runs (
    id                   TEXT NOT NULL PRIMARY KEY,
    org_id               TEXT NOT NULL,
    app_id               TEXT NOT NULL,
    agent                TEXT NOT NULL,
    version              TEXT NOT NULL,
    end_user             TEXT,
    trigger              TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN
                             ('queued', 'running', 'waiting', 'succeeded', 'failed', 'timed_out', 'cancelled')),
    input                TEXT NOT NULL,
    output               TEXT,
    error                TEXT,
    metadata             TEXT,
    usage                TEXT,
    -- Copied out of `usage` when written, so usage totals are plain SUMs.
    usage_cpu_ms         REAL NOT NULL DEFAULT 0,
    usage_llm_tokens_in  INTEGER NOT NULL DEFAULT 0,
    usage_llm_tokens_out INTEGER NOT NULL DEFAULT 0,
    usage_fetches        INTEGER NOT NULL DEFAULT 0,
    attempt              INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    started_at           INTEGER,
    finished_at          INTEGER,
    lease_owner          TEXT,
    lease_expires_at     INTEGER,
    FOREIGN KEY (app_id, org_id) REFERENCES apps (id, org_id)
) STRICT;
INSERT INTO runs SELECT * FROM runs_old;
CREATE TABLE run_events (
    run_id      TEXT NOT NULL REFERENCES runs (id),
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
) STRICT;
INSERT INTO run_events SELECT * FROM run_events_old;
DROP TABLE run_events_old;
DROP TABLE runs_old;
CREATE INDEX runs_app_created_idx ON runs (app_id, created_at, id);
CREATE INDEX runs_queued_idx ON runs (created_at, id) WHERE status = 'queued';
CREATE INDEX runs_lease_idx ON runs (lease_expires_at) WHERE status = 'running';
CREATE INDEX runs_owner_idx ON runs (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX runs_org_finished_idx ON runs (org_id, finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX runs_streams_idx ON runs (app_id, end_user, created_at, id, org_id)
    WHERE status = 'queued';
CREATE INDEX runs_running_streams_idx ON runs (app_id, end_user, org_id)
    WHERE status = 'running';

-- Durable runs: the journal of every host call's answer, signals sent to a
-- run, and the wait a `waiting` run is parked on.
CREATE TABLE run_journal (
    run_id      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    op          TEXT NOT NULL,
    digest      TEXT NOT NULL,
    answer      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
) STRICT;

CREATE TABLE run_signals (
    id          TEXT NOT NULL PRIMARY KEY,
    run_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    -- The journal position of the wait that took it.
    consumed_seq INTEGER
) STRICT;
CREATE INDEX run_signals_open_idx ON run_signals (run_id, name, created_at, id)
    WHERE consumed_seq IS NULL;

CREATE TABLE run_waits (
    run_id      TEXT NOT NULL PRIMARY KEY,
    seq         INTEGER NOT NULL,
    -- The signal waited for (NULL: a sleep).
    name        TEXT,
    schema      TEXT,
    -- When the sleep ends or the wait times out (NULL: never).
    wake_at     INTEGER,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX run_waits_wake_idx ON run_waits (wake_at) WHERE wake_at IS NOT NULL;

-- A failure streak of a webhook endpoint restarts after a day without failures.
ALTER TABLE webhook_endpoints ADD COLUMN last_failed_at INTEGER;
