//! [`MetadataStore`] on SQLite.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use serde_json::Value;
use trackstack_domain::float;
use trackstack_domain::model::*;
use trackstack_domain::query::Field;
use trackstack_store::run_filter::{
    aggregate_groups, compile_group_rows, compile_list, config_key_range, fold_field_counts, FieldRow, GroupRow,
    SqlDialect, SqlParam,
};
use trackstack_store::{ArtifactLogOutcome, MetadataStore, RunCreateOutcome, StoreError, StoreResult};

use crate::database::{Database, SqlResultExt};
use crate::migrations;

pub struct SqliteMetadataStore {
    db: Arc<Database>,
}

impl SqliteMetadataStore {
    pub fn open(path: &Path) -> StoreResult<Self> {
        let db = Database::open(path, migrations::METADATA)?;
        db.write_blocking(|tx| backfill_run_fields(tx))?;
        Ok(Self { db })
    }
}

/// SQLite's spelling of the query compiler's needs. `regexp` is registered on every connection
/// (`database.rs`); `GLOB` is case-sensitive with `*` and `?` as in the query language.
struct SqliteDialect;

impl SqlDialect for SqliteDialect {
    fn placeholder(&self, index: usize) -> String {
        format!("?{index}")
    }
    fn regex_match(&self, text: &str, pattern: &str) -> String {
        format!("regexp({pattern}, {text})")
    }
    fn glob_match(&self, text: &str, pattern: &str) -> String {
        format!("{text} GLOB {pattern}")
    }
    fn glob_pattern(&self, glob: &str) -> String {
        // GLOB's only other special character is `[`; `[[]` is a literal one.
        glob.replace('[', "[[]")
    }
    fn ascii_lower(&self, text: &str) -> String {
        // SQLite's lower() changes ASCII letters only.
        format!("lower({text})")
    }
    fn position(&self, haystack: &str, needle: &str) -> String {
        format!("instr({haystack}, {needle})")
    }
}

fn sql_value(param: SqlParam) -> Box<dyn rusqlite::ToSql> {
    match param {
        SqlParam::Text(text) => Box::new(text),
        SqlParam::Real(number) => Box::new(number),
        SqlParam::Int(number) => Box::new(number),
    }
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn to_json_text<T: serde::Serialize + ?Sized>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(StoreError::backend)
}

fn from_json_text<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Backend(format!("corrupt JSON column: {e}")))
}

const PROJECT_COLUMNS: &str = "name, description, created_at, runs_retention_days, points_retention_days";

fn project_from_row(row: &Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        name: row.get(0)?,
        description: row.get(1)?,
        created_at: time(row.get(2)?),
        retention: Retention { runs_days: row.get(3)?, points_days: row.get(4)? },
    })
}

fn load_project(conn: &Connection, name: &str) -> StoreResult<Option<Project>> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE name = ?1");
    conn.query_row(&sql, [name], project_from_row).optional().backend()
}

const RUN_COLUMNS: &str = "id, project, name, run_group, job_type, tags, notes, state, exit_code, config, \
     summary_set, metadata, created_at, started_at, ended_at, heartbeat_at, points_expired_at, rejected_points, \
     last_rejection";

/// A `runs` row before its summary metrics are joined in.
struct RunRow {
    run: Run,
    summary_set: JsonMap,
}

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<(RunRow, [String; 4])> {
    let texts =
        [row.get::<_, String>(5)?, row.get::<_, String>(9)?, row.get::<_, String>(10)?, row.get::<_, String>(11)?];
    let state: String = row.get(7)?;
    let run = Run {
        id: row.get(0)?,
        project: row.get(1)?,
        name: row.get(2)?,
        group: row.get(3)?,
        job_type: row.get(4)?,
        tags: Vec::new(),
        notes: row.get(6)?,
        state: state.parse().unwrap_or(RunState::Crashed),
        exit_code: row.get(8)?,
        config: JsonMap::new(),
        summary: JsonMap::new(),
        metadata: JsonMap::new(),
        created_at: time(row.get(12)?),
        started_at: time(row.get(13)?),
        ended_at: row.get::<_, Option<i64>>(14)?.map(time),
        heartbeat_at: time(row.get(15)?),
        points_expired_at: row.get::<_, Option<i64>>(16)?.map(time),
        rejected_points: row.get::<_, i64>(17)? as u64,
        last_rejection: row.get(18)?,
    };
    Ok((RunRow { run, summary_set: JsonMap::new() }, texts))
}

