//! Projects: create, list, get, update (description and retention), and column discovery.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use trackstack_domain::limits::{FIELDS_DEFAULT, FIELDS_MAX};
use trackstack_domain::model::{Project, ProjectField, ProjectUpdate, Retention};
use trackstack_domain::{validate, Error};
use trackstack_server_kit::{ApiResult, Json, Query};
use utoipa::{IntoParams, ToSchema};

use crate::ApiState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// How long finished runs and their points are kept; omitted keeps them forever.
    #[serde(default)]
    pub retention: Retention,
}

/// A change to a project: fields left out stay as they are; `retention` replaces the whole policy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    pub description: Option<String>,
    pub retention: Option<Retention>,
}

#[derive(Serialize, ToSchema)]
pub struct ProjectList {
    pub projects: Vec<Project>,
}

/// Create a project.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = CreateProject,
    responses((status = 201, body = Project), (status = 400), (status = 409, description = "The name is taken")))]
pub async fn create_project(
    State(state): State<ApiState>,
    Json(body): Json<CreateProject>,
) -> ApiResult<(StatusCode, axum::Json<Project>)> {
    validate::project_name(&body.name)?;
    validate::notes(&body.description).map_err(|e| e.with_field("description"))?;
    validate::retention(&body.retention)?;
    let project =
        state.stores.metadata.create_project(&body.name, &body.description, body.retention, Utc::now()).await?;
    Ok((StatusCode::CREATED, axum::Json(project)))
}

/// List every project, by name.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", responses((status = 200, body = ProjectList)))]
pub async fn list_projects(State(state): State<ApiState>) -> ApiResult<axum::Json<ProjectList>> {
    Ok(axum::Json(ProjectList { projects: state.stores.metadata.list_projects().await? }))
}

/// Get one project.
#[utoipa::path(get, path = "/api/v1/projects/{project}", tag = "projects",
    params(("project" = String, Path)), responses((status = 200, body = Project), (status = 404)))]
pub async fn get_project(State(state): State<ApiState>, Path(project): Path<String>) -> ApiResult<axum::Json<Project>> {
    let found = state.stores.metadata.get_project(&project).await?;
    Ok(axum::Json(found.ok_or_else(|| Error::not_found(format!("project `{project}` not found")))?))
}

/// Change a project's description or retention. Retention is applied by the processor: finished runs older than
/// `runs_days` are deleted with their points; runs that ended more than `points_days` ago lose their points.
#[utoipa::path(patch, path = "/api/v1/projects/{project}", tag = "projects", request_body = UpdateProject,
    params(("project" = String, Path)), responses((status = 200, body = Project), (status = 400), (status = 404)))]
pub async fn update_project(
    State(state): State<ApiState>,
    Path(project): Path<String>,
    Json(body): Json<UpdateProject>,
) -> ApiResult<axum::Json<Project>> {
    if let Some(description) = &body.description {
        validate::notes(description).map_err(|e| e.with_field("description"))?;
    }
    if let Some(retention) = &body.retention {
        validate::retention(retention)?;
    }
    let update = ProjectUpdate { description: body.description, retention: body.retention };
    Ok(axum::Json(state.stores.metadata.update_project(&project, update).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FieldParams {
    /// Only fields containing this, ignoring ASCII case.
    pub search: Option<String>,
    /// At most this many fields (default 10,000, at most 100,000).
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct FieldList {
    pub fields: Vec<ProjectField>,
}

/// Column discovery: every config and summary field of the project's runs, with how many runs have it and of
/// which value types, sorted by field.
#[utoipa::path(get, path = "/api/v1/projects/{project}/fields", tag = "projects",
    params(("project" = String, Path), FieldParams), responses((status = 200, body = FieldList), (status = 400)))]
pub async fn list_fields(
    State(state): State<ApiState>,
    Path(project): Path<String>,
    Query(params): Query<FieldParams>,
) -> ApiResult<axum::Json<FieldList>> {
    let limit = params.limit.unwrap_or(FIELDS_DEFAULT);
    if !(1..=FIELDS_MAX).contains(&limit) {
        return Err(Error::invalid("limit", format!("limit must be 1 to {FIELDS_MAX}")).into());
    }
    let fields = state.stores.metadata.list_fields(&project, params.search.as_deref(), limit).await?;
    Ok(axum::Json(FieldList { fields }))
}
