//! W1: create many runs (config, summary, tags, states, groups), then time the runs table's queries.

use std::time::{Duration, Instant};

use crate::generators::{run_create, run_update, Random, TAG_VOCABULARY};
use crate::report::{Budget, Figure, Percentiles};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::json;

use super::Target;

const PAGE: usize = 50;
/// Issue 5's budget for every runs-table query at 100k runs.
const QUERY_P95_MS: f64 = 50.0;

pub async fn run(
    target: &Target,
    runs: usize,
    repeats: usize,
    deep_page: usize,
) -> anyhow::Result<(Vec<Figure>, Vec<String>)> {
    let project = "bench-w1";
    target.ensure_project(project).await?;
    // A server that already holds the dataset (`--url` at a kept data dir) is queried as it is.
    let present = target.get(&format!("/api/v1/projects/{project}/fields?search=param_00&limit=1")).await?;
    let reuse = present["fields"][0]["runs"].as_u64().is_some_and(|n| n as usize >= runs);
    let started = Instant::now();
    stream::iter(if reuse { 0..0 } else { 0..runs })
        .map(|index| async move {
            let mut random = Random::new(index as u64 + 1);
            let create = run_create(index, &mut random);
            target.post(&format!("/api/v1/projects/{project}/runs"), &create).await?;
            let mut update = run_update(&mut random);
            update["run_id"] = create["id"].clone();
            target.post("/api/v1/ingest", &update).await?;
            anyhow::Ok(())
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    let elapsed = started.elapsed();
    let mut figures = Vec::new();
    if !reuse {
        figures.push(Figure::new(
            "W1",
            &format!("create {runs} runs (create + summary/state)"),
            runs as f64 / elapsed.as_secs_f64(),
            "runs/s",
            Budget::AtLeast(2_000.0),
        ));
    }

    let base = format!("/api/v1/projects/{project}/runs?limit={PAGE}");
    let queries = [
        ("newest page", base.clone()),
        ("filter by tag", format!("{base}&tag=tag-{:02}", 7 % TAG_VOCABULARY)),
        ("filter by state", format!("{base}&state=failed")),
        ("name substring", format!("{base}&name=run-0012")),
        ("sort by name", format!("{base}&sort=name")),
    ];
    for (name, path) in &queries {
        figures.extend(time_query(target, path, repeats).await?.figures("W1", name, Budget::AtMost(QUERY_P95_MS)));
    }

    // The runs query language (issue 5): filters and sorts on config/summary keys, grouping, column discovery.
    let query_path = format!("/api/v1/projects/{project}/runs/query");
    let queries = [
        (
            "query: summary filter + sort",
            json!({"filter": "summary.metric_1 > 5", "sort": "-summary.metric_1", "limit": PAGE}),
        ),
        (
            "query: config filters",
            json!({"filter": "config.optimizer = adam and config.model.layers >= 16 and config.use_amp = true", "limit": PAGE}),
        ),
        (
            "query: tags + state + time",
            json!({"filter": "tags contains \"tag-07\" and state in (finished, crashed) and created_at > -30d", "limit": PAGE}),
        ),
        ("query: sort by config key", json!({"sort": "config.lr", "limit": PAGE})),
        ("query: name glob", json!({"filter": "name ~ \"run-0012*\"", "limit": PAGE})),
        (
            "group by optimizer: mean/std of a metric",
            json!({"group_by": ["config.optimizer"], "columns": ["summary.metric_0", "summary.metric_1"]}),
        ),
    ];
    for (name, body) in &queries {
        let timed = time_post(target, &query_path, body, repeats).await?;
        figures.extend(timed.figures("W1", name, Budget::AtMost(QUERY_P95_MS)));
    }
    let discovery = format!("/api/v1/projects/{project}/fields");
    figures.extend(time_query(target, &discovery, repeats).await?.figures(
        "W1",
        "column discovery",
        Budget::AtMost(QUERY_P95_MS),
    ));

    // Walk to the deep page once, then time fetching it.
    let filtered = format!("{base}&state=finished");
    let mut cursor: Option<String> = None;
    let mut reached = 1;
    while reached < deep_page {
        let path = match &cursor {
            Some(c) => format!("{filtered}&cursor={c}"),
            None => filtered.clone(),
        };
        let page = target.get(&path).await?;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        reached += 1;
    }
    let deep = match &cursor {
        Some(c) => format!("{filtered}&cursor={c}"),
        None => filtered.clone(),
    };
    let label = format!("page {reached} of a filtered query");
    figures.extend(time_query(target, &deep, repeats).await?.figures("W1", &label, Budget::AtMost(QUERY_P95_MS)));
    let notes =
        vec![format!("W1 queries are timed client-side, {repeats} sequential requests each, {PAGE} runs per page.")];
    Ok((figures, notes))
}

async fn time_post(
    target: &Target,
    path: &str,
    body: &serde_json::Value,
    repeats: usize,
) -> anyhow::Result<Percentiles> {
    target.time_post(path, body).await?; // warm-up
    let mut samples: Vec<Duration> = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        samples.push(target.time_post(path, body).await?);
    }
    Ok(Percentiles::of(&samples))
}

async fn time_query(target: &Target, path: &str, repeats: usize) -> anyhow::Result<Percentiles> {
    target.time_get(path).await?; // warm-up
    let mut samples: Vec<Duration> = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        samples.push(target.time_get(path).await?);
    }
    Ok(Percentiles::of(&samples))
}
