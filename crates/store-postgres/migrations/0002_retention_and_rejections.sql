-- Per-project retention (days; NULL keeps forever) and per-run counts of points refused by ingest limits.

ALTER TABLE projects ADD COLUMN runs_retention_days INTEGER;
ALTER TABLE projects ADD COLUMN points_retention_days INTEGER;
ALTER TABLE runs ADD COLUMN points_expired_at BIGINT;
ALTER TABLE runs ADD COLUMN rejected_points BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN last_rejection TEXT;
CREATE INDEX runs_by_ended ON runs (project, ended_at);
