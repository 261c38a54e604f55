//! Runs: create (idempotent, client-supplied ids), get, update, finish, delete, list.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use rand::Rng;
use serde::{Deserialize, Serialize};
use trackstack_domain::limits::{FIELDS_PER_QUERY_MAX, GROUPS_MAX, LIST_PAGE_DEFAULT, LIST_PAGE_MAX};
use trackstack_domain::model::{
    JsonMap, NewRun, Run, RunCursor, RunFilter, RunGroups, RunListQuery, RunState, RunUpdate,
};
use trackstack_domain::query::Field;
use trackstack_domain::{query, validate, Error, ErrorCode};
use trackstack_server_kit::{ApiResult, Json, Query};
use trackstack_store::RunCreateOutcome;
use utoipa::{IntoParams, ToSchema};

use crate::ApiState;

/// What to do when the requested run id already exists in the project.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IfExists {
    /// Return the stored run (200); creating is idempotent.
    #[default]
    Return,
    /// Answer 409 `already_exists`.
    Error,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// Client-chosen id (1–64 of `[A-Za-z0-9._-]`); generated when absent.
    pub id: Option<String>,
    /// Display name; defaults to the id.
    pub name: Option<String>,
    pub group: Option<String>,
    pub job_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub notes: String,
    #[schema(value_type = Option<Object>)]
    pub config: Option<JsonMap>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonMap>,
    #[serde(default)]
    pub if_exists: IfExists,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRun {
    pub name: Option<String>,
    /// An empty string clears the group.
    pub group: Option<String>,
    /// An empty string clears the job type.
    pub job_type: Option<String>,
    pub notes: Option<String>,
    /// Replaces the tag list.
    pub tags: Option<Vec<String>>,
    /// Shallow merge into the config.
    #[schema(value_type = Option<Object>)]
    pub config: Option<JsonMap>,
    /// Explicit summary values; `null` removes one.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<JsonMap>,
    pub state: Option<RunState>,
    pub exit_code: Option<i32>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishRun {
    /// Defaults to `finished` for exit code 0 (or none), else `failed`.
    pub state: Option<RunState>,
    pub exit_code: Option<i32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListRunsParams {
    /// Only runs in this state.
    pub state: Option<RunState>,
    /// Only runs with this tag.
    pub tag: Option<String>,
    /// Only runs whose name contains this, ignoring ASCII case.
    pub name: Option<String>,
    /// Sort keys separated by commas, `-` for descending: `-created_at` (default), `name`,
    /// `-summary.val/acc,config.lr`, … Runs lacking a value come last.
    pub sort: Option<String>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// A query-language condition (docs/query-language.md), e.g. `summary.val/acc > 0.9 and tags contains base`.
    pub filter: Option<String>,
}

/// A runs query: a query-language filter, a sort order and a page.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RunQueryBody {
    /// A query-language condition (docs/query-language.md); empty or absent matches every run.
    pub filter: Option<String>,
    /// Sort keys separated by commas, `-` for descending: `-created_at` (default), `name`,
    /// `-summary.val/acc,config.lr`, … Runs lacking a value come last.
    pub sort: Option<String>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Config and summary fields to return (`config.lr`, `summary.val/acc`); the runs' other config and summary
    /// entries are left out. With `group_by`: the numeric fields to compute statistics of.
    pub columns: Option<Vec<String>>,
    /// Fields to group the selected runs by (`config.optimizer`, `group`, …); the answer is then groups with
    /// counts and per-column count/mean/std/min/max/median, not runs.
    pub group_by: Option<Vec<String>>,
}

/// The answer to a runs query: a page of runs, or groups when `group_by` was given.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum RunQueryResult {
    Runs(RunList),
    Groups(RunGroups),
}

#[derive(Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<Run>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

fn generate_run_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..8).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

fn optional_text(field: &str, value: Option<String>) -> Result<Option<String>, Error> {
    match value {
        Some(value) => {
            validate::short_text(field, &value)?;
            Ok(Some(value))
        }
        None => Ok(None),
    }
}

/// Create a run, or return the existing run with that id in this project.
#[utoipa::path(post, path = "/api/v1/projects/{project}/runs", tag = "runs", request_body = CreateRun,
    params(("project" = String, Path, description = "Created if missing")),
    responses((status = 201, body = Run, description = "Created"), (status = 200, body = Run, description = "Already existed"),
        (status = 400), (status = 409, description = "The id exists in another project, or `if_exists` is `error`")))]
