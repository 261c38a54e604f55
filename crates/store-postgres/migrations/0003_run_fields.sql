-- Config leaves and summary values, typed, so queries on any key use an index (docs/architecture.md, "Querying
-- runs"). kind: 0 null, 1 bool, 2 number, 3 string, 4 list. NaN is a number with num NULL.

CREATE TABLE run_fields (
    run_id  TEXT COLLATE "C" NOT NULL,
    field   TEXT COLLATE "C" NOT NULL,
    project TEXT COLLATE "C" NOT NULL,
    kind    SMALLINT NOT NULL,
    num     DOUBLE PRECISION,
    txt     TEXT COLLATE "C",
    PRIMARY KEY (run_id, field)
);
CREATE INDEX run_fields_by_number ON run_fields (project, field, num, run_id);
CREATE INDEX run_fields_by_text ON run_fields (project, field, txt, run_id);

-- Runs created before this table existed are indexed by the next process to connect (PostgresMetadataStore).
CREATE TABLE run_fields_backfill (pending INTEGER NOT NULL);
INSERT INTO run_fields_backfill (pending) SELECT 1 WHERE EXISTS (SELECT 1 FROM runs);
