//! Projects: create, list, get.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use trackstack_domain::model::Project;
use trackstack_domain::{validate, Error};
use trackstack_server_kit::{ApiResult, Json};
use utoipa::ToSchema;

use crate::ApiState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
    #[serde(default)]
    pub description: String,
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
    let project = state.stores.metadata.create_project(&body.name, &body.description, Utc::now()).await?;
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