pub async fn create_run(
    State(state): State<ApiState>,
    Path(project): Path<String>,
    Json(body): Json<CreateRun>,
) -> ApiResult<(StatusCode, axum::Json<Run>)> {
    validate::project_name(&project).map_err(|e| e.with_field("project"))?;
    let id = match body.id {
        Some(id) => {
            validate::run_id(&id)?;
            id
        }
        None => generate_run_id(),
    };
    validate::tags(&body.tags)?;
    validate::notes(&body.notes)?;
    let config = body.config.unwrap_or_default();
    validate::json_document("config", &config)?;
    let metadata = body.metadata.unwrap_or_default();
    validate::json_document("metadata", &metadata)?;
    let new = NewRun {
        name: optional_text("name", body.name)?.unwrap_or_else(|| id.clone()),
        id,
        project,
        group: optional_text("group", body.group)?.filter(|g| !g.is_empty()),
        job_type: optional_text("job_type", body.job_type)?.filter(|j| !j.is_empty()),
        tags: validate::dedup_tags(body.tags),
        notes: body.notes,
        config,
        metadata,
    };
    match state.stores.metadata.create_run(new, Utc::now()).await? {
        RunCreateOutcome::Created(run) => {
            state.announce(&run).await;
            Ok((StatusCode::CREATED, axum::Json(run)))
        }
        RunCreateOutcome::Existing(run) if body.if_exists == IfExists::Return => Ok((StatusCode::OK, axum::Json(run))),
        RunCreateOutcome::Existing(run) => {
            Err(Error::new(ErrorCode::AlreadyExists, format!("run `{}` already exists", run.id))
                .with_field("id")
                .into())
        }
    }
}

pub(crate) async fn load_run(state: &ApiState, run_id: &str) -> ApiResult<Run> {
    let run = state.stores.metadata.get_run(run_id).await?;
    Ok(run.ok_or_else(|| Error::not_found(format!("run `{run_id}` not found")))?)
}

/// Get a run.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}", tag = "runs", params(("run_id" = String, Path)),
    responses((status = 200, body = Run), (status = 404)))]
pub async fn get_run(State(state): State<ApiState>, Path(run_id): Path<String>) -> ApiResult<axum::Json<Run>> {
    Ok(axum::Json(load_run(&state, &run_id).await?))
}

/// Update a run's fields, config (merged) and summary (explicit values).
#[utoipa::path(patch, path = "/api/v1/runs/{run_id}", tag = "runs", request_body = UpdateRun,
    params(("run_id" = String, Path)), responses((status = 200, body = Run), (status = 400), (status = 404)))]
pub async fn update_run(
    State(state): State<ApiState>,
    Path(run_id): Path<String>,
    Json(body): Json<UpdateRun>,
) -> ApiResult<axum::Json<Run>> {
    let clearable = |value: Option<String>| value.map(|v| if v.is_empty() { None } else { Some(v) });
    if let Some(tags) = &body.tags {
        validate::tags(tags)?;
    }
    if let Some(notes) = &body.notes {
        validate::notes(notes)?;
    }
    let config_merge = body.config.unwrap_or_default();
    validate::json_document("config", &config_merge)?;
    let summary_set = body.summary.unwrap_or_default();
    validate::json_document("summary", &summary_set)?;
    let state_change = match (body.state, body.exit_code) {
        (None, Some(code)) => Some(RunState::from_exit_code(Some(code))),
        (state, _) => state,
    };
    let update = RunUpdate {
        name: optional_text("name", body.name)?,
        group: clearable(optional_text("group", body.group)?),
        job_type: clearable(optional_text("job_type", body.job_type)?),
        notes: body.notes,
        tags: body.tags.map(validate::dedup_tags),
        config_merge,
        summary_set,
        state: state_change,
        exit_code: body.exit_code,
        ..Default::default()
    };
    let run = state.stores.metadata.update_run(&run_id, update, Utc::now()).await?;
    state.announce(&run).await;
    Ok(axum::Json(run))
}

/// Finish a run. Replaying it keeps the first end time.
#[utoipa::path(post, path = "/api/v1/runs/{run_id}/finish", tag = "runs", request_body = FinishRun,
    params(("run_id" = String, Path)), responses((status = 200, body = Run), (status = 400), (status = 404)))]
pub async fn finish_run(
    State(state): State<ApiState>,
    Path(run_id): Path<String>,
    Json(body): Json<FinishRun>,
) -> ApiResult<axum::Json<Run>> {
    let final_state = body.state.unwrap_or(RunState::from_exit_code(body.exit_code));
    if !final_state.is_terminal() {
        return Err(Error::invalid("state", "a run finishes in finished, failed, crashed or killed").into());
    }
    let update =
        RunUpdate { state: Some(final_state), exit_code: body.exit_code, heartbeat: true, ..Default::default() };
    let run = state.stores.metadata.update_run(&run_id, update, Utc::now()).await?;
    state.announce(&run).await;
    Ok(axum::Json(run))
}

