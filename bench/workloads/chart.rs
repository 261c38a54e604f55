//! Chart: one 1,000,000-step series read at 2,000 buckets, as a chart panel asks for it.

use std::time::Duration;

use crate::report::{Budget, Figure, Percentiles};

use super::{seed_series, settle, Target};

pub async fn run(target: &Target, steps: i64, reads: usize) -> anyhow::Result<(Vec<Figure>, u64)> {
    let project = "bench-chart";
    target.ensure_project(project).await?;
    target.ensure_run(project, "chart-1m").await?;
    let keys = vec!["train/loss".to_owned()];
    let written = seed_series(target, &["chart-1m".to_owned()], &keys, steps, 100_000, 2).await?;
    settle().await;
    let path = "/api/v1/runs/chart-1m/series/buckets?key=train/loss&buckets=2000";
    let first = target.time_get(path).await?;
    let mut samples: Vec<Duration> = Vec::with_capacity(reads);
    for _ in 0..reads {
        samples.push(target.time_get(path).await?);
    }
    let percentiles = Percentiles::of(&samples);
    let name = format!("{} steps → 2,000 buckets", crate::report::pretty(steps as f64));
    let mut figures =
        vec![Figure::new("chart", &format!("{name}, first read"), first.as_secs_f64() * 1e3, "ms", Budget::None)];
    figures.extend(percentiles.figures("chart", &name, Budget::AtMost(20.0)));
    Ok((figures, written))
}
