//! Forward-only schema migrations, tracked in SQLite's `user_version`. Each step runs in its own transaction,
//! so a crash mid-migration leaves the previous version intact.

use rusqlite::Connection;

pub(crate) struct Migration {
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

pub(crate) const METADATA: &[Migration] = &[
    Migration {
        name: "0001_initial",
        sql: r#"
        CREATE TABLE projects (
            name        TEXT PRIMARY KEY,
            description TEXT NOT NULL,
            created_at  INTEGER NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE runs (
            id           TEXT PRIMARY KEY,
            project      TEXT NOT NULL,
            name         TEXT NOT NULL,
            run_group    TEXT,
            job_type     TEXT,
            tags         TEXT NOT NULL,
            notes        TEXT NOT NULL,
            state        TEXT NOT NULL,
            exit_code    INTEGER,
            config       TEXT NOT NULL,
            summary_set  TEXT NOT NULL,
            metadata     TEXT NOT NULL,
            created_at   INTEGER NOT NULL,
            started_at   INTEGER NOT NULL,
            ended_at     INTEGER,
            heartbeat_at INTEGER NOT NULL
        );
        CREATE INDEX runs_by_created ON runs (project, created_at, id);
        CREATE INDEX runs_by_name ON runs (project, name, id);

        -- The tag list lives in runs.tags (ordered); this table answers "runs with tag X".
        CREATE TABLE run_tags (
            run_id TEXT NOT NULL,
            tag    TEXT NOT NULL,
            PRIMARY KEY (run_id, tag)
        ) WITHOUT ROWID;
        CREATE INDEX run_tags_by_tag ON run_tags (tag, run_id);

        -- Per metric key, the value at the highest step seen; NULL value means NaN.
        CREATE TABLE run_summary_metrics (
            run_id TEXT NOT NULL,
            key    TEXT NOT NULL,
            step   INTEGER NOT NULL,
            value  REAL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;

        CREATE TABLE artifact_versions (
            project        TEXT NOT NULL,
            name           TEXT NOT NULL,
            version        INTEGER NOT NULL,
            kind           TEXT NOT NULL,
            digest         TEXT NOT NULL,
            size           INTEGER NOT NULL,
            metadata       TEXT NOT NULL,
            created_by_run TEXT,
            created_at     INTEGER NOT NULL,
            files          TEXT NOT NULL,
            PRIMARY KEY (project, name, version)
        ) WITHOUT ROWID;

        CREATE TABLE artifact_aliases (
            project TEXT NOT NULL,
            name    TEXT NOT NULL,
            alias   TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (project, name, alias)
        ) WITHOUT ROWID;

        -- Which runs logged which versions (lineage: run -> logged -> version).
        CREATE TABLE run_artifacts (
            run_id  TEXT NOT NULL,
            project TEXT NOT NULL,
            name    TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (run_id, project, name, version)
        ) WITHOUT ROWID;
    "#,
    },
    Migration {
        name: "0002_crash_detection_index",
        sql: "CREATE INDEX runs_by_state_heartbeat ON runs (state, heartbeat_at);",
    },
    Migration {
        name: "0003_retention_and_rejections",
        sql: r#"
        ALTER TABLE projects ADD COLUMN runs_retention_days INTEGER;
        ALTER TABLE projects ADD COLUMN points_retention_days INTEGER;
        ALTER TABLE runs ADD COLUMN points_expired_at INTEGER;
        ALTER TABLE runs ADD COLUMN rejected_points INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE runs ADD COLUMN last_rejection TEXT;
        CREATE INDEX runs_by_ended ON runs (project, ended_at);
    "#,
    },
    Migration {
        name: "0004_run_fields",
        sql: r#"
        -- Config leaves and summary values, typed, so queries on any key use an index (docs/architecture.md,
        -- "Querying runs"). kind: 0 null, 1 bool, 2 number, 3 string, 4 list. NaN is a number with num NULL.
        CREATE TABLE run_fields (
            run_id  TEXT NOT NULL,
            field   TEXT NOT NULL,
            project TEXT NOT NULL,
            kind    INTEGER NOT NULL,
            num     REAL,
            txt     TEXT,
            PRIMARY KEY (run_id, field)
        ) WITHOUT ROWID;
        CREATE INDEX run_fields_by_number ON run_fields (project, field, num);
        CREATE INDEX run_fields_by_text ON run_fields (project, field, txt);
        -- Runs created before this table existed are indexed on the next start (SqliteMetadataStore::open).
        CREATE TABLE run_fields_backfill (pending INTEGER NOT NULL);
        INSERT INTO run_fields_backfill (pending) SELECT 1 WHERE EXISTS (SELECT 1 FROM runs);
    "#,
    },
    Migration {
        name: "0005_project_fields",
        sql: r#"
        -- Column discovery: per project, every config/summary field, each kind it takes and how many runs have
        -- it, kept exact by triggers so the catalog costs O(distinct keys) to read.
        CREATE TABLE project_fields (
            project TEXT NOT NULL,
            field   TEXT NOT NULL,
            kind    INTEGER NOT NULL,
            runs    INTEGER NOT NULL,
            PRIMARY KEY (project, field, kind)
        ) WITHOUT ROWID;
        INSERT INTO project_fields (project, field, kind, runs)
            SELECT project, field, kind, count(*) FROM run_fields GROUP BY project, field, kind;
        CREATE TRIGGER run_fields_counted_in AFTER INSERT ON run_fields BEGIN
            INSERT INTO project_fields (project, field, kind, runs) VALUES (NEW.project, NEW.field, NEW.kind, 1)
                ON CONFLICT (project, field, kind) DO UPDATE SET runs = runs + 1;
        END;
        CREATE TRIGGER run_fields_counted_out AFTER DELETE ON run_fields BEGIN
            UPDATE project_fields SET runs = runs - 1
                WHERE project = OLD.project AND field = OLD.field AND kind = OLD.kind;
            DELETE FROM project_fields
                WHERE project = OLD.project AND field = OLD.field AND kind = OLD.kind AND runs <= 0;
        END;
        CREATE TRIGGER run_fields_recounted AFTER UPDATE OF kind ON run_fields WHEN OLD.kind <> NEW.kind BEGIN
            UPDATE project_fields SET runs = runs - 1
                WHERE project = OLD.project AND field = OLD.field AND kind = OLD.kind;
            DELETE FROM project_fields
                WHERE project = OLD.project AND field = OLD.field AND kind = OLD.kind AND runs <= 0;
            INSERT INTO project_fields (project, field, kind, runs) VALUES (NEW.project, NEW.field, NEW.kind, 1)
                ON CONFLICT (project, field, kind) DO UPDATE SET runs = runs + 1;
        END;
    "#,
    },
];

pub(crate) const SERIES: &[Migration] = &[
    Migration {
        name: "0001_initial",
        sql: r#"
        CREATE TABLE series (
            id         INTEGER PRIMARY KEY,
            run_id     TEXT NOT NULL,
            key        TEXT NOT NULL,
            project    TEXT NOT NULL,
            count      INTEGER NOT NULL,
            last_step  INTEGER NOT NULL,
            last_value REAL,
            min        REAL,
            max        REAL,
            UNIQUE (run_id, key)
        );

        -- One row per point; NULL value means NaN (SQLite stores NaN as NULL).
        CREATE TABLE points (
            series_id INTEGER NOT NULL,
            step      INTEGER NOT NULL,
            value     REAL,
            time_ms   INTEGER NOT NULL,
            PRIMARY KEY (series_id, step)
        ) WITHOUT ROWID;
    "#,
    },
    Migration {
        name: "0002_packed_blocks",
        // The row-per-point tables become legacy_*; the engine packs their points into blocks when it opens.
        sql: r#"
        ALTER TABLE series RENAME TO legacy_series;
        ALTER TABLE points RENAME TO legacy_points;

        CREATE TABLE series (
            id      INTEGER PRIMARY KEY,
            project TEXT NOT NULL,
            run_id  TEXT NOT NULL,
            key     TEXT NOT NULL,
            UNIQUE (project, run_id, key)
        );

        -- Up to 1,024 points per block over disjoint step ranges (format: series/codec.rs).
        CREATE TABLE blocks (
            series_id  INTEGER NOT NULL,
            first_step INTEGER NOT NULL,
            last_step  INTEGER NOT NULL,
            count      INTEGER NOT NULL,
            data       BLOB NOT NULL,
            PRIMARY KEY (series_id, last_step)
        );

        -- Rollup cells of 2^level steps (series/pyramid.rs); floats are stored as their IEEE-754 bits so NaN
        -- survives (SQLite turns a NaN REAL into NULL).
        CREATE TABLE cells (
            series_id   INTEGER NOT NULL,
            level       INTEGER NOT NULL,
            cell        INTEGER NOT NULL,
            count       INTEGER NOT NULL,
            finite      INTEGER NOT NULL,
            sum         INTEGER NOT NULL,
            min         INTEGER NOT NULL,
            max         INTEGER NOT NULL,
            first_step  INTEGER NOT NULL,
            first_value INTEGER NOT NULL,
            last_step   INTEGER NOT NULL,
            last_value  INTEGER NOT NULL,
            PRIMARY KEY (series_id, level, cell)
        ) WITHOUT ROWID;

        -- The newest write-ahead log segment whose points are all in blocks.
        CREATE TABLE engine_state (
            name  TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        ) WITHOUT ROWID;
    "#,
    },
];

pub(crate) fn apply(conn: &mut Connection, migrations: &[Migration]) -> rusqlite::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))? as usize;
    for (index, migration) in migrations.iter().enumerate().skip(current) {
        tracing::info!(migration = migration.name, "applying schema migration");
        let tx = conn.transaction()?;
        tx.execute_batch(migration.sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
