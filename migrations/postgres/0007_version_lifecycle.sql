-- A version can be deprecated: it stays runnable when pinned, but `latest` skips it.
ALTER TABLE agent_versions ADD COLUMN deprecated_at BIGINT;
