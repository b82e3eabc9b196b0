-- A version can be deprecated (it stays runnable when pinned, but `latest` skips it) or
-- deleted: a deleted version keeps a tombstone (its files emptied) so that its number is
-- never given to other content, which caches keyed by agent@version would mistake for it.
ALTER TABLE agent_versions ADD COLUMN deprecated_at INTEGER;
ALTER TABLE agent_versions ADD COLUMN deleted_at INTEGER;
-- The revoke rule looks for another live key of an app.
CREATE INDEX api_keys_app_live_idx ON api_keys (app_id) WHERE revoked_at IS NULL;
