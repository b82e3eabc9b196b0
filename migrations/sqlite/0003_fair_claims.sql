-- Fair claiming (src/store/sql/fair.rs) counts runs per stream, (app, end-user), with its
-- org: the queue by stream, oldest first (counting a stream's queued runs and fetching
-- its oldest are index scans), and what runs now by stream.
CREATE INDEX runs_streams_idx ON runs (app_id, end_user, created_at, id, org_id)
    WHERE status = 'queued';
CREATE INDEX runs_running_streams_idx ON runs (app_id, end_user, org_id)
    WHERE status = 'running';
