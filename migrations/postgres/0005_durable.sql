-- Durable runs: a run may be `waiting` (its isolate released), and what that needs.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN
    ('queued', 'running', 'waiting', 'succeeded', 'failed', 'timed_out', 'cancelled'));

-- Durable runs: the journal of every host call's answer, signals sent to a
-- run, and the wait a `waiting` run is parked on.
CREATE TABLE run_journal (
    run_id      TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    op          TEXT NOT NULL,
    digest      TEXT NOT NULL,
    answer      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE run_signals (
    id          TEXT NOT NULL PRIMARY KEY,
    run_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    -- The journal position of the wait that took it.
    consumed_seq BIGINT
);
CREATE INDEX run_signals_open_idx ON run_signals (run_id, name, created_at, id)
    WHERE consumed_seq IS NULL;

CREATE TABLE run_waits (
    run_id      TEXT NOT NULL PRIMARY KEY,
    seq         BIGINT NOT NULL,
    -- The signal waited for (NULL: a sleep).
    name        TEXT,
    schema      TEXT,
    -- When the sleep ends or the wait times out (NULL: never).
    wake_at     BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX run_waits_wake_idx ON run_waits (wake_at) WHERE wake_at IS NOT NULL;

-- A failure streak of a webhook endpoint restarts after a day without failures.
ALTER TABLE webhook_endpoints ADD COLUMN last_failed_at BIGINT;
