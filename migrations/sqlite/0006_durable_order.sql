-- Durable runs, continued: the order in which a run's answers came (concurrent calls
-- complete out of the order they were asked; a replay answers them in this order), and
-- the indexes the per-app cap of waiting runs and the signal takes use.
ALTER TABLE run_journal ADD COLUMN rank INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_waiting_idx ON runs (app_id) WHERE status = 'waiting';
CREATE UNIQUE INDEX run_signals_taken_idx ON run_signals (run_id, consumed_seq)
    WHERE consumed_seq IS NOT NULL;
