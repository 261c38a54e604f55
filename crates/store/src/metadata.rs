//! Relational metadata: projects, runs (config, summary, tags, state) and the artifact index.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use trackstack_domain::model::{
    ArtifactVersion, NewArtifactVersion, NewRun, Project, ProjectField, ProjectUpdate, Retention, RetentionDue, Run,
    RunGroups, RunListQuery, RunPage, RunUpdate,
};

use trackstack_domain::query::Field;

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
    async fn create_project(
        &self,
        name: &str,
        description: &str,
        retention: Retention,
        now: DateTime<Utc>,
    ) -> StoreResult<Project>;
    async fn get_project(&self, name: &str) -> StoreResult<Option<Project>>;
    /// Applies a change to a project; `NotFound` if it does not exist.
    async fn update_project(&self, name: &str, update: ProjectUpdate) -> StoreResult<Project>;
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
    /// Groups the runs `query` selects (its filters; not its order, page or cursor) by the values of
    /// `group_by`, with statistics of `columns`; at most `limit` groups.
    async fn group_runs(
        &self,
        query: &RunListQuery,
        group_by: &[Field],
        columns: &[Field],
        limit: usize,
    ) -> StoreResult<RunGroups>;
    /// The project's config and summary fields by name (column discovery), at most `limit`, only those
    /// containing `search` (ignoring ASCII case) when given.
    async fn list_fields(&self, project: &str, search: Option<&str>, limit: usize) -> StoreResult<Vec<ProjectField>>;
    /// Marks every `running` run whose heartbeat is older than `heartbeat_before` as `crashed` (setting
    /// `ended_at` to `now`) and returns their ids. Idempotent, so two processors may run it at once.
    async fn mark_crashed_runs(&self, heartbeat_before: DateTime<Utc>, now: DateTime<Utc>) -> StoreResult<Vec<String>>;
    /// Adds `points` to the run's count of refused points and remembers `reason` as the latest refusal.
    /// Does nothing if the run does not exist.
    async fn record_rejection(&self, run_id: &str, points: u64, reason: &str) -> StoreResult<()>;
    /// At most `limit` finished runs that their project's retention has expired as of `now`: runs past
    /// `runs_days` are to be deleted; runs past `points_days` whose points were not deleted since they last
    /// ended are to lose their points.
    async fn retention_due(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<RetentionDue>>;
    /// Records that the run's points were deleted at `now`.
    async fn mark_points_expired(&self, run_id: &str, now: DateTime<Utc>) -> StoreResult<()>;

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
