-- Webhooks out (endpoints, durable deliveries and their attempts) and triggers in
-- (inbound webhooks and cron schedules, with one firing row per started run).

CREATE TABLE webhook_endpoints (
    id                  TEXT NOT NULL PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    app_id              TEXT NOT NULL REFERENCES apps (id),
    url                 TEXT NOT NULL,
    description         TEXT,
    -- Filters as ",a,b," (NULL: everything), so one LIKE matches a name.
    events              TEXT,
    agents              TEXT,
    -- Sealed with the master key; the previous secret also signs until previous_until.
    secret              TEXT NOT NULL,
    previous_secret     TEXT,
    previous_until      BIGINT,
    created_at          BIGINT NOT NULL,
    failing_since       BIGINT,
    disabled_at         BIGINT,
    disabled_reason     TEXT
);
CREATE INDEX webhook_endpoints_app_idx ON webhook_endpoints (app_id, created_at, id);

-- One row per (endpoint, event): written in the transaction of the state change it
-- announces; `id` is the webhook-id, shared by the endpoints of one event.
CREATE TABLE webhook_deliveries (
    endpoint_id         TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    id                  TEXT NOT NULL,
    app_id              TEXT NOT NULL,
    event               TEXT NOT NULL,
    run_id              TEXT NOT NULL,
    payload             TEXT NOT NULL,
    event_at            BIGINT NOT NULL,
    status              TEXT NOT NULL,
    attempts            BIGINT NOT NULL DEFAULT 0,
    -- Due time; while a node sends it, the end of that node's lease.
    next_attempt_at     BIGINT,
    lease_owner         TEXT,
    created_at          BIGINT NOT NULL,
    PRIMARY KEY (endpoint_id, id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, endpoint_id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (endpoint_id, created_at, id);

CREATE TABLE webhook_attempts (
    endpoint_id         TEXT NOT NULL,
    delivery_id         TEXT NOT NULL,
    attempt             BIGINT NOT NULL,
    at                  BIGINT NOT NULL,
    status_code         BIGINT,
    latency_ms          BIGINT NOT NULL,
    response            TEXT,
    error               TEXT,
    PRIMARY KEY (endpoint_id, delivery_id, attempt),
    FOREIGN KEY (endpoint_id, delivery_id)
        REFERENCES webhook_deliveries (endpoint_id, id) ON DELETE CASCADE
);

CREATE TABLE triggers (
    id                  TEXT NOT NULL PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    app_id              TEXT NOT NULL REFERENCES apps (id),
    agent               TEXT NOT NULL,
    kind                TEXT NOT NULL,
    config              TEXT NOT NULL,
    secret              TEXT,
    paused_at           BIGINT,
    next_fire_at        BIGINT,
    created_at          BIGINT NOT NULL
);
CREATE INDEX triggers_agent_idx ON triggers (app_id, agent, created_at, id);
CREATE INDEX triggers_due_idx ON triggers (next_fire_at)
    WHERE kind = 'cron' AND paused_at IS NULL;

-- The run each firing started: a webhook's delivery id or a cron's scheduled time is
-- unique per trigger, so a repeat or a second node finds the run instead of starting one.
CREATE TABLE trigger_firings (
    trigger_id          TEXT NOT NULL REFERENCES triggers (id) ON DELETE CASCADE,
    key                 TEXT NOT NULL,
    run_id              TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    PRIMARY KEY (trigger_id, key)
);
