-- Metadata schema, version 1. Times are milliseconds since the Unix epoch; names and ids sort bytewise
-- (COLLATE "C") so listings and keyset cursors agree with every other backend.

CREATE TABLE projects (
    name        TEXT COLLATE "C" PRIMARY KEY,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE runs (
    id           TEXT COLLATE "C" PRIMARY KEY,
    project      TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    run_group    TEXT,
    job_type     TEXT,
    tags         JSONB NOT NULL,
    notes        TEXT NOT NULL,
    state        TEXT NOT NULL,
    exit_code    INTEGER,
    config       JSONB NOT NULL,
    summary_set  JSONB NOT NULL,
    metadata     JSONB NOT NULL,
    created_at   BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    ended_at     BIGINT,
    heartbeat_at BIGINT NOT NULL
);
CREATE INDEX runs_by_created ON runs (project, created_at, id);
CREATE INDEX runs_by_name ON runs (project, name, id);
CREATE INDEX runs_by_state_heartbeat ON runs (state, heartbeat_at);

-- The ordered tag list lives in runs.tags; this table answers "runs with tag X".
CREATE TABLE run_tags (
    run_id TEXT COLLATE "C" NOT NULL,
    tag    TEXT NOT NULL,
    PRIMARY KEY (run_id, tag)
);
CREATE INDEX run_tags_by_tag ON run_tags (tag, run_id);

-- Per metric key, the value at the highest step seen (float8 holds NaN and infinities).
CREATE TABLE run_summary_metrics (
    run_id TEXT COLLATE "C" NOT NULL,
    key    TEXT NOT NULL,
    step   BIGINT NOT NULL,
    value  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE artifact_versions (
    project        TEXT COLLATE "C" NOT NULL,
    name           TEXT COLLATE "C" NOT NULL,
    version        INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    digest         TEXT NOT NULL,
    size           BIGINT NOT NULL,
    metadata       JSONB NOT NULL,
    created_by_run TEXT,
    created_at     BIGINT NOT NULL,
    files          JSONB NOT NULL,
    PRIMARY KEY (project, name, version)
);

CREATE TABLE artifact_aliases (
    project TEXT COLLATE "C" NOT NULL,
    name    TEXT COLLATE "C" NOT NULL,
    alias   TEXT COLLATE "C" NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (project, name, alias)
);

-- Lineage: run -> logged -> version.
CREATE TABLE run_artifacts (
    run_id  TEXT COLLATE "C" NOT NULL,
    project TEXT COLLATE "C" NOT NULL,
    name    TEXT COLLATE "C" NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (run_id, project, name, version)
);
