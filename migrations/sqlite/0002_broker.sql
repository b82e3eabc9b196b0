-- Credential broker: connections (secrets sealed with AES-256-GCM by the server) and
-- HTTP tools, per app. An end-user's own connection (end_user <> '') overrides the app's.
CREATE TABLE connections (
    app_id      TEXT NOT NULL REFERENCES apps (id),
    name        TEXT NOT NULL,
    end_user    TEXT NOT NULL DEFAULT '',
    public      TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (app_id, name, end_user)
) STRICT;

CREATE TABLE tools (
    app_id      TEXT NOT NULL REFERENCES apps (id),
    name        TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (app_id, name)
) STRICT;
