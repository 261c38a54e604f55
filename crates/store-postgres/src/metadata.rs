//! [`MetadataStore`] on Postgres.

use std::collections::HashMap;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use trackstack_domain::float;
use trackstack_domain::model::*;
use trackstack_domain::query::Field;
use trackstack_store::run_filter::{
    aggregate_groups, compile_group_rows, compile_list, config_key_range, fold_field_counts, FieldRow, GroupRow,
    SqlDialect, SqlParam,
};
use trackstack_store::{ArtifactLogOutcome, MetadataStore, RunCreateOutcome, StoreError, StoreResult};

pub struct PostgresMetadataStore {
    pool: Pool,
    /// The URL as libpq understands it (schema parameter resolved), for the change listener.
    url: String,
    /// The NOTIFY channel: one per schema, so deployments sharing a database do not hear each other.
    channel: String,
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// Splits a `schema=NAME` parameter off a Postgres URL (libpq does not know it).
fn take_schema_param(url: &str) -> StoreResult<(String, Option<String>)> {
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_owned(), None)) };
    let mut schema = None;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.strip_prefix("schema=") {
            Some(name) => schema = Some(name.to_owned()),
            None => rest.push(pair),
        }
    }
    if let Some(name) = &schema {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(backend(format!("schema `{name}` must be 1-63 of a-z, 0-9 and _, not starting with a digit")));
        }
    }
    let url = if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
    Ok((url, schema))
}