fn decode_run_row((mut row, [tags, config, summary_set, metadata]): (RunRow, [String; 4])) -> StoreResult<RunRow> {
    row.run.tags = from_json_text(&tags)?;
    row.run.config = from_json_text(&config)?;
    row.summary_set = from_json_text(&summary_set)?;
    row.run.metadata = from_json_text(&metadata)?;
    Ok(row)
}

/// Loads runs by a query over `runs` and joins in their summaries.
fn query_runs(conn: &Connection, sql: &str, params: &[&dyn rusqlite::ToSql]) -> StoreResult<Vec<Run>> {
    let mut stmt = conn.prepare_cached(sql).backend()?;
    let rows: Vec<_> = stmt.query_map(params, run_from_row).backend()?.collect::<Result<_, _>>().backend()?;
    let rows: Vec<RunRow> = rows.into_iter().map(decode_run_row).collect::<StoreResult<_>>()?;
    attach_summaries(conn, rows)
}

fn attach_summaries(conn: &Connection, rows: Vec<RunRow>) -> StoreResult<Vec<Run>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; rows.len()].join(",");
    let sql = format!(
        "SELECT run_id, key, value FROM run_summary_metrics WHERE run_id IN ({placeholders}) ORDER BY run_id, key"
    );
    let mut stmt = conn.prepare(&sql).backend()?;
    let ids = rows.iter().map(|r| r.run.id.as_str());
    let mut metrics: HashMap<String, JsonMap> = HashMap::new();
    let mut cursor = stmt.query(params_from_iter(ids)).backend()?;
    while let Some(row) = cursor.next().backend()? {
        let run_id: String = row.get(0).backend()?;
        let value: Option<f64> = row.get(2).backend()?;
        metrics.entry(run_id).or_default().insert(row.get(1).backend()?, float::to_json(value.unwrap_or(f64::NAN)));
    }
    Ok(rows
        .into_iter()
        .map(|RunRow { mut run, summary_set }| {
            let mut summary = metrics.remove(&run.id).unwrap_or_default();
            summary.extend(summary_set);
            run.summary = summary;
            run
        })
        .collect())
}

fn load_run(conn: &Connection, id: &str) -> StoreResult<Option<Run>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1");
    Ok(query_runs(conn, &sql, &[&id])?.pop())
}

fn replace_tags(tx: &Connection, run_id: &str, tags: &[String]) -> StoreResult<()> {
    tx.execute("DELETE FROM run_tags WHERE run_id = ?1", [run_id]).backend()?;
    let mut insert = tx.prepare_cached("INSERT OR IGNORE INTO run_tags (run_id, tag) VALUES (?1, ?2)").backend()?;
    for tag in tags {
        insert.execute(params![run_id, tag]).backend()?;
    }
    tx.execute("UPDATE runs SET tags = ?2 WHERE id = ?1", params![run_id, to_json_text(tags)?]).backend()?;
    Ok(())
}

fn insert_field_rows(tx: &Connection, run_id: &str, project: &str, rows: &[FieldRow]) -> StoreResult<()> {
    let mut insert = tx
        .prepare_cached(
            // An upsert, not INSERT OR REPLACE: REPLACE deletes without firing the delete trigger that keeps
            // `project_fields` counts.
            "INSERT INTO run_fields (run_id, field, project, kind, num, txt) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (run_id, field) DO UPDATE SET kind = excluded.kind, num = excluded.num, txt = excluded.txt",
        )
        .backend()?;
    for row in rows {
        insert.execute(params![run_id, row.field, project, row.kind, row.num, row.txt]).backend()?;
    }
    Ok(())
}

