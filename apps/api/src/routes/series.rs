//! Metric reads: a run's keys, raw points, and bucketed series.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use trackstack_domain::limits::{BUCKETS_MAX, RAW_PAGE_DEFAULT, RAW_PAGE_MAX};
use trackstack_domain::model::{BucketedSeries, SeriesPoint, SeriesStats, StepRange};
use trackstack_domain::Error;
use trackstack_server_kit::{ApiResult, Query};
use utoipa::{IntoParams, ToSchema};

use super::runs::load_run;
use crate::ApiState;

#[derive(Serialize, ToSchema)]
pub struct MetricList {
    pub metrics: Vec<SeriesStats>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RawParams {
    /// The metric key, e.g. `train/loss`.
    pub key: String,
    /// First step to include.
    pub start: Option<i64>,
    /// Last step to include.
    pub end: Option<i64>,
    /// Points per page, 1–100000 (default 10000).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct RawSeries {
    pub key: String,
    pub points: Vec<SeriesPoint>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BucketParams {
    pub key: String,
    /// Number of buckets, 1–10000.
    pub buckets: u32,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

fn step_range(start: Option<i64>, end: Option<i64>) -> Result<StepRange, Error> {
    if let (Some(start), Some(end)) = (start, end) {
        if start > end {
            return Err(Error::invalid("start", format!("start {start} is after end {end}")));
        }
    }
    Ok(StepRange { start, end })
}

/// List the metric keys a run has logged, with counts, last step and value, and finite min/max.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/metrics", tag = "metrics", params(("run_id" = String, Path)),
    responses((status = 200, body = MetricList), (status = 404)))]
pub async fn list_metrics(
    State(state): State<ApiState>,
    Path(run_id): Path<String>,
) -> ApiResult<axum::Json<MetricList>> {
    let run = load_run(&state, &run_id).await?;
    Ok(axum::Json(MetricList { metrics: state.stores.series.list_series(&run.project, &run.id).await? }))
}

/// Read one series' raw points in step order, a page at a time.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/series", tag = "metrics", params(("run_id" = String, Path), RawParams),
    responses((status = 200, body = RawSeries), (status = 400), (status = 404)))]
pub async fn read_series(
    State(state): State<ApiState>,
    Path(run_id): Path<String>,
    Query(params): Query<RawParams>,
) -> ApiResult<axum::Json<RawSeries>> {
    let limit = params.limit.unwrap_or(RAW_PAGE_DEFAULT);
    if !(1..=RAW_PAGE_MAX).contains(&limit) {
        return Err(Error::invalid("limit", format!("limit must be 1 to {RAW_PAGE_MAX}")).into());
    }
    let range = step_range(params.start, params.end)?;
    let run = load_run(&state, &run_id).await?;
    let points = state.stores.series.read_raw(&run.project, &run.id, &params.key, range, params.cursor, limit).await?;
    let next_cursor = if points.len() == limit { points.last().map(|p| p.step) } else { None };
    Ok(axum::Json(RawSeries { key: params.key, points, next_cursor }))
}

/// Read one series cut into at most N aligned power-of-two step buckets (min, max, mean over finite values; count; last).
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/series/buckets", tag = "metrics",
    params(("run_id" = String, Path), BucketParams), responses((status = 200, body = BucketedSeries), (status = 400), (status = 404)))]
pub async fn read_buckets(
    State(state): State<ApiState>,
    Path(run_id): Path<String>,
    Query(params): Query<BucketParams>,
) -> ApiResult<axum::Json<BucketedSeries>> {
    if !(1..=BUCKETS_MAX).contains(&params.buckets) {
        return Err(Error::invalid("buckets", format!("buckets must be 1 to {BUCKETS_MAX}")).into());
    }
    let range = step_range(params.start, params.end)?;
    let run = load_run(&state, &run_id).await?;
    Ok(axum::Json(state.stores.series.read_buckets(&run.project, &run.id, &params.key, range, params.buckets).await?))
}
