//! Relational metadata: projects, runs (config, summary, tags, state) and the artifact index.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use trackstack_domain::model::{
    ArtifactVersion, NewArtifactVersion, NewRun, Project, Run, RunListQuery, RunPage, RunUpdate,
};

use crate::StoreResult;

/// The result of an idempotent run creation.
#[derive(Debug, Clone, PartialEq)]
pub enum RunCreateOutcome {
    Created(Run),
    /// A run with this id already existed in this project; it is returned (resumed if it had ended).
    Existing(Run),
}

/// The result of logging an artifact version.
#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactLogOutcome {
    Created(ArtifactVersion),
    /// The newest version of this name already had the same files; it was reused.
    Existing(ArtifactVersion),
}

#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Answers whether the backend is reachable and usable (a cheap round trip), for readiness probes.
    async fn check(&self) -> StoreResult<()>;
    /// Creates a project; `AlreadyExists` if the name is taken.
    async fn create_project(&self, name: &str, description: &str, now: DateTime<Utc>) -> StoreResult<Project>;
    async fn get_project(&self, name: &str) -> StoreResult<Option<Project>>;
    /// Every project, by name.
    async fn list_projects(&self) -> StoreResult<Vec<Project>>;

    /// Creates the run (and its project if missing), or returns the existing run with that id in that project.
    /// An existing run in a terminal state is resumed (back to `running`). `AlreadyExists` if the id belongs
    /// to another project.
    async fn create_run(&self, run: NewRun, now: DateTime<Utc>) -> StoreResult<RunCreateOutcome>;
    async fn get_run(&self, id: &str) -> StoreResult<Option<Run>>;
    /// Applies an update atomically; `NotFound` if the run does not exist.
    async fn update_run(&self, id: &str, update: RunUpdate, now: DateTime<Utc>) -> StoreResult<Run>;
    /// Deletes the run and its artifact links; returns whether it existed.
    async fn delete_run(&self, id: &str) -> StoreResult<bool>;
    async fn list_runs(&self, query: &RunListQuery) -> StoreResult<RunPage>;
    /// Marks every `running` run whose heartbeat is older than `heartbeat_before` as `crashed` (setting
    /// `ended_at` to `now`) and returns their ids. Idempotent, so two processors may run it at once.
    async fn mark_crashed_runs(&self, heartbeat_before: DateTime<Utc>, now: DateTime<Utc>) -> StoreResult<Vec<String>>;

    /// Logs an artifact version for a run, reusing the newest version when its digest is equal, and points
    /// the given aliases at the result.
    async fn log_artifact(&self, artifact: NewArtifactVersion, now: DateTime<Utc>) -> StoreResult<ArtifactLogOutcome>;
    /// Finds a version by `vN` or alias (`latest` is the newest).
    async fn get_artifact_version(
        &self,
        project: &str,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<ArtifactVersion>>;
    /// Versions a run logged, oldest first.
    async fn list_run_artifacts(&self, run_id: &str) -> StoreResult<Vec<ArtifactVersion>>;
    /// The newest version of every artifact name in a project, by name.
    async fn list_project_artifacts(&self, project: &str) -> StoreResult<Vec<ArtifactVersion>>;
}