/// Delete a run with its points and artifact links.
#[utoipa::path(delete, path = "/api/v1/runs/{run_id}", tag = "runs", params(("run_id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404)))]
pub async fn delete_run(State(state): State<ApiState>, Path(run_id): Path<String>) -> ApiResult<StatusCode> {
    let run = load_run(&state, &run_id).await?;
    // Points first: if the second step fails, the run is still listed and a retried delete finishes the job.
    state.stores.series.delete_run(&run.project, &run.id).await?;
    state.stores.metadata.delete_run(&run_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn encode_cursor(cursor: &RunCursor) -> String {
    hex::encode(serde_json::to_vec(cursor).expect("cursors serialize"))
}

fn decode_cursor(text: &str) -> Result<RunCursor, Error> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| Error::invalid("cursor", "not a cursor returned by this endpoint"))
}

/// List a project's runs, newest first by default, one page at a time.
#[utoipa::path(get, path = "/api/v1/projects/{project}/runs", tag = "runs",
    params(("project" = String, Path), ListRunsParams), responses((status = 200, body = RunList), (status = 400)))]
pub async fn list_runs(
    State(state): State<ApiState>,
    Path(project): Path<String>,
    Query(params): Query<ListRunsParams>,
) -> ApiResult<axum::Json<RunList>> {
    let ListRunsParams { state: run_state, tag, name, sort, limit, cursor, filter } = params;
    let mut query = page_query(project, filter.as_deref(), sort.as_deref(), limit, cursor.as_deref())?;
    query.state = run_state;
    query.tag = tag;
    query.name_contains = name.filter(|n| !n.is_empty());
    run_page(&state, &query).await
}

/// Query a project's runs with the query language, one page at a time.
#[utoipa::path(post, path = "/api/v1/projects/{project}/runs/query", tag = "runs", request_body = RunQueryBody,
    params(("project" = String, Path)),
    responses((status = 200, body = RunQueryResult), (status = 400, description = "A malformed filter: the message gives the position and what was expected")))]
pub async fn query_runs(
    State(state): State<ApiState>,
    Path(project): Path<String>,
    Json(body): Json<RunQueryBody>,
) -> ApiResult<axum::Json<RunQueryResult>> {
    let columns = fields("columns", body.columns.as_deref().unwrap_or_default())?;
    if let Some(group_by) = &body.group_by {
        let group_by = fields("group_by", group_by)?;
        if group_by.is_empty() {
            return Err(Error::invalid("group_by", "give at least one field to group by").into());
        }
        let limit = body.limit.unwrap_or(LIST_PAGE_DEFAULT);
        if !(1..=GROUPS_MAX).contains(&limit) {
            return Err(Error::invalid("limit", format!("limit must be 1 to {GROUPS_MAX} groups")).into());
        }
        let query = page_query(project, body.filter.as_deref(), None, Some(1), None)?;
        let groups = state.stores.metadata.group_runs(&query, &group_by, &columns, limit).await?;
        return Ok(axum::Json(RunQueryResult::Groups(groups)));
    }
    let query = page_query(project, body.filter.as_deref(), body.sort.as_deref(), body.limit, body.cursor.as_deref())?;
    let axum::Json(mut page) = run_page(&state, &query).await?;
    if body.columns.is_some() {
        for run in &mut page.runs {
            keep_columns(run, &columns);
        }
    }
    Ok(axum::Json(RunQueryResult::Runs(page)))
}

/// Parses a list of field names given in request field `name`.
fn fields(name: &str, texts: &[String]) -> Result<Vec<Field>, Error> {
    if texts.len() > FIELDS_PER_QUERY_MAX {
        return Err(Error::invalid(name, format!("{} fields; the limit is {FIELDS_PER_QUERY_MAX}", texts.len())));
    }
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| query::parse_field(text).map_err(|error| error.into_error(&format!("{name}[{i}]"))))
        .collect()
}

/// Leaves only the requested config leaves and summary keys in `run`.
fn keep_columns(run: &mut Run, columns: &[Field]) {
    let wanted =
        |prefix: fn(&Field) -> Option<&String>| -> Vec<&String> { columns.iter().filter_map(prefix).collect() };
    let config_keys = wanted(|f| if let Field::Config(k) = f { Some(k) } else { None });
    let summary_keys = wanted(|f| if let Field::Summary(k) = f { Some(k) } else { None });
    let mut config = JsonMap::new();
    for (path, value) in query::flatten_config(&run.config) {
        if config_keys.contains(&&path) {
            config.insert(path, value.clone());
        }
    }
    run.config = config;
    run.summary.retain(|key, _| summary_keys.contains(&key));
}