/// Re-indexes the given top-level config keys (and everything nested under them) from the stored config.
fn reindex_config(tx: &Connection, run_id: &str, config: &JsonMap, top_keys: &[&String]) -> StoreResult<()> {
    let mut delete = tx
        .prepare_cached("DELETE FROM run_fields WHERE run_id = ?1 AND (field = ?2 OR (field > ?3 AND field < ?4))")
        .backend()?;
    for key in top_keys {
        let (exact, after, before) = config_key_range(key);
        delete.execute(params![run_id, exact, after, before]).backend()?;
    }
    let project: String = tx.query_row("SELECT project FROM runs WHERE id = ?1", [run_id], |r| r.get(0)).backend()?;
    insert_field_rows(tx, run_id, &project, &FieldRow::config_rows(config, Some(top_keys)))
}

/// Re-indexes summary keys: the explicit value if one is set, else the value of the metric at its highest step.
fn reindex_summary(tx: &Connection, run_id: &str, summary_set: &JsonMap, keys: &[&str]) -> StoreResult<()> {
    let project: String = tx.query_row("SELECT project FROM runs WHERE id = ?1", [run_id], |r| r.get(0)).backend()?;
    let mut metric =
        tx.prepare_cached("SELECT value FROM run_summary_metrics WHERE run_id = ?1 AND key = ?2").backend()?;
    let mut delete = tx.prepare_cached("DELETE FROM run_fields WHERE run_id = ?1 AND field = ?2").backend()?;
    let mut rows = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(explicit) = summary_set.get(*key) {
            rows.push(FieldRow::summary(key, explicit));
            continue;
        }
        let value: Option<Option<f64>> = metric.query_row(params![run_id, key], |r| r.get(0)).optional().backend()?;
        match value {
            Some(value) => rows.push(FieldRow::metric(key, value.unwrap_or(f64::NAN))),
            None => {
                delete.execute(params![run_id, format!("summary.{key}")]).backend()?;
            }
        }
    }
    insert_field_rows(tx, run_id, &project, &rows)
}

/// Indexes every run that predates `run_fields`, once.
fn backfill_run_fields(tx: &Connection) -> StoreResult<()> {
    let pending: bool =
        tx.query_row("SELECT EXISTS (SELECT 1 FROM run_fields_backfill)", [], |r| r.get(0)).backend()?;
    if !pending {
        return Ok(());
    }
    let runs: Vec<(String, String, String, String)> = tx
        .prepare("SELECT id, project, config, summary_set FROM runs")
        .backend()?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .backend()?
        .collect::<Result<_, _>>()
        .backend()?;
    for (id, project, config, summary_set) in runs {
        let (config, summary_set): (JsonMap, JsonMap) = (from_json_text(&config)?, from_json_text(&summary_set)?);
        insert_field_rows(tx, &id, &project, &FieldRow::config_rows(&config, None))?;
        let metric_keys: Vec<String> = tx
            .prepare_cached("SELECT key FROM run_summary_metrics WHERE run_id = ?1")
            .backend()?
            .query_map([&id], |r| r.get(0))
            .backend()?
            .collect::<Result<_, _>>()
            .backend()?;
        let keys: Vec<&str> =
            metric_keys.iter().map(String::as_str).chain(summary_set.keys().map(String::as_str)).collect();
        reindex_summary(tx, &id, &summary_set, &keys)?;
    }
    tx.execute("DELETE FROM run_fields_backfill", []).backend()?;
    Ok(())
}