impl PostgresMetadataStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`) with a pool of `max_connections` and migrates
    /// the schema. A `schema=NAME` URL parameter keeps Trackstack's tables in that Postgres schema (created if
    /// missing), so several deployments can share one database.
    pub async fn connect(url: &str, max_connections: usize) -> StoreResult<Self> {
        let (url, schema) = take_schema_param(url)?;
        let mut config =
            tokio_postgres::Config::from_str(&url).map_err(|e| backend(format!("bad postgres URL: {e}")))?;
        if let Some(schema) = &schema {
            let (client, connection) =
                config.connect(NoTls).await.map_err(|e| backend(format!("cannot connect to postgres: {e}")))?;
            let driver = tokio::spawn(connection);
            // Under the migration lock: two processes creating the same schema at once would otherwise race.
            let create = format!(
                "BEGIN; SELECT pg_advisory_xact_lock({}); CREATE SCHEMA IF NOT EXISTS {schema}; COMMIT;",
                crate::migrations::MIGRATION_LOCK
            );
            client.batch_execute(&create).await.map_err(backend)?;
            drop(client);
            let _ = driver.await;
            config.options(format!("-c search_path={schema}"));
        }
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(max_connections).build().map_err(backend)?;
        let mut client = pool.get().await.map_err(|e| backend(format!("cannot connect to postgres: {e}")))?;
        crate::migrations::migrate(&mut client).await.map_err(|e| backend(format!("migration failed: {e}")))?;
        backfill_run_fields(&mut client).await?;
        let channel = match &schema {
            Some(schema) => format!("trackstack_changes_{schema}"),
            None => "trackstack_changes".to_owned(),
        };
        Ok(Self { pool, url, channel })
    }

    /// A change feed over this database: every process connected to it sees every change.
    pub fn change_feed(&self) -> StoreResult<crate::PostgresChangeFeed> {
        crate::PostgresChangeFeed::start(&self.url, self.pool.clone(), self.channel.clone())
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| backend(format!("cannot get a postgres connection: {e}")))
    }
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn object(value: Value) -> JsonMap {
    match value {
        Value::Object(map) => map,
        _ => JsonMap::new(),
    }
}

const PROJECT_COLUMNS: &str = "name, description, created_at, runs_retention_days, points_retention_days";

fn project_from_row(row: &Row) -> Project {
    let days = |index: usize| row.get::<_, Option<i32>>(index).map(|days| days as u32);
    Project {
        name: row.get(0),
        description: row.get(1),
        created_at: time(row.get(2)),
        retention: Retention { runs_days: days(3), points_days: days(4) },
    }
}

/// Days as Postgres stores them (INTEGER); validation keeps them far below `i32::MAX`.
fn days_column(days: Option<u32>) -> Option<i32> {
    days.map(|days| days.min(i32::MAX as u32) as i32)
}

const RUN_COLUMNS: &str = "id, project, name, run_group, job_type, tags, notes, state, exit_code, config, \
     summary_set, metadata, created_at, started_at, ended_at, heartbeat_at, points_expired_at, rejected_points, \
     last_rejection";

fn run_from_row(row: &Row) -> (Run, JsonMap) {
    let state: String = row.get(7);
    let run = Run {
        id: row.get(0),
        project: row.get(1),
        name: row.get(2),
        group: row.get(3),
        job_type: row.get(4),
        tags: serde_json::from_value(row.get(5)).unwrap_or_default(),
        notes: row.get(6),
        state: state.parse().unwrap_or(RunState::Crashed),
        exit_code: row.get(8),
        config: object(row.get(9)),
        summary: JsonMap::new(),
        metadata: object(row.get(11)),
        created_at: time(row.get(12)),
        started_at: time(row.get(13)),
        ended_at: row.get::<_, Option<i64>>(14).map(time),
        heartbeat_at: time(row.get(15)),
        points_expired_at: row.get::<_, Option<i64>>(16).map(time),
        rejected_points: row.get::<_, i64>(17) as u64,
        last_rejection: row.get(18),
    };
    (run, object(row.get(10)))
}

/// Loads runs selected by `sql` (which must select [`RUN_COLUMNS`]) and joins in their summaries.
async fn query_runs(client: &impl GenericClient, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Run>> {
    let rows = client.query(sql, params).await.map_err(backend)?;
    let runs: Vec<(Run, JsonMap)> = rows.iter().map(run_from_row).collect();
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = runs.iter().map(|(run, _)| run.id.as_str()).collect();
    let metric_rows = client
        .query(
            "SELECT run_id, key, value FROM run_summary_metrics WHERE run_id = ANY($1) ORDER BY run_id, key",
            &[&ids],
        )
        .await
        .map_err(backend)?;
    let mut metrics: HashMap<String, JsonMap> = HashMap::new();
    for row in metric_rows {
        metrics.entry(row.get(0)).or_default().insert(row.get(1), float::to_json(row.get(2)));
    }
    Ok(runs
        .into_iter()
        .map(|(mut run, summary_set)| {
            let mut summary = metrics.remove(&run.id).unwrap_or_default();
            summary.extend(summary_set);
            run.summary = summary;
            run
        })
        .collect())
}

async fn load_run(client: &impl GenericClient, id: &str) -> StoreResult<Option<Run>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
    Ok(query_runs(client, &sql, &[&id]).await?.pop())
}

async fn replace_tags(client: &impl GenericClient, run_id: &str, tags: &[String]) -> StoreResult<()> {
    client.execute("DELETE FROM run_tags WHERE run_id = $1", &[&run_id]).await.map_err(backend)?;
    client
        .execute(
            "INSERT INTO run_tags (run_id, tag) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
            &[&run_id, &tags],
        )
        .await
        .map_err(backend)?;
    let tags_json = serde_json::to_value(tags).map_err(backend)?;
    client.execute("UPDATE runs SET tags = $2 WHERE id = $1", &[&run_id, &tags_json]).await.map_err(backend)?;
    Ok(())
}

/// Postgres's spelling of the query compiler's needs.
struct PostgresDialect;

const ASCII_UPPER: &str = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ'";
const ASCII_LOWER: &str = "'abcdefghijklmnopqrstuvwxyz'";

impl SqlDialect for PostgresDialect {
    fn placeholder(&self, index: usize) -> String {
        format!("${index}")
    }
    fn regex_match(&self, text: &str, pattern: &str) -> String {
        format!("{text} ~ {pattern}")
    }
    fn glob_match(&self, text: &str, pattern: &str) -> String {
        format!("{text} LIKE {pattern}")
    }
    fn glob_pattern(&self, glob: &str) -> String {
        // LIKE's default escape character is `\`.
        let mut pattern = String::with_capacity(glob.len());
        for c in glob.chars() {
            match c {
                '*' => pattern.push('%'),
                '?' => pattern.push('_'),
                '%' | '_' | '\\' => {
                    pattern.push('\\');
                    pattern.push(c);
                }
                c => pattern.push(c),
            }
        }
        pattern
    }
    fn ascii_lower(&self, text: &str) -> String {
        // lower() follows the database's locale; translate() changes ASCII letters only, as SQLite's lower() does.
        format!("translate({text}, {ASCII_UPPER}, {ASCII_LOWER})")
    }
    fn position(&self, haystack: &str, needle: &str) -> String {
        format!("strpos({haystack}, {needle})")
    }
    fn bytewise(&self, column: &str) -> String {
        format!("{column} COLLATE \"C\"")
    }
}

fn sql_value(param: SqlParam) -> Box<dyn ToSql + Sync + Send> {
    match param {
        SqlParam::Text(text) => Box::new(text),
        SqlParam::Real(number) => Box::new(number),
        SqlParam::Int(number) => Box::new(number),
    }
}

async fn insert_field_rows(
    client: &impl GenericClient,
    run_id: &str,
    project: &str,
    rows: &[FieldRow],
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let fields: Vec<&str> = rows.iter().map(|r| r.field.as_str()).collect();
    let kinds: Vec<i16> = rows.iter().map(|r| r.kind as i16).collect();
    let nums: Vec<Option<f64>> = rows.iter().map(|r| r.num).collect();
    let txts: Vec<Option<&str>> = rows.iter().map(|r| r.txt.as_deref()).collect();
    client
        .execute(
            "INSERT INTO run_fields (run_id, project, field, kind, num, txt)
             SELECT $1, $2, * FROM unnest($3::text[], $4::smallint[], $5::float8[], $6::text[])
             ON CONFLICT (run_id, field) DO UPDATE SET kind = excluded.kind, num = excluded.num, txt = excluded.txt",
            &[&run_id, &project, &fields, &kinds, &nums, &txts],
        )
        .await
        .map_err(backend)?;
    Ok(())
}

async fn run_project(client: &impl GenericClient, run_id: &str) -> StoreResult<String> {
    let row = client.query_one("SELECT project FROM runs WHERE id = $1", &[&run_id]).await.map_err(backend)?;
    Ok(row.get(0))
}

/// Re-indexes the given top-level config keys (and everything nested under them) from the stored config.
async fn reindex_config(
    client: &impl GenericClient,
    run_id: &str,
    config: &JsonMap,
    top_keys: &[&String],
) -> StoreResult<()> {
    for key in top_keys {
        let (exact, after, before) = config_key_range(key);
        client
            .execute(
                "DELETE FROM run_fields WHERE run_id = $1 AND (field = $2 OR (field > $3 AND field < $4))",
                &[&run_id, &exact, &after, &before],
            )
            .await
            .map_err(backend)?;
    }
    let project = run_project(client, run_id).await?;
    insert_field_rows(client, run_id, &project, &FieldRow::config_rows(config, Some(top_keys))).await
}

/// Re-indexes summary keys: the explicit value if one is set, else the value of the metric at its highest step.
async fn reindex_summary(
    client: &impl GenericClient,
    run_id: &str,
    summary_set: &JsonMap,
    keys: &[&str],
) -> StoreResult<()> {
    let project = run_project(client, run_id).await?;
    let metric_keys: Vec<&str> = keys.iter().copied().filter(|k| !summary_set.contains_key(*k)).collect();
    let metrics: HashMap<String, Option<f64>> = client
        .query(
            "SELECT key, value FROM run_summary_metrics WHERE run_id = $1 AND key = ANY($2)",
            &[&run_id, &metric_keys],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let mut rows = Vec::with_capacity(keys.len());
    let mut gone = Vec::new();
    for key in keys {
        match (summary_set.get(*key), metrics.get(*key)) {
            (Some(explicit), _) => rows.push(FieldRow::summary(key, explicit)),
            (None, Some(value)) => rows.push(FieldRow::metric(key, value.unwrap_or(f64::NAN))),
            (None, None) => gone.push(format!("summary.{key}")),
        }
    }
    if !gone.is_empty() {
        client
            .execute("DELETE FROM run_fields WHERE run_id = $1 AND field = ANY($2)", &[&run_id, &gone])
            .await
            .map_err(backend)?;
    }
    insert_field_rows(client, run_id, &project, &rows).await
}

/// Indexes every run that predates `run_fields`, once (under the migration lock, so one process does it).
async fn backfill_run_fields(client: &mut deadpool_postgres::Object) -> StoreResult<()> {
    let tx = client.transaction().await.map_err(backend)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&crate::migrations::MIGRATION_LOCK]).await.map_err(backend)?;
    let pending = tx.query_opt("SELECT 1 FROM run_fields_backfill LIMIT 1", &[]).await.map_err(backend)?;
    if pending.is_none() {
        return Ok(());
    }
    let runs = tx.query("SELECT id, project, config, summary_set FROM runs", &[]).await.map_err(backend)?;
    for row in runs {
        let (id, project): (String, String) = (row.get(0), row.get(1));
        let (config, summary_set) = (object(row.get(2)), object(row.get(3)));
        insert_field_rows(&tx, &id, &project, &FieldRow::config_rows(&config, None)).await?;
        let metric_keys: Vec<String> = tx
            .query("SELECT key FROM run_summary_metrics WHERE run_id = $1", &[&id])
            .await
            .map_err(backend)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let keys: Vec<&str> =
            metric_keys.iter().map(String::as_str).chain(summary_set.keys().map(String::as_str)).collect();
        reindex_summary(&tx, &id, &summary_set, &keys).await?;
    }
    tx.execute("DELETE FROM run_fields_backfill", &[]).await.map_err(backend)?;
    tx.commit().await.map_err(backend)
}

/// Applies an update inside the caller's transaction; the row lock serializes concurrent merges.
async fn apply_update(
    client: &impl GenericClient,
    id: &str,
    update: &RunUpdate,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let row = client
        .query_opt("SELECT config, summary_set FROM runs WHERE id = $1 FOR UPDATE", &[&id])
        .await
        .map_err(backend)?
        .ok_or_else(|| StoreError::NotFound(format!("run `{id}` not found")))?;
    let (config, summary_set): (Value, Value) = (row.get(0), row.get(1));
    let execute = |sql: &'static str, params: Vec<Box<dyn ToSql + Sync + Send>>| async move {
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        client.execute(sql, &refs).await.map_err(backend)
    };
    let id_param = || Box::new(id.to_owned()) as Box<dyn ToSql + Sync + Send>;
    if let Some(name) = &update.name {
        execute("UPDATE runs SET name = $2 WHERE id = $1", vec![id_param(), Box::new(name.clone())]).await?;
    }
    if let Some(group) = &update.group {
        execute("UPDATE runs SET run_group = $2 WHERE id = $1", vec![id_param(), Box::new(group.clone())]).await?;
    }
    if let Some(job_type) = &update.job_type {
        execute("UPDATE runs SET job_type = $2 WHERE id = $1", vec![id_param(), Box::new(job_type.clone())]).await?;
    }
    if let Some(notes) = &update.notes {
        execute("UPDATE runs SET notes = $2 WHERE id = $1", vec![id_param(), Box::new(notes.clone())]).await?;
    }
    if let Some(tags) = &update.tags {
        replace_tags(client, id, tags).await?;
    }
    if !update.config_merge.is_empty() {
        let mut merged = object(config);
        merged.extend(update.config_merge.clone());
        let top_keys: Vec<&String> = update.config_merge.keys().collect();
        reindex_config(client, id, &merged, &top_keys).await?;
        execute("UPDATE runs SET config = $2 WHERE id = $1", vec![id_param(), Box::new(Value::Object(merged))]).await?;
    }
    let mut summary = object(summary_set);
    if !update.summary_set.is_empty() {
        for (key, value) in &update.summary_set {
            match value {
                Value::Null => summary.remove(key),
                value => summary.insert(key.clone(), value.clone()),
            };
        }
        execute(
            "UPDATE runs SET summary_set = $2 WHERE id = $1",
            vec![id_param(), Box::new(Value::Object(summary.clone()))],
        )
        .await?;
    }
    if !update.summary_metrics.is_empty() {
        let keys: Vec<&str> = update.summary_metrics.iter().map(|m| m.key.as_str()).collect();
        let steps: Vec<i64> = update.summary_metrics.iter().map(|m| m.step).collect();
        let values: Vec<f64> = update.summary_metrics.iter().map(|m| m.value).collect();
        client
            .execute(
                "INSERT INTO run_summary_metrics (run_id, key, step, value)
                 SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::float8[])
                 ON CONFLICT (run_id, key) DO UPDATE SET step = excluded.step, value = excluded.value
                 WHERE excluded.step >= run_summary_metrics.step",
                &[&id, &keys, &steps, &values],
            )
            .await
            .map_err(backend)?;
    }
    if !update.summary_set.is_empty() || !update.summary_metrics.is_empty() {
        let touched: Vec<&str> = update
            .summary_set
            .keys()
            .map(String::as_str)
            .chain(update.summary_metrics.iter().map(|m| m.key.as_str()))
            .collect();
        reindex_summary(client, id, &summary, &touched).await?;
    }
    match update.state {
        Some(RunState::Running) => {
            execute(
                "UPDATE runs SET state = 'running', ended_at = NULL, exit_code = NULL WHERE id = $1",
                vec![id_param()],
            )
            .await?;
        }
        Some(state) => {
            execute(
                "UPDATE runs SET state = $2, exit_code = $3, ended_at = coalesce(ended_at, $4) WHERE id = $1",
                vec![id_param(), Box::new(state.as_str()), Box::new(update.exit_code), Box::new(millis(now))],
            )
            .await?;
        }
        None => {}
    }
    if update.heartbeat {
        execute(
            "UPDATE runs SET heartbeat_at = greatest(heartbeat_at, $2) WHERE id = $1",
            vec![id_param(), Box::new(millis(now))],
        )
        .await?;
    }
    Ok(())
}

const ARTIFACT_COLUMNS: &str =
    "v.project, v.name, v.version, v.kind, v.digest, v.size, v.metadata, v.created_by_run, v.created_at, v.files";

async fn query_artifacts(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<ArtifactVersion>> {
    let rows = client.query(sql, params).await.map_err(backend)?;
    let mut versions = Vec::with_capacity(rows.len());
    for row in rows {
        let (project, name, number): (String, String, i32) = (row.get(0), row.get(1), row.get(2));
        let mut aliases: Vec<String> = client
            .query(
                "SELECT alias FROM artifact_aliases WHERE project = $1 AND name = $2 AND version = $3 ORDER BY alias",
                &[&project, &name, &number],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let latest: Option<i32> = client
            .query_one(
                "SELECT max(version) FROM artifact_versions WHERE project = $1 AND name = $2",
                &[&project, &name],
            )
            .await
            .map_err(backend)?
            .get(0);
        if latest == Some(number) {
            aliases.push("latest".to_owned());
        }
        versions.push(ArtifactVersion {
            project,
            name,
            version: version_label(number as u32),
            kind: row.get(3),
            digest: row.get(4),
            size: row.get::<_, i64>(5) as u64,
            aliases,
            metadata: object(row.get(6)),
            created_by_run: row.get(7),
            created_at: time(row.get(8)),
            files: serde_json::from_value(row.get(9)).map_err(|e| backend(format!("corrupt manifest: {e}")))?,
        });
    }
    Ok(versions)
}

async fn find_artifact(
    client: &impl GenericClient,
    project: &str,
    name: &str,
    label: &str,
) -> StoreResult<Option<ArtifactVersion>> {
    let number: Option<i32> = match (label, parse_version_label(label)) {
        (_, Some(number)) => i32::try_from(number).ok(),
        ("latest", None) => client
            .query_one(
                "SELECT max(version) FROM artifact_versions WHERE project = $1 AND name = $2",
                &[&project, &name],
            )
            .await
            .map_err(backend)?
            .get(0),
        (alias, None) => client
            .query_opt(
                "SELECT version FROM artifact_aliases WHERE project = $1 AND name = $2 AND alias = $3",
                &[&project, &name, &alias],
            )
            .await
            .map_err(backend)?
            .map(|row| row.get(0)),
    };
    let Some(number) = number else { return Ok(None) };
    let sql =
        format!("SELECT {ARTIFACT_COLUMNS} FROM artifact_versions v WHERE project = $1 AND name = $2 AND version = $3");
    Ok(query_artifacts(client, &sql, &[&project, &name, &number]).await?.pop())
}

#[async_trait]
impl MetadataStore for PostgresMetadataStore {
    async fn check(&self) -> StoreResult<()> {
        self.client().await?.query_one("SELECT 1", &[]).await.map_err(backend)?;
        Ok(())
    }

    async fn create_project(
        &self,
        name: &str,
        description: &str,
        retention: Retention,
        now: DateTime<Utc>,
    ) -> StoreResult<Project> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                &format!("INSERT INTO projects ({PROJECT_COLUMNS}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"),
                &[
                    &name,
                    &description,
                    &millis(now),
                    &days_column(retention.runs_days),
                    &days_column(retention.points_days),
                ],
            )
            .await
            .map_err(backend)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(format!("project `{name}` already exists")));
        }
        Ok(Project { name: name.to_owned(), description: description.to_owned(), created_at: now, retention })
    }

    async fn get_project(&self, name: &str) -> StoreResult<Option<Project>> {
        let client = self.client().await?;
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE name = $1");
        let row = client.query_opt(&sql, &[&name]).await.map_err(backend)?;
        Ok(row.as_ref().map(project_from_row))
    }

    async fn update_project(&self, name: &str, update: ProjectUpdate) -> StoreResult<Project> {
        let client = self.client().await?;
        let (runs_days, points_days) = match update.retention {
            Some(retention) => (days_column(retention.runs_days), days_column(retention.points_days)),
            None => (None, None),
        };
        let sql = format!(
            "UPDATE projects SET description = coalesce($2, description),
                 runs_retention_days = CASE WHEN $3 THEN $4 ELSE runs_retention_days END,
                 points_retention_days = CASE WHEN $3 THEN $5 ELSE points_retention_days END
             WHERE name = $1 RETURNING {PROJECT_COLUMNS}"
        );
        let row = client
            .query_opt(&sql, &[&name, &update.description, &update.retention.is_some(), &runs_days, &points_days])
            .await
            .map_err(backend)?;
        row.as_ref().map(project_from_row).ok_or_else(|| StoreError::NotFound(format!("project `{name}` not found")))
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        let client = self.client().await?;
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY name");
        let rows = client.query(&sql, &[]).await.map_err(backend)?;
        Ok(rows.iter().map(project_from_row).collect())
    }

    async fn create_run(&self, new: NewRun, now: DateTime<Utc>) -> StoreResult<RunCreateOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO projects (name, description, created_at) VALUES ($1, '', $2) ON CONFLICT DO NOTHING",
            &[&new.project, &millis(now)],
        )
        .await
        .map_err(backend)?;
        let config = Value::Object(new.config.clone());
        let metadata = Value::Object(new.metadata.clone());
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO runs ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, '[]', $6, 'running', NULL, $7, '{{}}', $8, $9, $9, NULL, $9, NULL, 0, NULL)
                     ON CONFLICT (id) DO NOTHING"
                ),
                &[&new.id, &new.project, &new.name, &new.group, &new.job_type, &new.notes, &config, &metadata, &millis(now)],
            )
            .await
            .map_err(backend)?;
        let outcome = if inserted == 1 {
            replace_tags(&tx, &new.id, &new.tags).await?;
            insert_field_rows(&tx, &new.id, &new.project, &FieldRow::config_rows(&new.config, None)).await?;
            let run = load_run(&tx, &new.id).await?.ok_or_else(|| backend("run vanished"))?;
            RunCreateOutcome::Created(run)
        } else {
            let row = tx
                .query_one("SELECT project, state FROM runs WHERE id = $1 FOR UPDATE", &[&new.id])
                .await
                .map_err(backend)?;
            let (project, state): (String, String) = (row.get(0), row.get(1));
            if project != new.project {
                return Err(StoreError::run_id_taken(&new.id, &project));
            }
            if state != RunState::Running.as_str() {
                apply_update(&tx, &new.id, &RunUpdate::resume(), now).await?;
            }
            RunCreateOutcome::Existing(load_run(&tx, &new.id).await?.ok_or_else(|| backend("run vanished"))?)
        };
        tx.commit().await.map_err(backend)?;
        Ok(outcome)
    }

    async fn get_run(&self, id: &str) -> StoreResult<Option<Run>> {
        load_run(&self.client().await?, id).await
    }

    async fn update_run(&self, id: &str, update: RunUpdate, now: DateTime<Utc>) -> StoreResult<Run> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        apply_update(&tx, id, &update, now).await?;
        let run = load_run(&tx, id).await?.ok_or_else(|| StoreError::NotFound(format!("run `{id}` not found")))?;
        tx.commit().await.map_err(backend)?;
        Ok(run)
    }

    async fn delete_run(&self, id: &str) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        for table in ["run_tags", "run_summary_metrics", "run_artifacts", "run_fields"] {
            tx.execute(&format!("DELETE FROM {table} WHERE run_id = $1"), &[&id]).await.map_err(backend)?;
        }
        let deleted = tx.execute("DELETE FROM runs WHERE id = $1", &[&id]).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(deleted > 0)
    }

    async fn list_runs(&self, query: &RunListQuery) -> StoreResult<RunPage> {
        let client = self.client().await?;
        let columns: Vec<String> = RUN_COLUMNS.split(", ").map(|c| format!("r.{}", c.trim())).collect();
        let compiled = compile_list(query, &columns.join(", "), &PostgresDialect)?;
        let params: Vec<Box<dyn ToSql + Sync + Send>> = compiled.params.into_iter().map(sql_value).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let runs = query_runs(&client, &compiled.sql, &refs).await?;
        Ok(RunPage::from_overfetched(runs, query.limit, &query.order_or_default()))
    }

    async fn group_runs(
        &self,
        query: &RunListQuery,
        group_by: &[Field],
        columns: &[Field],
        limit: usize,
    ) -> StoreResult<RunGroups> {
        let client = self.client().await?;
        let compiled = compile_group_rows(query, group_by, columns, &PostgresDialect)?;
        let params: Vec<Box<dyn ToSql + Sync + Send>> = compiled.params.into_iter().map(sql_value).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let (keys, width) = (group_by.len(), columns.len());
        let rows = client
            .query(&compiled.sql, &refs)
            .await
            .map_err(backend)?
            .iter()
            .map(|row| GroupRow {
                key: (0..keys).map(|i| (row.get(3 * i), row.get(3 * i + 1), row.get(3 * i + 2))).collect(),
                values: (0..width).map(|j| row.get(3 * keys + j)).collect(),
            })
            .collect();
        Ok(aggregate_groups(rows, group_by, columns, limit))
    }

    async fn list_fields(&self, project: &str, search: Option<&str>, limit: usize) -> StoreResult<Vec<ProjectField>> {
        let client = self.client().await?;
        let search = search.unwrap_or_default().to_ascii_lowercase();
        let rows = client
            .query(
                &format!(
                    "SELECT field, kind::bigint, runs FROM project_fields
                     WHERE project = $1 AND field IN (
                         SELECT DISTINCT field FROM project_fields
                         WHERE project = $1 AND strpos(translate(field, {ASCII_UPPER}, {ASCII_LOWER}), $2) > 0
                         ORDER BY field LIMIT $3)
                     ORDER BY field, kind"
                ),
                &[&project, &search, &(limit as i64)],
            )
            .await
            .map_err(backend)?;
        Ok(fold_field_counts(rows.iter().map(|row| (row.get(0), row.get(1), row.get(2)))))
    }

    async fn mark_crashed_runs(&self, heartbeat_before: DateTime<Utc>, now: DateTime<Utc>) -> StoreResult<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "UPDATE runs SET state = 'crashed', ended_at = $2 WHERE state = 'running' AND heartbeat_at < $1 RETURNING id",
                &[&millis(heartbeat_before), &millis(now)],
            )
            .await
            .map_err(backend)?;
        let mut ids: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        ids.sort();
        Ok(ids)
    }

    async fn record_rejection(&self, run_id: &str, points: u64, reason: &str) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE runs SET rejected_points = rejected_points + $2, last_rejection = $3 WHERE id = $1",
                &[&run_id, &(points.min(i64::MAX as u64) as i64), &reason],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn retention_due(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<RetentionDue>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT r.project, r.id,
                        coalesce(r.ended_at < $1 - p.runs_retention_days * 86400000::bigint, false)
                 FROM projects p JOIN runs r ON r.project = p.name AND r.ended_at IS NOT NULL
                 WHERE r.state <> 'running' AND (
                     r.ended_at < $1 - p.runs_retention_days * 86400000::bigint
                     OR (r.ended_at < $1 - p.points_retention_days * 86400000::bigint
                         AND (r.points_expired_at IS NULL OR r.points_expired_at < r.ended_at)))
                 ORDER BY r.project, r.ended_at LIMIT $2",
                &[&millis(now), &(limit as i64)],
            )
            .await
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|row| RetentionDue {
                project: row.get(0),
                run_id: row.get(1),
                action: if row.get(2) { RetentionAction::DeleteRun } else { RetentionAction::DeletePoints },
            })
            .collect())
    }

    async fn mark_points_expired(&self, run_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute("UPDATE runs SET points_expired_at = $2 WHERE id = $1", &[&run_id, &millis(now)])
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn log_artifact(&self, artifact: NewArtifactVersion, now: DateTime<Utc>) -> StoreResult<ArtifactLogOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let NewArtifactVersion { project, name, kind, aliases, metadata, run_id, files, digest, size } = artifact;
        // Serializes version numbering per artifact name across processes.
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))", &[&project, &name])
            .await
            .map_err(backend)?;
        let newest = tx
            .query_opt(
                "SELECT version, digest FROM artifact_versions WHERE project = $1 AND name = $2 ORDER BY version DESC LIMIT 1",
                &[&project, &name],
            )
            .await
            .map_err(backend)?
            .map(|row| (row.get::<_, i32>(0), row.get::<_, String>(1)));
        let (number, created) = match newest {
            Some((number, newest_digest)) if newest_digest == digest => (number, false),
            Some((number, _)) => (number + 1, true),
            None => (0, true),
        };
        if created {
            let files_json = serde_json::to_value(&files).map_err(backend)?;
            tx.execute(
                "INSERT INTO artifact_versions (project, name, version, kind, digest, size, metadata, created_by_run, created_at, files)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[&project, &name, &number, &kind, &digest, &(size as i64), &Value::Object(metadata), &run_id, &millis(now), &files_json],
            )
            .await
            .map_err(backend)?;
        }
        for alias in aliases.iter().filter(|a| a.as_str() != "latest") {
            tx.execute(
                "INSERT INTO artifact_aliases (project, name, alias, version) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (project, name, alias) DO UPDATE SET version = excluded.version",
                &[&project, &name, alias, &number],
            )
            .await
            .map_err(backend)?;
        }
        tx.execute(
            "INSERT INTO run_artifacts (run_id, project, name, version) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&run_id, &project, &name, &number],
        )
        .await
        .map_err(backend)?;
        let version = find_artifact(&tx, &project, &name, &version_label(number as u32))
            .await?
            .ok_or_else(|| backend("artifact version vanished"))?;
        tx.commit().await.map_err(backend)?;
        Ok(if created { ArtifactLogOutcome::Created(version) } else { ArtifactLogOutcome::Existing(version) })
    }

    async fn get_artifact_version(
        &self,
        project: &str,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<ArtifactVersion>> {
        find_artifact(&self.client().await?, project, name, version).await
    }

    async fn list_run_artifacts(&self, run_id: &str) -> StoreResult<Vec<ArtifactVersion>> {
        let sql = format!(
            "SELECT {ARTIFACT_COLUMNS} FROM run_artifacts r JOIN artifact_versions v
               ON v.project = r.project AND v.name = r.name AND v.version = r.version
             WHERE r.run_id = $1 ORDER BY v.created_at, v.name, v.version"
        );
        query_artifacts(&self.client().await?, &sql, &[&run_id]).await
    }

    async fn list_project_artifacts(&self, project: &str) -> StoreResult<Vec<ArtifactVersion>> {
        let sql = format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifact_versions v WHERE v.project = $1
               AND v.version = (SELECT max(version) FROM artifact_versions w WHERE w.project = v.project AND w.name = v.name)
             ORDER BY v.name"
        );
        query_artifacts(&self.client().await?, &sql, &[&project]).await
    }
}

#[cfg(test)]
mod tests {
    use super::take_schema_param;

    #[test]
    fn the_schema_parameter_is_taken_off_the_url() {
        let (url, schema) = take_schema_param("postgres://u@h/db?sslmode=disable&schema=team_a").unwrap();
        assert_eq!((url.as_str(), schema.as_deref()), ("postgres://u@h/db?sslmode=disable", Some("team_a")));
        assert_eq!(take_schema_param("postgres://u@h/db").unwrap(), ("postgres://u@h/db".to_owned(), None));
        assert!(take_schema_param("postgres://u@h/db?schema=x;drop").is_err());
    }
}

#[cfg(test)]
mod conformance {
    use super::PostgresMetadataStore;

    /// A store in a schema of its own, so tests run in parallel on one database. The schemas are not dropped
    /// here: `make test` gives each run a fresh database and drops it afterwards.
    async fn open() -> Option<(Box<PostgresMetadataStore>, ())> {
        let url = trackstack_store::testsuite::external_service_url("TRACKSTACK_TEST_POSTGRES_URL")?;
        let separator = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{separator}schema=conformance_{:016x}", rand::random::<u64>());
        let store = PostgresMetadataStore::connect(&scoped, 4).await.expect("open the store");
        Some((Box::new(store), ()))
    }

    trackstack_store::metadata_store_conformance!(open());
}

#[cfg(test)]
mod concurrent_start {
    use super::PostgresMetadataStore;

    #[tokio::test]
    async fn processes_starting_together_on_a_new_schema_all_succeed() {
        let Some(url) = trackstack_store::testsuite::external_service_url("TRACKSTACK_TEST_POSTGRES_URL") else {
            return;
        };
        let separator = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{separator}schema=together_{:016x}", rand::random::<u64>());
        let starts = (0..4).map(|_| PostgresMetadataStore::connect(&scoped, 2));
        for result in futures_util::future::join_all(starts).await {
            result.expect("every process starts");
        }
    }
}
