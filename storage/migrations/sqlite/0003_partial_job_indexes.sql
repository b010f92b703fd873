-- Due and leased jobs are indexed only while they are queued or running, as on PostgreSQL:
-- finished jobs (most of the table, over time) leave both indexes, and a job enqueued (one per
-- callback) is written into one index, not two. The lease queries name the statuses
-- literally ("status = 'queued'"), which lets SQLite use these partial indexes.
DROP INDEX jobs_due;
DROP INDEX jobs_leases;
CREATE INDEX jobs_queued ON jobs (run_at, seq) WHERE status = 'queued';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE status = 'running';