fn apply_update(tx: &Connection, id: &str, update: &RunUpdate, now: DateTime<Utc>) -> StoreResult<()> {
    let row: Option<(String, String)> = tx
        .query_row("SELECT config, summary_set FROM runs WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .backend()?;
    let Some((config_text, summary_text)) = row else {
        return Err(StoreError::NotFound(format!("run `{id}` not found")));
    };
    if let Some(name) = &update.name {
        tx.execute("UPDATE runs SET name = ?2 WHERE id = ?1", params![id, name]).backend()?;
    }
    if let Some(group) = &update.group {
        tx.execute("UPDATE runs SET run_group = ?2 WHERE id = ?1", params![id, group]).backend()?;
    }
    if let Some(job_type) = &update.job_type {
        tx.execute("UPDATE runs SET job_type = ?2 WHERE id = ?1", params![id, job_type]).backend()?;
    }
    if let Some(notes) = &update.notes {
        tx.execute("UPDATE runs SET notes = ?2 WHERE id = ?1", params![id, notes]).backend()?;
    }
    if let Some(tags) = &update.tags {
        replace_tags(tx, id, tags)?;
    }
    if !update.config_merge.is_empty() {
        let mut config: JsonMap = from_json_text(&config_text)?;
        config.extend(update.config_merge.clone());
        tx.execute("UPDATE runs SET config = ?2 WHERE id = ?1", params![id, to_json_text(&config)?]).backend()?;
        reindex_config(tx, id, &config, &update.config_merge.keys().collect::<Vec<_>>())?;
    }
    let mut summary: JsonMap = from_json_text(&summary_text)?;
    if !update.summary_set.is_empty() {
        for (key, value) in &update.summary_set {
            match value {
                Value::Null => summary.remove(key),
                value => summary.insert(key.clone(), value.clone()),
            };
        }
        tx.execute("UPDATE runs SET summary_set = ?2 WHERE id = ?1", params![id, to_json_text(&summary)?]).backend()?;
    }
    if !update.summary_metrics.is_empty() {
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO run_summary_metrics (run_id, key, step, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (run_id, key) DO UPDATE SET step = excluded.step, value = excluded.value
                 WHERE excluded.step >= run_summary_metrics.step",
            )
            .backend()?;
        for metric in &update.summary_metrics {
            upsert.execute(params![id, metric.key, metric.step, metric.value]).backend()?;
        }
    }
    if !update.summary_set.is_empty() || !update.summary_metrics.is_empty() {
        let touched: Vec<&str> = update
            .summary_set
            .keys()
            .map(String::as_str)
            .chain(update.summary_metrics.iter().map(|m| m.key.as_str()))
            .collect();
        reindex_summary(tx, id, &summary, &touched)?;
    }
    match update.state {
        Some(RunState::Running) => {
            tx.execute("UPDATE runs SET state = 'running', ended_at = NULL, exit_code = NULL WHERE id = ?1", [id])
                .backend()?;
        }
        Some(state) => {
            tx.execute(
                "UPDATE runs SET state = ?2, exit_code = ?3, ended_at = COALESCE(ended_at, ?4) WHERE id = ?1",
                params![id, state.as_str(), update.exit_code, millis(now)],
            )
            .backend()?;
        }
        None => {}
    }
    if update.heartbeat {
        tx.execute("UPDATE runs SET heartbeat_at = max(heartbeat_at, ?2) WHERE id = ?1", params![id, millis(now)])
            .backend()?;
    }
    Ok(())
}

fn artifact_from_row(row: &Row<'_>) -> rusqlite::Result<(ArtifactVersion, String, String)> {
    let version = ArtifactVersion {
        project: row.get(0)?,
        name: row.get(1)?,
        version: version_label(row.get(2)?),
        kind: row.get(3)?,
        digest: row.get(4)?,
        size: row.get::<_, i64>(5)? as u64,
        aliases: Vec::new(),
        metadata: JsonMap::new(),
        created_by_run: row.get(7)?,
        created_at: time(row.get(8)?),
        files: Vec::new(),
    };
    Ok((version, row.get(6)?, row.get(9)?))
}

const ARTIFACT_COLUMNS: &str =
    "v.project, v.name, v.version, v.kind, v.digest, v.size, v.metadata, v.created_by_run, v.created_at, v.files";

/// Loads artifact versions and fills in their aliases (stored ones plus `latest` for the newest).
fn query_artifacts(conn: &Connection, sql: &str, params: &[&dyn rusqlite::ToSql]) -> StoreResult<Vec<ArtifactVersion>> {
    let mut stmt = conn.prepare_cached(sql).backend()?;
    let rows: Vec<_> = stmt.query_map(params, artifact_from_row).backend()?.collect::<Result<_, _>>().backend()?;
    let mut aliases_stmt = conn
        .prepare_cached(
            "SELECT alias FROM artifact_aliases WHERE project = ?1 AND name = ?2 AND version = ?3 ORDER BY alias",
        )
        .backend()?;
    let mut latest_stmt =
        conn.prepare_cached("SELECT max(version) FROM artifact_versions WHERE project = ?1 AND name = ?2").backend()?;
    let mut versions = Vec::with_capacity(rows.len());
    for (mut version, metadata, files) in rows {
        version.metadata = from_json_text(&metadata)?;
        version.files = from_json_text(&files)?;
        let number = parse_version_label(&version.version).unwrap_or_default();
        let params = params![version.project, version.name, number];
        version.aliases =
            aliases_stmt.query_map(params, |r| r.get(0)).backend()?.collect::<Result<_, _>>().backend()?;
        let latest: Option<u32> =
            latest_stmt.query_row(params![version.project, version.name], |r| r.get(0)).backend()?;
        if latest == Some(number) {
            version.aliases.push("latest".to_owned());
        }
        versions.push(version);
    }
    Ok(versions)
}

fn find_artifact(conn: &Connection, project: &str, name: &str, label: &str) -> StoreResult<Option<ArtifactVersion>> {
    let number: Option<u32> = match (label, parse_version_label(label)) {
        (_, Some(number)) => Some(number),
        ("latest", None) => conn
            .query_row(
                "SELECT max(version) FROM artifact_versions WHERE project = ?1 AND name = ?2",
                params![project, name],
                |r| r.get(0),
            )
            .backend()?,
        (alias, None) => conn
            .query_row(
                "SELECT version FROM artifact_aliases WHERE project = ?1 AND name = ?2 AND alias = ?3",
                params![project, name, alias],
                |r| r.get(0),
            )
            .optional()
            .backend()?,
    };
    let Some(number) = number else { return Ok(None) };
    let sql =
        format!("SELECT {ARTIFACT_COLUMNS} FROM artifact_versions v WHERE project = ?1 AND name = ?2 AND version = ?3");
    Ok(query_artifacts(conn, &sql, &[&project, &name, &number])?.pop())
}

#[async_trait]
impl MetadataStore for SqliteMetadataStore {
    async fn check(&self) -> StoreResult<()> {
        self.db.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).backend()).await
    }

    async fn create_project(
        &self,
        name: &str,
        description: &str,
        retention: Retention,
        now: DateTime<Utc>,
    ) -> StoreResult<Project> {
        let project =
            Project { name: name.to_owned(), description: description.to_owned(), created_at: now, retention };
        self.db
            .write(move |tx| {
                let inserted = tx
                    .execute(
                        &format!("INSERT OR IGNORE INTO projects ({PROJECT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
                        params![
                            project.name,
                            project.description,
                            millis(project.created_at),
                            retention.runs_days,
                            retention.points_days
                        ],
                    )
                    .backend()?;
                if inserted == 0 {
                    return Err(StoreError::AlreadyExists(format!("project `{}` already exists", project.name)));
                }
                Ok(project)
            })
            .await
    }

    async fn get_project(&self, name: &str) -> StoreResult<Option<Project>> {
        let name = name.to_owned();
        self.db.read(move |conn| load_project(conn, &name)).await
    }

    async fn update_project(&self, name: &str, update: ProjectUpdate) -> StoreResult<Project> {
        let name = name.to_owned();
        self.db
            .write(move |tx| {
                if let Some(description) = &update.description {
                    tx.execute("UPDATE projects SET description = ?2 WHERE name = ?1", params![name, description])
                        .backend()?;
                }
                if let Some(retention) = update.retention {
                    tx.execute(
                        "UPDATE projects SET runs_retention_days = ?2, points_retention_days = ?3 WHERE name = ?1",
                        params![name, retention.runs_days, retention.points_days],
                    )
                    .backend()?;
                }
                load_project(tx, &name)?.ok_or_else(|| StoreError::NotFound(format!("project `{name}` not found")))
            })
            .await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        self.db
            .read(|conn| {
                let mut stmt =
                    conn.prepare_cached(&format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY name")).backend()?;
                let rows = stmt.query_map([], project_from_row).backend()?;
                rows.collect::<Result<_, _>>().backend()
            })
            .await
    }

    async fn create_run(&self, new: NewRun, now: DateTime<Utc>) -> StoreResult<RunCreateOutcome> {
        self.db
            .write(move |tx| {
                let existing: Option<(String, String)> = tx
                    .query_row("SELECT project, state FROM runs WHERE id = ?1", [&new.id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .backend()?;
                if let Some((project, state)) = existing {
                    if project != new.project {
                        return Err(StoreError::run_id_taken(&new.id, &project));
                    }
                    if state != RunState::Running.as_str() {
                                                apply_update(tx, &new.id, &RunUpdate::resume(), now)?;
                    }
                    let run = load_run(tx, &new.id)?.ok_or_else(|| StoreError::Backend("run vanished".into()))?;
                    return Ok(RunCreateOutcome::Existing(run));
                }
                tx.execute(
                    "INSERT OR IGNORE INTO projects (name, description, created_at) VALUES (?1, '', ?2)",
                    params![new.project, millis(now)],
                )
                .backend()?;
                tx.execute(
                    &format!("INSERT INTO runs ({RUN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, '[]', ?6, 'running', NULL, ?7, '{{}}', ?8, ?9, ?9, NULL, ?9, NULL, 0, NULL)"),
                    params![
                        new.id,
                        new.project,
                        new.name,
                        new.group,
                        new.job_type,
                        new.notes,
                        to_json_text(&new.config)?,
                        to_json_text(&new.metadata)?,
                        millis(now)
                    ],
                )
                .backend()?;
                replace_tags(tx, &new.id, &new.tags)?;
                insert_field_rows(tx, &new.id, &new.project, &FieldRow::config_rows(&new.config, None))?;
                let run = load_run(tx, &new.id)?.ok_or_else(|| StoreError::Backend("run vanished".into()))?;
                Ok(RunCreateOutcome::Created(run))
            })
            .await
    }

    async fn get_run(&self, id: &str) -> StoreResult<Option<Run>> {
        let id = id.to_owned();
        self.db.read(move |conn| load_run(conn, &id)).await
    }

    async fn update_run(&self, id: &str, update: RunUpdate, now: DateTime<Utc>) -> StoreResult<Run> {
        let id = id.to_owned();
        self.db
            .write(move |tx| {
                apply_update(tx, &id, &update, now)?;
                load_run(tx, &id)?.ok_or_else(|| StoreError::NotFound(format!("run `{id}` not found")))
            })
            .await
    }

    async fn delete_run(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.db
            .write(move |tx| {
                for table in ["run_tags", "run_summary_metrics", "run_artifacts", "run_fields"] {
                    tx.execute(&format!("DELETE FROM {table} WHERE run_id = ?1"), [&id]).backend()?;
                }
                Ok(tx.execute("DELETE FROM runs WHERE id = ?1", [&id]).backend()? > 0)
            })
            .await
    }

    async fn list_runs(&self, query: &RunListQuery) -> StoreResult<RunPage> {
        let query = query.clone();
        self.db
            .read(move |conn| {
                let columns: Vec<String> = RUN_COLUMNS.split(", ").map(|c| format!("r.{}", c.trim())).collect();
                let compiled = compile_list(&query, &columns.join(", "), &SqliteDialect)?;
                let values: Vec<Box<dyn rusqlite::ToSql>> = compiled.params.into_iter().map(sql_value).collect();
                let params: Vec<&dyn rusqlite::ToSql> = values.iter().map(|v| v.as_ref()).collect();
                let runs = query_runs(conn, &compiled.sql, &params)?;
                Ok(RunPage::from_overfetched(runs, query.limit, &query.order_or_default()))
            })
            .await
    }

    async fn group_runs(
        &self,
        query: &RunListQuery,
        group_by: &[Field],
        columns: &[Field],
        limit: usize,
    ) -> StoreResult<RunGroups> {
        let (query, group_by, columns) = (query.clone(), group_by.to_vec(), columns.to_vec());
        self.db
            .read(move |conn| {
                let compiled = compile_group_rows(&query, &group_by, &columns, &SqliteDialect)?;
                let values: Vec<Box<dyn rusqlite::ToSql>> = compiled.params.into_iter().map(sql_value).collect();
                let params: Vec<&dyn rusqlite::ToSql> = values.iter().map(|v| v.as_ref()).collect();
                let mut stmt = conn.prepare(&compiled.sql).backend()?;
                let (keys, width) = (group_by.len(), columns.len());
                let rows = stmt
                    .query_map(params.as_slice(), |row| {
                        let key = (0..keys)
                            .map(|i| Ok((row.get(3 * i)?, row.get(3 * i + 1)?, row.get(3 * i + 2)?)))
                            .collect::<rusqlite::Result<_>>()?;
                        let values = (0..width).map(|j| row.get(3 * keys + j)).collect::<rusqlite::Result<_>>()?;
                        Ok(GroupRow { key, values })
                    })
                    .backend()?
                    .collect::<Result<Vec<_>, _>>()
                    .backend()?;
                Ok(aggregate_groups(rows, &group_by, &columns, limit))
            })
            .await
    }

    async fn list_fields(&self, project: &str, search: Option<&str>, limit: usize) -> StoreResult<Vec<ProjectField>> {
        let (project, search) = (project.to_owned(), search.unwrap_or_default().to_ascii_lowercase());
        self.db
            .read(move |conn| {
                // `limit` bounds fields, not (field, kind) rows: a field has at most five kinds.
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT field, kind, runs FROM project_fields
                         WHERE project = ?1 AND field IN (
                             SELECT DISTINCT field FROM project_fields
                             WHERE project = ?1 AND instr(lower(field), ?2) > 0 ORDER BY field LIMIT ?3)
                         ORDER BY field, kind",
                    )
                    .backend()?;
                let rows = stmt
                    .query_map(params![project, search, limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .backend()?
                    .collect::<Result<Vec<(String, i64, i64)>, _>>()
                    .backend()?;
                Ok(fold_field_counts(rows))
            })
            .await
    }

    async fn mark_crashed_runs(&self, heartbeat_before: DateTime<Utc>, now: DateTime<Utc>) -> StoreResult<Vec<String>> {
        self.db
            .write(move |tx| {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE runs SET state = 'crashed', ended_at = ?2
                         WHERE state = 'running' AND heartbeat_at < ?1 RETURNING id",
                    )
                    .backend()?;
                let ids = stmt.query_map(params![millis(heartbeat_before), millis(now)], |r| r.get(0)).backend()?;
                let mut ids: Vec<String> = ids.collect::<Result<_, _>>().backend()?;
                ids.sort();
                Ok(ids)
            })
            .await
    }

    async fn record_rejection(&self, run_id: &str, points: u64, reason: &str) -> StoreResult<()> {
        let (run_id, reason) = (run_id.to_owned(), reason.to_owned());
        self.db
            .write(move |tx| {
                tx.execute(
                    "UPDATE runs SET rejected_points = rejected_points + ?2, last_rejection = ?3 WHERE id = ?1",
                    params![run_id, points as i64, reason],
                )
                .backend()?;
                Ok(())
            })
            .await
    }

    async fn retention_due(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<RetentionDue>> {
        self.db
            .read(move |conn| {
                // Per project, so each scan walks `runs_by_ended` for one project's finished runs.
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT r.project, r.id,
                                p.runs_retention_days IS NOT NULL AND r.ended_at < ?1 - p.runs_retention_days * 86400000
                         FROM projects p JOIN runs r ON r.project = p.name AND r.ended_at IS NOT NULL
                         WHERE r.state != 'running' AND (
                             r.ended_at < ?1 - p.runs_retention_days * 86400000
                             OR (r.ended_at < ?1 - p.points_retention_days * 86400000
                                 AND (r.points_expired_at IS NULL OR r.points_expired_at < r.ended_at)))
                         ORDER BY r.project, r.ended_at LIMIT ?2",
                    )
                    .backend()?;
                let rows = stmt.query_map(params![millis(now), limit as i64], |row| {
                    let delete_run: bool = row.get(2)?;
                    Ok(RetentionDue {
                        project: row.get(0)?,
                        run_id: row.get(1)?,
                        action: if delete_run { RetentionAction::DeleteRun } else { RetentionAction::DeletePoints },
                    })
                });
                let due: Vec<RetentionDue> = rows.backend()?.collect::<Result<_, _>>().backend()?;
                Ok(due)
            })
            .await
    }

    async fn mark_points_expired(&self, run_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let run_id = run_id.to_owned();
        self.db
            .write(move |tx| {
                tx.execute("UPDATE runs SET points_expired_at = ?2 WHERE id = ?1", params![run_id, millis(now)])
                    .backend()?;
                Ok(())
            })
            .await
    }

    async fn log_artifact(&self, artifact: NewArtifactVersion, now: DateTime<Utc>) -> StoreResult<ArtifactLogOutcome> {
        self.db
            .write(move |tx| {
                let NewArtifactVersion { project, name, kind, aliases, metadata, run_id, files, digest, size } = artifact;
                let newest: Option<(u32, String)> = tx
                    .query_row(
                        "SELECT version, digest FROM artifact_versions WHERE project = ?1 AND name = ?2 ORDER BY version DESC LIMIT 1",
                        params![project, name],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .backend()?;
                let (number, created) = match newest {
                    Some((number, newest_digest)) if newest_digest == digest => (number, false),
                    Some((number, _)) => (number + 1, true),
                    None => (0, true),
                };
                if created {
                    tx.execute(
                        "INSERT INTO artifact_versions (project, name, version, kind, digest, size, metadata, created_by_run, created_at, files)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        params![project, name, number, kind, digest, size as i64, to_json_text(&metadata)?, run_id, millis(now), to_json_text(&files)?],
                    )
                    .backend()?;
                }
                for alias in aliases.iter().filter(|a| a.as_str() != "latest") {
                    tx.execute(
                        "INSERT INTO artifact_aliases (project, name, alias, version) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (project, name, alias) DO UPDATE SET version = excluded.version",
                        params![project, name, alias, number],
                    )
                    .backend()?;
                }
                tx.execute(
                    "INSERT OR IGNORE INTO run_artifacts (run_id, project, name, version) VALUES (?1, ?2, ?3, ?4)",
                    params![run_id, project, name, number],
                )
                .backend()?;
                let version = find_artifact(tx, &project, &name, &version_label(number))?
                    .ok_or_else(|| StoreError::Backend("artifact version vanished".into()))?;
                Ok(if created { ArtifactLogOutcome::Created(version) } else { ArtifactLogOutcome::Existing(version) })
            })
            .await
    }

    async fn get_artifact_version(
        &self,
        project: &str,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<ArtifactVersion>> {
        let (project, name, version) = (project.to_owned(), name.to_owned(), version.to_owned());
        self.db.read(move |conn| find_artifact(conn, &project, &name, &version)).await
    }

    async fn list_run_artifacts(&self, run_id: &str) -> StoreResult<Vec<ArtifactVersion>> {
        let run_id = run_id.to_owned();
        self.db
            .read(move |conn| {
                let sql = format!(
                    "SELECT {ARTIFACT_COLUMNS} FROM run_artifacts r JOIN artifact_versions v
                       ON v.project = r.project AND v.name = r.name AND v.version = r.version
                     WHERE r.run_id = ?1 ORDER BY v.created_at, v.name, v.version"
                );
                query_artifacts(conn, &sql, &[&run_id])
            })
            .await
    }

    async fn list_project_artifacts(&self, project: &str) -> StoreResult<Vec<ArtifactVersion>> {
        let project = project.to_owned();
        self.db
            .read(move |conn| {
                let sql = format!(
                    "SELECT {ARTIFACT_COLUMNS} FROM artifact_versions v WHERE v.project = ?1
                       AND v.version = (SELECT max(version) FROM artifact_versions w WHERE w.project = v.project AND w.name = v.name)
                     ORDER BY v.name"
                );
                query_artifacts(conn, &sql, &[&project])
            })
            .await
    }
}

#[cfg(test)]
mod conformance {
    use super::SqliteMetadataStore;

    trackstack_store::metadata_store_conformance!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMetadataStore::open(&dir.path().join("meta.db")).unwrap();
        Some((Box::new(store), dir))
    });
}
