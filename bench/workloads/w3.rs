//! W3: a dashboard (12 chart panels of 10 runs at 1,000 buckets, plus a runs page) loaded in parallel while
//! W2-style writers keep ingesting at a steady rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;

use crate::report::{Budget, Figure, Percentiles};

use super::w2::{spawn_writers, Load};
use super::{metric_keys, seed_series, settle, Target};

const PROJECT: &str = "bench-w3";
const PANELS: usize = 12;
const RUNS: usize = 10;

pub async fn run(target: &Target, steps: i64, loads: usize, background: &Load) -> anyhow::Result<(Vec<Figure>, u64)> {
    target.ensure_project(PROJECT).await?;
    let runs: Vec<String> = (0..RUNS).map(|r| format!("w3-run-{r}")).collect();
    for run in &runs {
        target.ensure_run(PROJECT, run).await?;
    }
    let keys = metric_keys(PANELS);
    let seeded = seed_series(target, &runs, &keys, steps, 10_000 / PANELS as i64, 4).await?;
    settle().await;

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    // The background writers continue W2's runs past anything W2 wrote.
    let writers = spawn_writers(target, background, 1 << 40, &stop, &written);
    let started = Instant::now();
    let mut samples = Vec::with_capacity(loads);
    for _ in 0..loads {
        samples.push(load_dashboard(target, &runs, &keys).await?);
    }
    let background_rate = written.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await??;
    }
    let mut figures = Percentiles::of(&samples).figures(
        "W3",
        &format!(
            "dashboard: {PANELS} panels × {RUNS} runs × {} steps at 1,000 buckets + runs page",
            crate::report::pretty(steps as f64)
        ),
        Budget::AtMost(100.0),
    );
    figures.push(Figure::new(
        "W3",
        "background ingest during the dashboard loads",
        background_rate,
        "points/s",
        Budget::None,
    ));
    Ok((figures, seeded + written.load(Ordering::Relaxed)))
}

async fn load_dashboard(target: &Target, runs: &[String], keys: &[String]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut paths: Vec<String> = Vec::with_capacity(PANELS * RUNS + 1);
    for key in keys {
        for run in runs {
            paths.push(format!("/api/v1/runs/{run}/series/buckets?key={key}&buckets=1000"));
        }
    }
    paths.push(format!("/api/v1/projects/{PROJECT}/runs?limit=50"));
    try_join_all(paths.iter().map(|path| target.time_get(path))).await?;
    Ok(started.elapsed())
}
