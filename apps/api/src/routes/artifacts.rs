//! Artifacts: versions created from manifests of stored blobs, listed per run and per project, downloaded.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use trackstack_domain::model::{ArtifactFile, ArtifactVersion, JsonMap, NewArtifactVersion};
use trackstack_domain::{validate, Error};
use trackstack_server_kit::{ApiResult, Json};
use trackstack_store::ArtifactLogOutcome;
use utoipa::ToSchema;

use super::blobs::blob_response;
use super::runs::load_run;
use crate::ApiState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogArtifact {
    pub name: String,
    /// e.g. `model`, `dataset`; default `artifact`.
    #[serde(rename = "type", default = "default_kind")]
    pub kind: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonMap>,
    /// Every file of the version; each digest must name an uploaded blob.
    pub files: Vec<ArtifactFile>,
}

fn default_kind() -> String {
    "artifact".to_owned()
}

#[derive(Serialize, ToSchema)]
pub struct ArtifactList {
    pub artifacts: Vec<ArtifactVersion>,
}

/// Log an artifact version for a run from a manifest of uploaded blobs.
#[utoipa::path(post, path = "/api/v1/runs/{run_id}/artifacts", tag = "artifacts", request_body = LogArtifact,
    params(("run_id" = String, Path)),
    responses((status = 201, body = ArtifactVersion, description = "A new version"),
        (status = 200, body = ArtifactVersion, description = "The newest version already had these files"),
        (status = 400), (status = 404)))]
pub async fn log_artifact(
    State(state): State<ApiState>,
    Path(run_id): Path<String>,
    Json(body): Json<LogArtifact>,
) -> ApiResult<(StatusCode, axum::Json<ArtifactVersion>)> {
    validate::artifact_name(&body.name)?;
    validate::short_text("type", &body.kind)?;
    for (i, alias) in body.aliases.iter().enumerate() {
        validate::artifact_name(alias).map_err(|e| e.with_field(format!("aliases[{i}]")))?;
        if trackstack_domain::model::parse_version_label(alias).is_some() {
            return Err(Error::invalid(
                format!("aliases[{i}]"),
                format!("alias `{alias}` would shadow a version number"),
            )
            .into());
        }
    }
    let metadata = body.metadata.unwrap_or_default();
    validate::json_document("metadata", &metadata)?;
    let mut files = body.files;
    let (digest, size) = validate::artifact_manifest(&mut files)?;
    let run = load_run(&state, &run_id).await?;
    for (i, file) in files.iter().enumerate() {
        match state.stores.blobs.blob_size(&file.digest).await? {
            Some(stored) if stored == file.size => {}
            Some(stored) => {
                let message = format!("`{}` is {} bytes but its blob has {stored}", file.path, file.size);
                return Err(Error::invalid(format!("files[{i}].size"), message).into());
            }
            None => {
                let message = format!("blob {} of `{}` has not been uploaded", file.digest, file.path);
                return Err(Error::invalid(format!("files[{i}].digest"), message).into());
            }
        }
    }
    let new = NewArtifactVersion {
        project: run.project,
        name: body.name,
        kind: body.kind,
        aliases: validate::dedup_tags(body.aliases),
        metadata,
        run_id: run.id,
        files,
        digest,
        size,
    };
    Ok(match state.stores.metadata.log_artifact(new, Utc::now()).await? {
        ArtifactLogOutcome::Created(version) => (StatusCode::CREATED, axum::Json(version)),
        ArtifactLogOutcome::Existing(version) => (StatusCode::OK, axum::Json(version)),
    })
}

/// List the artifact versions a run logged.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/artifacts", tag = "artifacts", params(("run_id" = String, Path)),
    responses((status = 200, body = ArtifactList), (status = 404)))]
pub async fn list_run_artifacts(
    State(state): State<ApiState>,
    Path(run_id): Path<String>,
) -> ApiResult<axum::Json<ArtifactList>> {
    let run = load_run(&state, &run_id).await?;
    Ok(axum::Json(ArtifactList { artifacts: state.stores.metadata.list_run_artifacts(&run.id).await? }))
}

/// List the newest version of every artifact in a project.
#[utoipa::path(get, path = "/api/v1/projects/{project}/artifacts", tag = "artifacts", params(("project" = String, Path)),
    responses((status = 200, body = ArtifactList)))]
pub async fn list_project_artifacts(
    State(state): State<ApiState>,
    Path(project): Path<String>,
) -> ApiResult<axum::Json<ArtifactList>> {
    Ok(axum::Json(ArtifactList { artifacts: state.stores.metadata.list_project_artifacts(&project).await? }))
}

async fn find_version(state: &ApiState, project: &str, name: &str, version: &str) -> ApiResult<ArtifactVersion> {
    let found = state.stores.metadata.get_artifact_version(project, name, version).await?;
    Ok(found.ok_or_else(|| Error::not_found(format!("artifact `{project}/{name}:{version}` not found")))?)
}

/// Get an artifact version by `vN` or alias (`latest` is the newest).
#[utoipa::path(get, path = "/api/v1/projects/{project}/artifacts/{name}/versions/{version}", tag = "artifacts",
    params(("project" = String, Path), ("name" = String, Path), ("version" = String, Path, description = "`vN` or an alias")),
    responses((status = 200, body = ArtifactVersion), (status = 404)))]
pub async fn get_artifact_version(
    State(state): State<ApiState>,
    Path((project, name, version)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<ArtifactVersion>> {
    Ok(axum::Json(find_version(&state, &project, &name, &version).await?))
}

/// Download one file of an artifact version.
#[utoipa::path(get, path = "/api/v1/projects/{project}/artifacts/{name}/versions/{version}/files/{path}", tag = "artifacts",
    params(("project" = String, Path), ("name" = String, Path), ("version" = String, Path), ("path" = String, Path, description = "The file's path in the artifact")),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream"), (status = 404)))]
pub async fn download_artifact_file(
    State(state): State<ApiState>,
    Path((project, name, version, path)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    let found = find_version(&state, &project, &name, &version).await?;
    let file = found
        .files
        .iter()
        .find(|f| f.path == path)
        .ok_or_else(|| Error::not_found(format!("`{path}` is not a file of `{project}/{name}:{version}`")))?;
    blob_response(&state, &file.digest).await
}