fn page_query(
    project: String,
    filter: Option<&str>,
    sort: Option<&str>,
    limit: Option<usize>,
    cursor: Option<&str>,
) -> Result<RunListQuery, Error> {
    let limit = limit.unwrap_or(LIST_PAGE_DEFAULT);
    if !(1..=LIST_PAGE_MAX).contains(&limit) {
        return Err(Error::invalid("limit", format!("limit must be 1 to {LIST_PAGE_MAX}")));
    }
    let filter = match filter.map(query::parse).transpose() {
        Ok(expr) => expr.flatten().map(|expr| RunFilter { expr, now_ms: Utc::now().timestamp_millis() }),
        Err(error) => return Err(error.into_error("filter")),
    };
    Ok(RunListQuery {
        project,
        filter,
        order: query::parse_order(sort.unwrap_or_default()).map_err(|error| error.into_error("sort"))?,
        limit,
        after: cursor.map(decode_cursor).transpose()?,
        ..Default::default()
    })
}

async fn run_page(state: &ApiState, query: &RunListQuery) -> ApiResult<axum::Json<RunList>> {
    let page = state.stores.metadata.list_runs(query).await?;
    Ok(axum::Json(RunList { runs: page.runs, next_cursor: page.next.as_ref().map(encode_cursor) }))
}

/// What a bulk operation does to every run its filter selects.
#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    /// Delete the runs with their points and artifact links.
    Delete,
    /// Add `tags` to each run.
    Tag,
    /// Remove `tags` from each run.
    Untag,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// The runs to act on, in the query language; required (`created_at > "1970-01-01"` selects every run).
    pub filter: String,
    pub action: BulkAction,
    /// For `tag` and `untag`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Count the runs and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Serialize, ToSchema)]
pub struct BulkOutcome {
    /// Runs the filter selected.
    pub matched: u64,
    /// Runs changed (0 on a dry run; a tag a run already had does not change it).
    pub changed: u64,
    pub dry_run: bool,
}

/// Runs selected per page while a bulk operation collects its targets.
const BULK_PAGE: usize = 1_000;

/// Delete, tag or untag every run a query selects, or count them first with `dry_run`.
#[utoipa::path(post, path = "/api/v1/projects/{project}/runs/bulk", tag = "runs", request_body = BulkBody,
    params(("project" = String, Path)), responses((status = 200, body = BulkOutcome), (status = 400)))]
pub async fn bulk_runs(
    State(state): State<ApiState>,
    Path(project): Path<String>,
    Json(body): Json<BulkBody>,
) -> ApiResult<axum::Json<BulkOutcome>> {
    if body.filter.trim().is_empty() {
        return Err(Error::invalid(
            "filter",
            "a bulk operation needs a filter (`created_at > \"1970-01-01\"` selects every run)",
        )
        .into());
    }
    match body.action {
        BulkAction::Tag | BulkAction::Untag if body.tags.is_empty() => {
            return Err(Error::invalid("tags", "give the tags to add or remove").into())
        }
        BulkAction::Delete if !body.tags.is_empty() => {
            return Err(Error::invalid("tags", "`delete` takes no tags").into())
        }
        _ => validate::tags(&body.tags)?,
    }
    // Targets are collected first, so acting on them cannot disturb the paging.
    let mut query = page_query(project, Some(&body.filter), Some("created_at"), Some(BULK_PAGE), None)?;
    let mut targets: Vec<Run> = Vec::new();
    loop {
        let page = state.stores.metadata.list_runs(&query).await?;
        targets.extend(page.runs);
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    let mut outcome = BulkOutcome { matched: targets.len() as u64, changed: 0, dry_run: body.dry_run };
    if body.dry_run {
        return Ok(axum::Json(outcome));
    }
    for run in targets {
        let tags = match body.action {
            BulkAction::Delete => {
                state.stores.series.delete_run(&run.project, &run.id).await?;
                outcome.changed += state.stores.metadata.delete_run(&run.id).await? as u64;
                continue;
            }
            BulkAction::Tag => {
                let mut tags = run.tags.clone();
                tags.extend(body.tags.iter().filter(|t| !run.tags.contains(t)).cloned());
                tags
            }
            BulkAction::Untag => run.tags.iter().filter(|t| !body.tags.contains(t)).cloned().collect(),
        };
        if tags != run.tags {
            validate::tags(&tags)?;
            let update = RunUpdate { tags: Some(tags), ..Default::default() };
            state.stores.metadata.update_run(&run.id, update, Utc::now()).await?;
            outcome.changed += 1;
        }
    }
    Ok(axum::Json(outcome))
}
